import { mkdir, writeFile } from "node:fs/promises"
import { join, resolve } from "node:path"
import { NodeServices } from "@effect/platform-node"
import { Context, Duration, Effect, FileSystem, Layer, type Path, Ref, Scope, Semaphore } from "effect"
import { HttpClient } from "effect/http"
import { ChildProcessSpawner } from "effect/process"
import { resolveBinaries } from "../binaries/resolve.ts"
import { probeOk, tlsHttpClient } from "../http.ts"
import { waitUntilReady } from "../poll.ts"
import { freePort } from "../ports.ts"
import { type ApiServerConfig, startApiServer } from "./apiserver.ts"
import { ControlPlaneError, controlPlaneError } from "./ControlPlaneError.ts"
import { generateCertificates } from "./certs.ts"
import { startControllerManager } from "./controllerManager.ts"
import { installCrds } from "./crds.ts"
import { runEtcd, startEtcd } from "./etcd.ts"
import { kubeconfigYaml } from "./kubeconfig.ts"
import { type Kubectl, makeKubectl } from "./kubectl.ts"

/** Options of {@link ControlPlane.layer}. */
export interface ControlPlaneOptions {
  /** Start kube-controller-manager (`testControllers`: Job, Deployment, ReplicaSet, GC, namespace, service account). Default true. */
  readonly controllerManager?: boolean | undefined
  /** CRD YAML files to install; the layer is ready once they are Established and discoverable. */
  readonly crds?: ReadonlyArray<string> | undefined
  /** Extra kube-apiserver flags, appended after ours (so they win). */
  readonly extraApiServerArgs?: ReadonlyArray<string> | undefined
  /** Extra kube-controller-manager flags, appended after ours (so they win), e.g. `--kube-api-qps` for a load test. */
  readonly extraControllerManagerArgs?: ReadonlyArray<string> | undefined
  /**
   * Working directory (PKI, kubeconfig, etcd data, logs). Default: a temporary
   * directory deleted on release. A given directory is kept; its etcd data is wiped at start.
   */
  readonly dir?: string | undefined
}

/** A running local control plane. */
export interface ControlPlaneShape {
  /** Working directory: `pki/`, `kubeconfig`, `etcd/`, `*.log`. */
  readonly dir: string
  /** Admin kubeconfig (client certificate in `system:masters`). */
  readonly kubeconfigPath: string
  /** `https://127.0.0.1:PORT`. */
  readonly server: string
  readonly caPem: string
  readonly clientCertPem: string
  readonly clientKeyPem: string
  /** Runs the real `kubectl` with `--kubeconfig` set; a non-zero exit code is returned, not failed. */
  readonly kubectl: Kubectl
  /** Stops kube-apiserver and starts it again on the same port and etcd; done when it is ready again. */
  readonly restartApiServer: Effect.Effect<void, ControlPlaneError>
  /**
   * Stops etcd (SIGTERM) and starts it again on the same ports and data directory, while
   * kube-apiserver keeps running and has to reconnect; done when etcd is healthy and the API
   * server serves reads from it again.
   */
  readonly restartEtcd: Effect.Effect<void, ControlPlaneError>
}

