import { randomBytes } from "node:crypto"
import { KubeClient } from "@db-backup-operator/kube"
import { NodeServices } from "@effect/platform-node"
import { Context, Deferred, Duration, Effect, FiberMap, FileSystem, Layer, Path } from "effect"
import { listContainers, podman, podmanAvailable, removeContainers } from "../containers/podman.ts"
import { bindPod, needsBinding } from "./binding.ts"
import { type ImageMap, mappedCommand } from "./command.ts"
import { ProcessNodeError } from "./errors.ts"
import { serveKubelet } from "./kubeletServer.ts"
import { LogRegistry } from "./logs.ts"
import { registerNode } from "./nodeRegistration.ts"
import { type PodWorkerContext, runPod } from "./PodWorker.ts"
import { PodIPs } from "./podIPs.ts"
import { podmanRuntime } from "./podmanRuntime.ts"
import type { NodeContainer, NodePod } from "./podSpec.ts"
import { type PodChange, watchPods } from "./podWatch.ts"
import { processRuntime } from "./processRuntime.ts"
import type { ContainerRuntime } from "./runtime.ts"

/** Options of {@link ProcessNode.layer}. */
export interface ProcessNodeOptions {
  /** The Node's name (default `process-node`). */
  readonly nodeName?: string | undefined
  /**
   * Image -> local command line (`IMAGE=COMMAND`). A container of a mapped image
   * runs its `command` if set, else COMMAND split on whitespace, followed by its
   * `args`; an unmapped image runs `command` and `args` as given. Never a shell.
   * `runner` also maps `runner:tag`. Mapped images run as processes in either mode.
   */
  readonly imageMap?: ImageMap | undefined
  /** Where Pod directories and logs go; kept afterwards. Default: a temp dir removed on release. */
  readonly workDir?: string | undefined
  /**
   * How containers of unmapped images run: `process` (the default) runs their
   * `command` as a local process; `podman` runs the locally present image with
   * podman (never pulled: a missing image waits with `ErrImageNeverPull`),
   * with the Pod's security context, volumes and service-account token.
   */
  readonly containerRuntime?: "process" | "podman" | undefined
  /**
   * The cluster CA (PEM, `ControlPlane`'s `caPem`). When given, the node's
   * kubelet endpoint (`kubectl logs`) only serves clients with a certificate
   * it signed, as kube-apiserver's kubelet client certificate is.
   */
  readonly clusterCaPem?: string | undefined
  /**
   * The API server containers reach through `KUBERNETES_SERVICE_HOST` and
   * `KUBERNETES_SERVICE_PORT`, as a URL. Default: the KubeClient's server.
   */
  readonly apiServer?: string | undefined
}

/** A running process node. */
export interface ProcessNodeShape {
  readonly nodeName: string
  /** Holds `pods/<namespace>_<name>_<uid>/{work,volumes/<name>,containers/<name>/<restart>.log}`. */
  readonly workDir: string
  /** `process` or `podman`: how containers of unmapped images run. */
  readonly containerRuntime: "process" | "podman"
  /** The kubelet endpoint's port on 127.0.0.1 (`daemonEndpoints.kubeletEndpoint.Port`). */
  readonly kubeletPort: number
  /**
   * The output (stdout and stderr interleaved) of a Pod's container, by default
   * its first; the current instance if it restarted. Works after the Pod is gone.
   */
  readonly logs: (namespace: string, pod: string, container?: string) => Effect.Effect<string, ProcessNodeError>
}

interface PodEntry {
  readonly deletion: Deferred.Deferred<NodePod>
}

const hostIP = "127.0.0.1"

/** Labels on every container a node starts with podman: which node, which process, which layer instance. */
const labelPrefix = "process-node.kube-testenv"
const nodeLabel = `${labelPrefix}/node`
const ownerLabel = `${labelPrefix}/owner-pid`
const instanceLabel = `${labelPrefix}/instance`

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: it exists, it is just not ours to signal.
    return error instanceof Error && "code" in error && error.code === "EPERM"
  }
}

/**
 * The variables the kubelet derives from the `kubernetes` Service for every
 * container, pointing at the API server itself (there is no Service network).
 *
 * @example
 * ```ts
 * serviceEnv("https://127.0.0.1:6443").KUBERNETES_SERVICE_PORT // "6443"
 * ```
 */
