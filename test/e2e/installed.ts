import { type Connection, KubeClient, Pod } from "@db-backup-operator/kube"
import {
  adminKube,
  ControlPlane,
  type ControlPlaneError,
  GcsEmulator,
  type GcsEmulatorError,
  type Postgres,
  ProcessNode,
  type ProcessNodeError
} from "@db-backup-operator/testing"
import { NodeServices } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { ensureImages } from "../../docker/build/images.ts"
import { chartDir, helm } from "../chart/helm.ts"
import { KnownSecrets, noLeaksAtRelease } from "../stack/secretLeaks.ts"
import { eventually } from "./support.ts"

// The product as a platform engineer installs it: the images built from docker/, the Helm
// chart, and a node that runs every container with podman. Shared by the e2e tests that
// test the installed product (product.test.ts, security.test.ts).

export const release = "db-backup-operator"
export const operatorNamespace = "db-backup-operator"
/** The chart's ServiceAccount, as RBAC names it. */
export const operatorServiceAccount = `system:serviceaccount:${operatorNamespace}:${release}`

/** `localhost/db-backup-operator:0.1.0-abc` -> repository and tag, as the chart's values take them. */
export const splitRef = (ref: string) => {
  const colon = ref.lastIndexOf(":")
  return { repository: ref.slice(0, colon), tag: ref.slice(colon + 1) }
}

/** The real helm against the local cluster (`--wait` may take minutes); fails with its stderr. */
export const helmInCluster = (args: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const controlPlane = yield* ControlPlane
    const result = yield* helm([...args, "--kubeconfig", controlPlane.kubeconfigPath], "5 minutes")
    if (result.exitCode !== 0) return yield* Effect.fail(new Error(`helm ${args[0]}: ${result.stderr.trim()}`))
    return result.stdout
  })

/** The operator's Pods that are not being deleted. */
export const operatorPods = KubeClient.use((kube) =>
  kube.list(Pod, { namespace: operatorNamespace, labelSelector: "app.kubernetes.io/name=db-backup-operator" })
).pipe(Effect.map((list) => list.items.filter((pod) => pod.metadata.deletionTimestamp === undefined)))

/** Every operator Pod Running and Ready, `count` of them. */
export const operatorPodsReady = (count: number) =>
  eventually(
    `${count} operator Pods Running and Ready`,
    Effect.map(operatorPods, (pods) =>
      pods.length === count &&
      pods.every((pod) => pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"))
        ? pods
        : undefined
    )
  )

/**
 * `helm install` (or `upgrade`, with `verb`) of the chart with the local images, the
 * emulator's GCS endpoint and `values` (`key=value` for `--set`); waits for the rollout.
 * Returns the image references.
 */
export const installChart = (values: ReadonlyArray<string>, verb: "install" | "upgrade" = "install") =>
  Effect.gen(function* () {
    const images = yield* ensureImages().pipe(Effect.provide(NodeServices.layer))
    const gcs = yield* GcsEmulator
    const operatorImage = splitRef(images.operator)
    const runnerImage = splitRef(images.runner)
    yield* helmInCluster([
      verb,
      release,
      chartDir,
      "--namespace",
      operatorNamespace,
      ...(verb === "install" ? ["--create-namespace"] : []),
      ...[
        `image.repository=${operatorImage.repository}`,
        `image.tag=${operatorImage.tag}`,
        `runner.image.repository=${runnerImage.repository}`,
        `runner.image.tag=${runnerImage.tag}`,
        `operator.gcsEndpoint=${gcs.endpoint}`,
        ...values
      ].flatMap((value) => ["--set", value]),
      "--wait",
      "--timeout",
      "3m"
    ])
    return images
  })

/**
 * A control plane, PostgreSQL (`postgres`: the plain or the TLS layer), the GCS emulator
 * and a node that runs containers with podman.
 */
export const installedEnvironment = <E>(
  postgres: Layer.Layer<Postgres, E>
): Layer.Layer<
  ProcessNode | KubeClient | ControlPlane | Postgres | GcsEmulator | KnownSecrets,
  E | ProcessNodeError | Connection.ConfigError | ControlPlaneError | GcsEmulatorError
> =>
  // The operator runs in a Pod here: its log is among the containers' logs the check reads.
  noLeaksAtRelease(Effect.succeed("")).pipe(
    Layer.provideMerge(
      Layer.unwrap(
        Effect.gen(function* () {
          const controlPlane = yield* ControlPlane
          return ProcessNode.layer({ containerRuntime: "podman", clusterCaPem: controlPlane.caPem })
        })
      )
    ),
    Layer.provideMerge(adminKube),
    Layer.provideMerge(Layer.mergeAll(ControlPlane.layer({}), postgres, GcsEmulator.layer, KnownSecrets.layer))
  )
