import { KubeClient, Pod } from "@db-backup-operator/kube"
import {
  Cause,
  Deferred,
  Duration,
  Effect,
  Fiber,
  FileSystem,
  Option,
  Path,
  Ref,
  Result,
  Schedule,
  type Scope,
  Semaphore
} from "effect"
import type { ChildProcessSpawner } from "effect/process"
import { resolveEnv } from "./env.ts"
import { type LogRegistry, terminationMessage } from "./logs.ts"
import type { NodeContainer, NodePod } from "./podSpec.ts"
import {
  type ContainerStateJson,
  type ContainerStatusJson,
  isTerminalPhase,
  type PodConditionJson,
  podStatus,
  waitingStatus
} from "./podStatus.ts"
import { containerProbes, superviseProbes } from "./probes.ts"
import { type ContainerRuntime, ContainerWaiting, type RunningContainer, type StartError } from "./runtime.ts"
import { now } from "./time.ts"
import { containerMounts, type PodVolume, preparePodVolumes } from "./volumes.ts"

/** What every Pod worker of one node shares. */
export interface PodWorkerContext {
  readonly hostIP: string
  /** Each Pod gets `<podsDir>/<namespace>_<name>_<uid>/`. */
  readonly podsDir: string
  /** Who runs a container: a process for a mapped image, else the node's runtime. */
  readonly runtimeFor: (container: NodeContainer) => ContainerRuntime
  /** What the kubelet gives every container first: `KUBERNETES_SERVICE_HOST` and friends. */
  readonly serviceEnv: Readonly<Record<string, string>>
  readonly logs: LogRegistry
  /** Retry interval for a container waiting on its image, a Secret, a ConfigMap or a volume. */
  readonly configRetry: Duration.Input
  /** Upper bound of a deletion's grace period (the kubelet's default is 30 s). */
  readonly maxGracePeriod: Duration.Duration
  /** Restart back-off of `OnFailure`/`Always` containers: doubles from `initial` up to `max`. */
  readonly restartBackoff: { readonly initial: Duration.Duration; readonly max: Duration.Duration }
}

/** One Pod bound to this node. */
export interface PodAssignment {
  readonly pod: NodePod
  /** Completes with the Pod once it carries a deletionTimestamp. */
  readonly deletion: Deferred.Deferred<NodePod>
  /** The Pod's own address (`status.podIP`). */
  readonly podIP: string
}

interface PodState {
  readonly containers: ReadonlyArray<ContainerStatusJson>
  readonly conditions: ReadonlyArray<PodConditionJson>
  readonly terminal: boolean
}

/** Why a container's instance ended. */
type InstanceEnd = { readonly _tag: "Exited"; readonly exitCode: number } | { readonly _tag: "Deleted" }

type Services = KubeClient | FileSystem.FileSystem | Path.Path | ChildProcessSpawner.ChildProcessSpawner

/**
 * Runs one Pod bound to this node until it is deleted, as the kubelet does:
 * volumes first (when a runtime mounts them), then the containers together,
 * each through its runtime (a local process or a podman container); image,
 * env and config problems leave a container waiting and are retried; a
 * started container's probes decide `started` and `ready`, and a failed
 * liveness or startup probe stops it (see `probes.ts`); status
 * is reported after every change, `restartPolicy` decides restarts, and a
 * deletion (`deletion` completes with the Pod carrying a deletionTimestamp)
 * stops the containers within the grace period, reports them terminated and
 * finishes the deletion with grace 0. Interrupting the worker stops its
 * containers too.
 *
 * @example
 * ```ts
 * import type { NodePod } from "./podSpec.ts"
 * declare const workers: FiberMap.FiberMap<string>
 * declare const uid: string
 * declare const pod: NodePod
 * declare const deletion: Deferred.Deferred<NodePod>
 * declare const context: PodWorkerContext
 * yield* FiberMap.run(workers, uid, runPod({ pod, deletion, podIP: "127.93.1.1" }, context))
 * ```
 */