const make = (options: ControlPlaneOptions) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const dir =
      options.dir === undefined
        ? yield* fs
            .makeTempDirectoryScoped({ prefix: "kube-testenv-" })
            .pipe(Effect.mapError(controlPlaneError("cannot create a temporary directory")))
        : resolve(options.dir)
    yield* Effect.tryPromise({
      try: () => mkdir(dir, { recursive: true }),
      catch: (cause) => new ControlPlaneError({ message: `cannot create ${dir}: ${String(cause)}`, cause })
    })
    const withControllerManager = options.controllerManager ?? true
    const binaries = yield* resolveBinaries(["kubeApiServer", "etcd"]).pipe(
      Effect.mapError(controlPlaneError("test binaries unavailable"))
    )
    // Resolved (maybe built) before anything starts, so a build never runs against a live etcd.
    const controllerManagerBinary = withControllerManager
      ? (yield* resolveBinaries(["kubeControllerManager"]).pipe(
          Effect.mapError(controlPlaneError("kube-controller-manager unavailable"))
        )).kubeControllerManager
      : undefined
    const certs = yield* generateCertificates(join(dir, "pki"))
    const client = yield* tlsHttpClient({ ca: certs.caPem, cert: certs.clientCertPem, key: certs.clientKeyPem })
    const withClient = Effect.provideService(HttpClient.HttpClient, client)

    const etcd = yield* startEtcd(binaries.etcd, dir).pipe(withClient)
    const etcdDaemon = yield* Ref.make(etcd.daemon)
    const port = yield* freePort.pipe(Effect.mapError(controlPlaneError("no free port for kube-apiserver")))
    const server = `https://127.0.0.1:${port}`
    const apiServerConfig: ApiServerConfig = {
      binary: binaries.kubeApiServer,
      dir,
      port,
      etcdEndpoint: etcd.endpoint,
      certs,
      extraArgs: options.extraApiServerArgs ?? []
    }
    const apiServer = yield* Ref.make(yield* startApiServer(apiServerConfig).pipe(withClient))

    const kubeconfigPath = join(dir, "kubeconfig")
    yield* Effect.tryPromise({
      try: () => writeFile(kubeconfigPath, kubeconfigYaml(server, certs), { mode: 0o600 }),
      catch: (cause) => new ControlPlaneError({ message: `cannot write ${kubeconfigPath}: ${String(cause)}`, cause })
    })
    if (controllerManagerBinary !== undefined) {
      yield* startControllerManager({
        binary: controllerManagerBinary,
        dir,
        kubeconfigPath,
        certs,
        extraArgs: options.extraControllerManagerArgs
      }).pipe(withClient)
    }
    const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
    const kubectl = makeKubectl(kubeconfigPath, join(dir, "kubectl-cache"), spawner)
    if (options.crds !== undefined && options.crds.length > 0) {
      yield* installCrds(kubectl, client, server, options.crds)
    }

    // A restarted API server belongs to the layer's scope, like the first one.
    const layerScope = yield* Effect.scope
    const services = yield* Effect.context<
      ChildProcessSpawner.ChildProcessSpawner | FileSystem.FileSystem | Path.Path
    >()
    const restarts = yield* Semaphore.make(1)
    const restartApiServer = Semaphore.withPermit(
      restarts,
      Effect.gen(function* () {
        yield* (yield* Ref.get(apiServer)).stop
        const next = yield* startApiServer(apiServerConfig).pipe(withClient, Scope.provide(layerScope))
        yield* Ref.set(apiServer, next)
      })
    ).pipe(Effect.provideContext(services))
    // Readiness includes etcd's own check, and a GET of a namespace is a quorum read from etcd:
    // both pass only once the API server's etcd client has reconnected.
    const apiServerServes = Effect.gen(function* () {
      yield* probeOk(client, `${server}/readyz`)
      yield* probeOk(client, `${server}/api/v1/namespaces/default`)
    })
    const restartEtcd = Semaphore.withPermit(
      restarts,
      Effect.gen(function* () {
        yield* (yield* Ref.get(etcdDaemon)).stop
        const next = yield* runEtcd(etcd.config).pipe(withClient, Scope.provide(layerScope))
        yield* Ref.set(etcdDaemon, next.daemon)
        yield* waitUntilReady(apiServerServes, {
          interval: Duration.millis(100),
          timeout: Duration.seconds(60),
          onTimeout: (reason) =>
            new ControlPlaneError({ message: `kube-apiserver not serving 60 seconds after etcd restarted: ${reason}` })
        })
      })
    ).pipe(Effect.provideContext(services))

    return ControlPlane.of({
      dir,
      kubeconfigPath,
      server,
      caPem: certs.caPem,
      clientCertPem: certs.clientCertPem,
      clientKeyPem: certs.clientKeyPem,
      kubectl,
      restartApiServer,
      restartEtcd
    })
  })

/**
 * A local Kubernetes control plane like controller-runtime's envtest: etcd,
 * kube-apiserver (generated PKI, admin client certificate, RBAC, a kubelet
 * client certificate for `kubectl logs`) and, by default,
 * kube-controller-manager with the Job, Deployment, ReplicaSet, garbage
 * collector, namespace and service account controllers. Binaries come from `Binaries.resolve` (built
 * and cached on first use). Everything runs in its own process group and is
 * stopped when the layer is released. There is no kubelet: Pods stay Pending
 * unless a process node runs them.
 *
 * @example
 * ```ts
 * const program = Effect.gen(function* () {
 *   const cp = yield* ControlPlane
 *   const { stdout } = yield* cp.kubectl(["get", "namespaces", "-o", "name"])
 *   return stdout
 * }).pipe(Effect.provide(ControlPlane.layer({ crds: ["crds/backup.csyeteam03.xyz.yaml"] })))
 * ```
 */
export class ControlPlane extends Context.Service<ControlPlane, ControlPlaneShape>()(
  "@db-backup-operator/testing/ControlPlane"
) {
  static readonly layer = (options: ControlPlaneOptions = {}): Layer.Layer<ControlPlane, ControlPlaneError> =>
    Layer.effect(ControlPlane, make(options)).pipe(Layer.provide(NodeServices.layer))
}