export const serviceEnv = (apiServer: string): Readonly<Record<string, string>> => {
  const url = new URL(apiServer)
  const host = url.hostname.replace(/^\[(.*)\]$/u, "$1")
  const port = url.port === "" ? "443" : url.port
  const address = `tcp://${url.host}`
  return {
    KUBERNETES_SERVICE_HOST: host,
    KUBERNETES_SERVICE_PORT: port,
    KUBERNETES_SERVICE_PORT_HTTPS: port,
    KUBERNETES_PORT: address,
    [`KUBERNETES_PORT_${port}_TCP`]: address,
    [`KUBERNETES_PORT_${port}_TCP_PROTO`]: "tcp",
    [`KUBERNETES_PORT_${port}_TCP_PORT`]: port,
    [`KUBERNETES_PORT_${port}_TCP_ADDR`]: host
  }
}

/**
 * Podman for containers of unmapped images: checks it is there, removes what
 * an earlier node of this name left behind when its process died, and removes
 * everything this instance started when the scope closes.
 */
const podmanSetup = (nodeName: string) =>
  Effect.gen(function* () {
    const fail = (message: string) => (cause: { readonly message: string }) =>
      new ProcessNodeError({ message: `${message}: ${cause.message}`, cause })
    if (!(yield* podmanAvailable)) {
      return yield* new ProcessNodeError({ message: "containerRuntime podman: no podman on PATH" })
    }
    const version = yield* podman(["--version"]).pipe(
      Effect.map((result) => /(\d+\.\d+\.\d+)/u.exec(result.stdout)?.[1] ?? "unknown"),
      Effect.mapError(fail("podman --version"))
    )
    // A node of this name whose process died (a crashed test run) cannot have removed its containers.
    const leftovers = yield* listContainers({ [nodeLabel]: nodeName }).pipe(Effect.mapError(fail("podman ps")))
    const stale = leftovers.filter((container) => {
      const owner = Number(container.labels[ownerLabel])
      return !Number.isInteger(owner) || owner <= 0 || !isAlive(owner)
    })
    if (stale.length > 0) {
      yield* Effect.logInfo(`process node: removing ${stale.length} containers a dead node ${nodeName} left behind`)
      yield* removeContainers(stale.map((container) => container.id)).pipe(Effect.mapError(fail("podman rm")))
    }
    const labels = {
      [nodeLabel]: nodeName,
      [ownerLabel]: String(process.pid),
      [instanceLabel]: randomBytes(8).toString("hex")
    }
    // Workers remove their containers when they stop; this catches any a failure let through.
    yield* Effect.addFinalizer(() =>
      listContainers({ [instanceLabel]: labels[instanceLabel] }).pipe(
        Effect.flatMap((containers) => removeContainers(containers.map((container) => container.id))),
        Effect.catch((error) => Effect.logWarning(`process node: removing containers: ${error.message}`))
      )
    )
    return { runtime: podmanRuntime({ labels }), version }
  })

