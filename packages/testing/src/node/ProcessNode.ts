import type { KubeClient, Pod } from "@db-backup-operator/kube"
import { NodeServices } from "@effect/platform-node"
import { Context, Deferred, Duration, Effect, FiberMap, FileSystem, Layer, Path } from "effect"
import { bindPod, needsBinding } from "./binding.ts"
import type { ImageMap } from "./command.ts"
import { ProcessNodeError } from "./errors.ts"
import { LogRegistry } from "./logs.ts"
import { registerNode } from "./nodeRegistration.ts"
import { runPod } from "./PodWorker.ts"
import { type PodChange, watchPods } from "./podWatch.ts"

/** Options of {@link ProcessNode.layer}. */
export interface ProcessNodeOptions {
  /** The Node's name (default `process-node`). */
  readonly nodeName?: string | undefined
  /**
   * Image -> local command line (`IMAGE=COMMAND`). A container of a mapped image
   * runs its `command` if set, else COMMAND split on whitespace, followed by its
   * `args`; an unmapped image runs `command` and `args` as given. Never a shell.
   * `runner` also maps `runner:tag`.
   */
  readonly imageMap?: ImageMap | undefined
  /** Where Pod directories and logs go; kept afterwards. Default: a temp dir removed on release. */
  readonly workDir?: string | undefined
}

/** A running process node. */
export interface ProcessNodeShape {
  readonly nodeName: string
  /** Holds `pods/<namespace>_<name>_<uid>/{work,containers/<name>/<restart>.log}`. */
  readonly workDir: string
  /**
   * The output (stdout and stderr interleaved) of a Pod's container, by default
   * its first; the current instance if it restarted. Works after the Pod is gone.
   */
  readonly logs: (namespace: string, pod: string, container?: string) => Effect.Effect<string, ProcessNodeError>
}

interface PodEntry {
  readonly deletion: Deferred.Deferred<Pod>
}

const hostIP = "127.0.0.1"

const make = (options: ProcessNodeOptions) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const nodeName = options.nodeName ?? "process-node"
    const fail = (message: string) => (cause: unknown) => new ProcessNodeError({ message, cause })

    const workDir =
      options.workDir === undefined
        ? yield* fs
            .makeTempDirectoryScoped({ prefix: "process-node-" })
            .pipe(Effect.mapError(fail("cannot create the work dir")))
        : options.workDir
    const podsDir = path.join(workDir, "pods")
    yield* fs.makeDirectory(podsDir, { recursive: true }).pipe(Effect.mapError(fail(`cannot create ${podsDir}`)))

    yield* registerNode({ nodeName, hostIP, heartbeat: "10 seconds" }).pipe(
      Effect.mapError(
        (error) => new ProcessNodeError({ message: `cannot register node ${nodeName}: ${error.message}`, cause: error })
      )
    )

    const logs = new LogRegistry()
    const context = {
      hostIP,
      imageMap: options.imageMap ?? {},
      podsDir,
      path: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
      logs,
      configRetry: "2 seconds",
      maxGracePeriod: Duration.seconds(5),
      restartBackoff: { initial: Duration.seconds(1), max: Duration.seconds(30) }
    } as const
    // Released before the Node is deleted: every worker's scope kills its process groups.
    const workers = yield* FiberMap.make<string>()
    const bindings = yield* FiberMap.make<string>()
    const pods = new Map<string, PodEntry>()

    const forget = (uid: string) =>
      Effect.gen(function* () {
        pods.delete(uid)
        yield* FiberMap.remove(workers, uid)
      })

    const onPod = (pod: Pod) =>
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
          entry = { deletion: yield* Deferred.make<Pod>() }
          pods.set(uid, entry)
          yield* FiberMap.run(workers, uid, runPod(pod, entry.deletion, context))
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
 * A fake kubelet for clusters without a container runtime: registers a Node,
 * binds pending Pods to it like the default scheduler, runs each container as
 * a local process (env resolved like the kubelet, `CreateContainerConfigError`
 * while a Secret is missing, termination messages, restart policies) and
 * reports Pod status, so the real Job controller completes or fails Jobs.
 * Releasing the layer kills every process group and deletes the Node.
 *
 * @example
 * ```ts
 * const Env = ProcessNode.layer({ imageMap: { "runner:dev": "node apps/runner/src/main.ts" } }).pipe(
 *   Layer.provideMerge(Kube.layer({ _tag: "File", path: controlPlane.kubeconfigPath }))
 * )
 * const output = yield* ProcessNode.use((node) => node.logs("ns", "backup-1-abcde"))
 * ```
 */
export class ProcessNode extends Context.Service<ProcessNode, ProcessNodeShape>()(
  "@db-backup-operator/testing/ProcessNode"
) {
  static readonly layer = (options: ProcessNodeOptions = {}): Layer.Layer<ProcessNode, ProcessNodeError, KubeClient> =>
    Layer.effect(ProcessNode, make(options)).pipe(Layer.provide(NodeServices.layer))
}