export const runPod = (assignment: PodAssignment, context: PodWorkerContext): Effect.Effect<void, never, Services> =>
  Effect.gen(function* () {
    const { pod, deletion, podIP } = assignment
    const kube = yield* KubeClient
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const namespace = pod.metadata.namespace ?? "default"
    const name = pod.metadata.name ?? ""
    const uid = pod.metadata.uid ?? ""
    const podRef = { namespace, name, uid }
    const containers = pod.spec.containers
    const restartPolicy = pod.spec.restartPolicy ?? "Always"
    const podDir = path.join(context.podsDir, `${namespace}_${name}_${uid}`)
    const workDir = path.join(podDir, "work")
    const containerDir = (container: NodeContainer) => path.join(podDir, "containers", container.name)
    const addresses = { hostIP: context.hostIP, podIP }

    yield* fs.makeDirectory(workDir, { recursive: true })
    for (const container of containers) yield* fs.makeDirectory(containerDir(container), { recursive: true })
    context.logs.register(
      podRef,
      containers.map((container) => container.name)
    )

    const startTime = pod.status?.startTime ?? (yield* now)
    const state = yield* Ref.make<PodState>({
      containers: containers.map((container) => waitingStatus(container)),
      conditions: [],
      terminal: false
    })
    const lock = yield* Semaphore.make(1)
    let lastSent = ""

    /** Patches the whole status; serialized, and skipped when nothing changed. */
    const report = lock.withPermits(1)(
      Effect.gen(function* () {
        const current = yield* Ref.get(state)
        const status = podStatus({
          restartPolicy,
          containers: current.containers,
          terminal: current.terminal,
          startTime,
          hostIP: context.hostIP,
          podIP,
          previousConditions: current.conditions,
          now: yield* now
        })
        const body = JSON.stringify(status)
        if (body === lastSent) return
        yield* Ref.update(state, (s) => ({ ...s, conditions: status.conditions }))
        yield* kube.mergePatch(Pod, name, { status }, { namespace, subresource: "status" }).pipe(
          Effect.tap(() =>
            Effect.sync(() => {
              lastSent = body
            })
          ),
          Effect.catchTag("NotFound", () => Effect.void),
          Effect.catch((error) =>
            Effect.logWarning(`process node: status of pod ${namespace}/${name}: ${error.message}`)
          )
        )
      })
    )

    const setContainer = (index: number, f: (status: ContainerStatusJson) => ContainerStatusJson) =>
      Ref.update(state, (s) => ({
        ...s,
        containers: s.containers.map((status, i) => (i === index ? f(status) : status))
      })).pipe(Effect.andThen(report))

    /** The container waits (image, config, volumes); a log request is told why. */
    const setWaiting = (index: number, container: NodeContainer, waiting: ContainerWaiting) =>
      Effect.sync(() => context.logs.waiting(podRef, container.name, waiting.reason)).pipe(
        Effect.andThen(
          setContainer(index, (status) => ({
            ...status,
            state: { waiting: { reason: waiting.reason, message: waiting.message } }
          }))
        )
      )

    /** Retries `effect` while it says the container has to wait, reporting why. */
    const untilReady = <A, R>(
      effect: Effect.Effect<A, ContainerWaiting | StartError, R>,
      onWaiting: (waiting: ContainerWaiting) => Effect.Effect<void>
    ) =>
      effect.pipe(
        Effect.tapError((error) => (error._tag === "ContainerWaiting" ? onWaiting(error) : Effect.void)),
        Effect.retry({
          while: (error) => error._tag === "ContainerWaiting",
          schedule: Schedule.spaced(context.configRetry)
        })
      )

    const deleted = Deferred.await(deletion)
    /** Runs `effect` unless the Pod is deleted first (then None). */
    const unlessDeleted = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<Option.Option<A>, E, R> =>
      Effect.raceFirst(Effect.map(effect, Option.some), Effect.as(deleted, Option.none<A>()))

    const graceOf = (deleting: NodePod) =>
      Duration.min(Duration.seconds(deleting.metadata.deletionGracePeriodSeconds ?? 30), context.maxGracePeriod)

    /** Reports an instance that ends without having run (exit code 128, as the kubelet's StartError). */
    const startFailed = (index: number, restartCount: number, error: StartError, containerID?: string) =>
      Effect.gen(function* () {
        const finishedAt = yield* now
        yield* setContainer(index, (status) => ({
          ...status,
          restartCount,
          ready: false,
          started: false,
          state: {
            terminated: {
              exitCode: 128,
              reason: "StartError",
              message: error.message,
              startedAt: finishedAt,
              finishedAt,
              ...(containerID === undefined ? {} : { containerID })
            }
          }
        }))
        return { _tag: "Exited", exitCode: 128 } as const
      })

    /** One instance of a container: image, env, mounts, start, wait for the exit, report it. */
    const runInstance = (
      index: number,
      container: NodeContainer,
      restartCount: number,
      volumes: ReadonlyMap<string, PodVolume>
    ) =>
      Effect.scoped(
        Effect.gen(function* (): Effect.fn.Return<InstanceEnd, never, Services | Scope.Scope> {
          const runtime = context.runtimeFor(container)
          const dir = containerDir(container)
          const messageFile = path.join(dir, "termination-log")
          const logFile = path.join(dir, `${restartCount}.log`)
          const base = {
            ...context.serviceEnv,
            ...runtime.baseEnv(pod, workDir),
            HOSTNAME: pod.spec.hostname ?? name
          }
          const started = yield* unlessDeleted(
            untilReady(
              Effect.gen(function* () {
                yield* runtime.pullImage(container)
                const env = yield* resolveEnv(pod, container, { base, ...addresses }).pipe(
                  Effect.mapError(
                    (error) => new ContainerWaiting({ reason: "CreateContainerConfigError", message: error.message })
                  )
                )
                const mounts = runtime.mountsVolumes ? yield* containerMounts(container, volumes) : []
                yield* fs.writeFileString(logFile, "").pipe(Effect.orDie)
                yield* fs.writeFileString(messageFile, "").pipe(Effect.orDie)
                // The container's user, whoever it is, writes its termination message (the kubelet's 0666).
                yield* fs.chmod(messageFile, 0o666).pipe(Effect.orDie)
                const startedAt = yield* now
                const running = yield* runtime.start({
                  pod,
                  container,
                  restartCount,
                  env,
                  podDir,
                  workDir,
                  messageFile,
                  logFile,
                  mounts
                })
                return { running, startedAt }
              }),
              (waiting) => setWaiting(index, container, waiting)
            ).pipe(Effect.result)
          )
          if (Option.isNone(started)) return { _tag: "Deleted" }
          if (Result.isFailure(started.value)) {
            // Only a StartError gets past the retry: a spaced schedule never gives up on waiting.
            const failure = started.value.failure
            return failure._tag === "StartError"
              ? yield* startFailed(index, restartCount, failure)
              : yield* Effect.die(failure)
          }
          const { running, startedAt } = started.value.success
          return yield* runStarted(index, container, restartCount, running, { startedAt, logFile, messageFile })
        })
      )

    /** An instance that started: report it running, stop it on deletion, report its end. */
    const runStarted = (
      index: number,
      container: NodeContainer,
      restartCount: number,
      running: RunningContainer,
      files: { readonly startedAt: string; readonly logFile: string; readonly messageFile: string }
    ) =>
      Effect.gen(function* () {
        const { containerID, imageID } = running
        context.logs.started(podRef, container.name, files.logFile)
        const probes = yield* containerProbes(container, { podIP, exec: running.exec })
        // As the kubelet: started once the startup probe (if any) succeeds, ready once started and the readiness probe (if any) succeeds.
        yield* setContainer(index, (status) => ({
          ...status,
          containerID,
          imageID,
          restartCount,
          ready: probes.startup === undefined && probes.readiness === undefined,
          started: probes.startup === undefined,
          state: { running: { startedAt: files.startedAt } }
        }))
        yield* deleted.pipe(
          Effect.flatMap((deleting) => running.stop(graceOf(deleting))),
          Effect.forkScoped
        )
        /** Probe results only touch this instance's status while it runs. */
        const whileRunning = (f: (status: ContainerStatusJson) => ContainerStatusJson) =>
          setContainer(index, (status) =>
            "running" in status.state && status.containerID === containerID ? f(status) : status
          )
        const probing = yield* superviseProbes(probes, {
          started: whileRunning((status) => ({ ...status, started: true, ready: probes.readiness === undefined })),
          ready: (ready) => whileRunning((status) => ({ ...status, ready }))
        }).pipe(
          Effect.flatMap((kill) =>
            Effect.logInfo(
              `Container ${container.name} failed ${kill.kind} probe${restartPolicy === "Never" ? "" : ", will be restarted"}`
            ).pipe(
              Effect.andThen(
                running.stop(
                  Duration.min(
                    Duration.seconds(
                      kill.terminationGracePeriodSeconds ?? pod.spec.terminationGracePeriodSeconds ?? 30
                    ),
                    context.maxGracePeriod
                  )
                )
              ),
              // The stop outlives this fiber's interruption when the container exits meanwhile.
              Effect.uninterruptible
            )
          ),
          Effect.forkScoped
        )
        const exit = yield* Effect.result(running.exited)
        // No probe result may land after the end is reported.
        yield* Fiber.interrupt(probing)
        context.logs.finished(podRef, container.name)
        if (Result.isFailure(exit)) return yield* startFailed(index, restartCount, exit.failure, containerID)
        const { exitCode, reason } = exit.success
        const finishedAt = yield* now
        const message = yield* terminationMessage({
          messageFile: files.messageFile,
          logFile: files.logFile,
          policy: container.terminationMessagePolicy,
          exitCode
        })
        yield* setContainer(index, (status) => ({
          ...status,
          ready: false,
          started: false,
          state: {
            terminated: {
              exitCode,
              reason: reason ?? (exitCode === 0 ? "Completed" : "Error"),
              ...(message === "" ? {} : { message }),
              startedAt: files.startedAt,
              finishedAt,
              containerID
            }
          }
        }))
        return { _tag: "Exited", exitCode } as const
      })

    /** A container's whole life: instances and restarts until policy or deletion says stop. */
    const runContainer = (volumes: ReadonlyMap<string, PodVolume>) => (container: NodeContainer, index: number) =>
      Effect.gen(function* () {
        for (let restartCount = 0; ; restartCount++) {
          const end = yield* runInstance(index, container, restartCount, volumes)
          if (end._tag === "Deleted" || (yield* Deferred.isDone(deletion))) return
          if (restartPolicy === "Never" || (restartPolicy === "OnFailure" && end.exitCode === 0)) return
          const delay = Duration.min(
            Duration.times(context.restartBackoff.initial, 2 ** Math.min(restartCount, 30)),
            context.restartBackoff.max
          )
          yield* setContainer(index, (status) => ({
            ...status,
            ready: false,
            started: false,
            lastState: status.state,
            state: {
              waiting: {
                reason: "CrashLoopBackOff",
                message: `back-off ${Duration.format(delay)} restarting failed container=${container.name} pod=${name}_${namespace}(${uid})`
              }
            } satisfies ContainerStateJson
          }))
          if (Option.isNone(yield* unlessDeleted(Effect.sleep(delay)))) return
        }
      })

    /** Every container waits while the Pod's volumes cannot be set up. */
    const setAllWaiting = (waiting: ContainerWaiting) =>
      Effect.sync(() => {
        for (const container of containers) context.logs.waiting(podRef, container.name, waiting.reason)
      }).pipe(
        Effect.andThen(
          Ref.update(state, (s) => ({
            ...s,
            containers: s.containers.map((status) => ({
              ...status,
              state: { waiting: { reason: waiting.reason, message: waiting.message } }
            }))
          }))
        ),
        Effect.andThen(report)
      )

    // A Pod that already finished (this node restarted) is not run again.
    if (!isTerminalPhase(pod.status?.phase)) {
      yield* report
      // Only a runtime with its own mount namespace can use volumes (and only then is a token requested).
      const mountsVolumes = containers.some((container) => context.runtimeFor(container).mountsVolumes)
      const volumes = mountsVolumes
        ? yield* unlessDeleted(
            untilReady(preparePodVolumes(pod, { podDir, addresses }), setAllWaiting).pipe(Effect.orDie)
          )
        : Option.some(new Map<string, PodVolume>())
      if (Option.isSome(volumes)) {
        yield* Effect.forEach(containers, runContainer(volumes.value), { concurrency: "unbounded", discard: true })
      }
    }
    const deleting = yield* deleted
    if (!isTerminalPhase(pod.status?.phase)) {
      yield* Ref.update(state, (s) => ({ ...s, terminal: true }))
      yield* report
    }
    // The Pod's containers are gone: complete the deletion. Finalizers (the Job
    // controller's job-tracking) may still hold the object; that is their job.
    yield* kube
      .delete(Pod, name, { namespace, gracePeriodSeconds: 0, preconditions: { uid: deleting.metadata.uid ?? uid } })
      .pipe(
        Effect.catchTags({ NotFound: () => Effect.void, Conflict: () => Effect.void }),
        Effect.catch((error) => Effect.logWarning(`process node: deleting pod ${namespace}/${name}: ${error.message}`))
      )
  }).pipe(
    // Token refreshes of the Pod's volumes live as long as the worker.
    Effect.scoped,
    // Interruption is the normal end (Pod gone, node released); anything else is a bug worth a log line.
    Effect.catchCause((cause) =>
      Cause.hasInterruptsOnly(cause)
        ? Effect.void
        : Effect.logError(
            `process node: pod ${assignment.pod.metadata.namespace}/${assignment.pod.metadata.name} failed`,
            cause
          )
    ),
    Effect.annotateLogs({ pod: `${assignment.pod.metadata.namespace}/${assignment.pod.metadata.name}` })
  )