const make = (options: ProcessNodeOptions) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const kube = yield* KubeClient
    const nodeName = options.nodeName ?? "process-node"
    const mode = options.containerRuntime ?? "process"
    const imageMap = options.imageMap ?? {}
    const fail = (message: string) => (cause: unknown) => new ProcessNodeError({ message, cause })

    const workDir =
      options.workDir === undefined
        ? yield* fs
            .makeTempDirectoryScoped({ prefix: "process-node-" })
            .pipe(Effect.mapError(fail("cannot create the work dir")))
        : options.workDir
    const podsDir = path.join(workDir, "pods")
    const pkiDir = path.join(workDir, "pki")
    for (const dir of [podsDir, pkiDir]) {
      yield* fs.makeDirectory(dir, { recursive: true }).pipe(Effect.mapError(fail(`cannot create ${dir}`)))
    }

    const processes = processRuntime({ imageMap, path: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin" })
    const engine = mode === "podman" ? yield* podmanSetup(nodeName) : undefined
    const runtimeFor = (container: NodeContainer): ContainerRuntime =>
      engine === undefined || mappedCommand(imageMap, container.image) !== undefined ? processes : engine.runtime

    const logs = new LogRegistry()
    const kubelet = yield* serveKubelet({ nodeName, pkiDir, clientCaPem: options.clusterCaPem, logs })
    yield* registerNode({
      nodeName,
      hostIP,
      heartbeat: "10 seconds",
      kubeletPort: kubelet.port,
      containerRuntimeVersion: engine === undefined ? "process://" : `podman://${engine.version}`
    }).pipe(
      Effect.mapError(
        (error) => new ProcessNodeError({ message: `cannot register node ${nodeName}: ${error.message}`, cause: error })
      )
    )

    const context: PodWorkerContext = {
      hostIP,
      podsDir,
      runtimeFor,
      serviceEnv: serviceEnv(options.apiServer ?? kube.server),
      logs,
      configRetry: "2 seconds",
      maxGracePeriod: Duration.seconds(5),
      restartBackoff: { initial: Duration.seconds(1), max: Duration.seconds(30) }
    }
    const podIPs = new PodIPs(nodeName)
    // Released before the Node is deleted: every worker's scope stops its containers.
    const workers = yield* FiberMap.make<string>()
    const bindings = yield* FiberMap.make<string>()
    const pods = new Map<string, PodEntry>()

    const forget = (uid: string) =>
      Effect.gen(function* () {
        pods.delete(uid)
        yield* FiberMap.remove(workers, uid)
        podIPs.release(uid)
      })

    const onPod = (pod: NodePod) =>
      Effect.gen(function* () {
        const uid = pod.metadata.uid ?? ""
        if (needsBinding(pod)) {
          yield* bindPod(pod, nodeName).pipe(
            // Conflict: another node bound it first; NotFound: deleted meanwhile.
            Effect.catchTags({ Conflict: () => Effect.void, NotFound: () => Effect.void }),
            Effect.catch((error) =>
              Effect.logWarning(`process node: binding pod ${pod.metadata.name}: ${error.message}`)
            ),
            FiberMap.run(bindings, uid, { onlyIfMissing: true })
          )
          return
        }
        if (pod.spec.nodeName !== nodeName) return
        let entry = pods.get(uid)
        if (entry === undefined) {
          entry = { deletion: yield* Deferred.make<NodePod>() }
          pods.set(uid, entry)
          const podIP = podIPs.allocate(uid, pod.status?.podIP)
          yield* FiberMap.run(workers, uid, runPod({ pod, deletion: entry.deletion, podIP }, context))
        }
        if (pod.metadata.deletionTimestamp !== undefined) yield* Deferred.succeed(entry.deletion, pod)
      })

    const onChange = (change: PodChange) =>
      Effect.gen(function* () {
        switch (change._tag) {
          case "Changed":
            return yield* onPod(change.pod)
          case "Deleted":
            return yield* forget(change.pod.metadata.uid ?? "")
          case "Listed": {
            const live = new Set(change.pods.map((pod) => pod.metadata.uid ?? ""))
            for (const uid of [...pods.keys()]) if (!live.has(uid)) yield* forget(uid)
            for (const pod of change.pods) yield* onPod(pod)
          }
        }
      })

    yield* watchPods(onChange).pipe(Effect.forkScoped)

    return ProcessNode.of({
      nodeName,
      workDir,
      containerRuntime: mode,
      kubeletPort: kubelet.port,
      logs: (namespace, pod, container) =>
        logs.file(namespace, pod, container).pipe(
          Effect.flatMap((file) => fs.readFileString(file)),
          Effect.mapError((error) =>
            error._tag === "ProcessNodeError" ? error : new ProcessNodeError({ message: error.message, cause: error })
          )
        )
    })
  })

/**
 * A fake kubelet for clusters without one: registers a Node, binds pending
 * Pods to it like the default scheduler, runs each container as a local
 * process or, with `containerRuntime: "podman"`, from its local image with
 * podman (env resolved like the kubelet, `CreateContainerConfigError` while a
 * Secret is missing, security context, volumes and the service-account token,
 * termination messages, restart policies), gives each Pod its own loopback
 * address, serves `kubectl logs`, and reports Pod status, so the real Job,
 * ReplicaSet and Deployment controllers do their work. Releasing the layer
 * stops every container and deletes the Node.
 *
 * @example
 * ```ts
 * const Env = ProcessNode.layer({ imageMap: { "runner:dev": "node apps/runner/src/main.ts" } }).pipe(
 *   Layer.provideMerge(KubeClient.layer({ _tag: "File", path: controlPlane.kubeconfigPath }))
 * )
 * const output = yield* ProcessNode.use((node) => node.logs("ns", "backup-1-abcde"))
 * // From images, with kubectl logs restricted to the API server's client certificate:
 * ProcessNode.layer({ containerRuntime: "podman", clusterCaPem: controlPlane.caPem })
 * ```
 */
export class ProcessNode extends Context.Service<ProcessNode, ProcessNodeShape>()(
  "@db-backup-operator/testing/ProcessNode"
) {
  static readonly layer = (options: ProcessNodeOptions = {}): Layer.Layer<ProcessNode, ProcessNodeError, KubeClient> =>
    Layer.effect(ProcessNode, make(options)).pipe(Layer.provide(NodeServices.layer))
}
