/**
 * The one place where the versions of the locally built test binaries are pinned.
 * Read by the binary cache (`Binaries.resolve`) and by `scripts/pin-go-tools.ts`,
 * which regenerates the Go tools modules under `packages/testing/go/` from it.
 *
 * To move to a new Kubernetes patch or minor: change `kubernetes` here, run
 * `node packages/testing/scripts/pin-go-tools.ts`, commit both.
 */
export const versions = {
  /** `k8s.io/kubernetes` tag for kube-apiserver and kube-controller-manager. */
  kubernetes: "v1.37.2",
  /** `go.etcd.io/etcd/server/v3` (Debian's etcd 3.4 is too old for kube-apiserver 1.37). */
  etcd: "v3.6.16",
  /** `github.com/fsouza/fake-gcs-server`. */
  fakeGcsServer: "v1.56.1",
  /** `helm.sh/helm/v4`: lints, renders and installs the chart in `charts/`. */
  helm: "v4.3.1",
  /** `github.com/versity/versitygw`: an S3 server on a local directory, for the S3 object store tests. */
  versitygw: "v1.8.0",
  /** `filippo.io/age`: the reference age CLI, which the runner's encryption must interoperate with. */
  age: "v1.3.2"
} as const

/** Go module and package paths of the tools above. */
export const goPackages = {
  kubernetesModule: "k8s.io/kubernetes",
  kubeApiServer: "k8s.io/kubernetes/cmd/kube-apiserver",
  kubeControllerManager: "k8s.io/kubernetes/cmd/kube-controller-manager",
  etcdServer: "go.etcd.io/etcd/server/v3",
  fakeGcsServer: "github.com/fsouza/fake-gcs-server",
  helm: "helm.sh/helm/v4/cmd/helm",
  versitygw: "github.com/versity/versitygw/cmd/versitygw",
  age: "filippo.io/age/cmd/..."
} as const
