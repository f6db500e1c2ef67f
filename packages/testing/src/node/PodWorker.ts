import { type Container, KubeClient, Pod } from "@db-backup-operator/kube"
import {
  Cause,
  Deferred,
  Duration,
  Effect,
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
import { containerArgv, type ImageMap, lookPath } from "./command.ts"
import { StartError, startContainerProcess } from "./containerProcess.ts"
import { resolveEnv } from "./env.ts"
import { type LogRegistry, terminationMessage } from "./logs.ts"
import {
  type ContainerStateJson,
  type ContainerStatusJson,
  isTerminalPhase,
  type PodConditionJson,
  podStatus,
  waitingStatus
} from "./podStatus.ts"
import { now } from "./time.ts"

/** What every Pod worker of one node shares. */
export interface PodWorkerContext {
  readonly hostIP: string
  readonly imageMap: ImageMap
  /** Each Pod gets `<podsDir>/<namespace>_<name>_<uid>/`. */
  readonly podsDir: string
  /** `PATH` of every container (there is no image to bring its own). */
  readonly path: string
  readonly logs: LogRegistry
  /** Retry interval for a container waiting on a missing Secret or ConfigMap. */
  readonly configRetry: Duration.Input
  /** Upper bound of a deletion's grace period (the kubelet's default is 30 s). */
  readonly maxGracePeriod: Duration.Duration
  /** Restart back-off of `OnFailure`/`Always` containers: doubles from `initial` up to `max`. */
  readonly restartBackoff: { readonly initial: Duration.Duration; readonly max: Duration.Duration }
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
 * containers start together (each a local process), env is resolved from the
 * API, status is reported after every change, `restartPolicy` decides
 * restarts, and a deletion (`deletion` completes with the Pod carrying a
 * deletionTimestamp) kills the processes within the grace period, reports
 * them terminated and finishes the deletion with grace 0. Interrupting the
 * worker kills its processes too.
 *
 * @example
 * ```ts
 * yield* FiberMap.run(workers, uid, runPod(pod, deletion, context))
 * ```
 */
export const runPod = (
  pod: Pod,
  deletion: Deferred.Deferred<Pod>,
  context: PodWorkerContext
): Effect.Effect<void, never, Services> =>
  Effect.gen(function* () {
    const kube = yield* KubeClient
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const namespace = pod.metadata.namespace ?? "default"
    const name = pod.metadata.name ?? ""
    const uid = pod.metadata.uid ?? ""
    const containers = pod.spec.containers
    const restartPolicy = pod.spec.restartPolicy ?? "Always"
    const podDir = path.join(context.podsDir, `${namespace}_${name}_${uid}`)
    const workDir = path.join(podDir, "work")
    const containerDir = (container: Container) => path.join(podDir, "containers", container.name)

    yield* fs.makeDirectory(workDir, { recursive: true })
    for (const container of containers) yield* fs.makeDirectory(containerDir(container), { recursive: true })

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

    const deleted = Deferred.await(deletion)
    /** Runs `effect` unless the Pod is deleted first (then None). */
    const unlessDeleted = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<Option.Option<A>, E, R> =>
      Effect.raceFirst(Effect.map(effect, Option.some), Effect.as(deleted, Option.none<A>()))

    const graceOf = (deleting: Pod) =>
      Duration.min(Duration.seconds(deleting.metadata.deletionGracePeriodSeconds ?? 30), context.maxGracePeriod)

    /** One instance of a container: resolve env, start, wait for the exit, report it. */
    const runInstance = (index: number, container: Container, restartCount: number) =>
      Effect.scoped(
        Effect.gen(function* (): Effect.fn.Return<InstanceEnd, never, Services | Scope.Scope> {
          const dir = containerDir(container)
          const messageFile = path.join(dir, "termination-log")
          const base = { PATH: context.path, HOME: workDir, HOSTNAME: name }
          const resolved = yield* unlessDeleted(
            resolveEnv(pod, container, { base, hostIP: context.hostIP }).pipe(
              Effect.tapError((error) =>
                setContainer(index, (status) => ({
                  ...status,
                  state: { waiting: { reason: "CreateContainerConfigError", message: error.message } }
                }))
              ),
              Effect.retry(Schedule.spaced(context.configRetry)),
              // A spaced schedule never gives up: no failure gets past the retry.
              Effect.orDie
            )
          )
          if (Option.isNone(resolved)) return { _tag: "Deleted" }
          // The kubelet mounts /dev/termination-log; our programs find the file through this variable.
          const env: Record<string, string> = { ...resolved.value, TERMINATION_MESSAGE_PATH: messageFile }
          const logFile = path.join(dir, `${restartCount}.log`)
          yield* fs.writeFileString(logFile, "").pipe(Effect.orDie)
          yield* fs.writeFileString(messageFile, "").pipe(Effect.orDie)
          context.logs.register(
            { namespace, name, uid },
            containers.map((c) => c.name),
            container.name,
            logFile
          )
          const startedAt = yield* now

          const started = yield* Effect.gen(function* () {
            const argv = containerArgv(container, context.imageMap, env)
            if (Result.isFailure(argv)) return yield* new StartError({ message: argv.failure })
            const [command, ...args] = argv.success
            const executable = yield* lookPath(command, { path: env.PATH ?? context.path, cwd: workDir }).pipe(
              Effect.mapError((message) => new StartError({ message }))
            )
            return yield* startContainerProcess({ executable, args, env, cwd: workDir, logFile })
          }).pipe(Effect.result)

          if (Result.isFailure(started)) {
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
                  message: started.failure.message,
                  startedAt,
                  finishedAt
                }
              }
            }))
            return { _tag: "Exited", exitCode: 128 }
          }
          const proc = started.success
          const containerID = `process://${proc.pid}`
          yield* setContainer(index, (status) => ({
            ...status,
            containerID,
            restartCount,
            ready: true,
            started: true,
            state: { running: { startedAt } }
          }))
          yield* deleted.pipe(
            Effect.flatMap((deleting) => proc.stop(graceOf(deleting))),
            Effect.forkScoped
          )
          const exitCode = yield* proc.exited
          const finishedAt = yield* now
          const message = yield* terminationMessage({
            messageFile,
            logFile,
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
                reason: exitCode === 0 ? "Completed" : "Error",
                ...(message === "" ? {} : { message }),
                startedAt,
                finishedAt,
                containerID
              }
            }
          }))
          return { _tag: "Exited", exitCode }
        })
      )

    /** A container's whole life: instances and restarts until policy or deletion says stop. */
    const runContainer = (container: Container, index: number) =>
      Effect.gen(function* () {
        for (let restartCount = 0; ; restartCount++) {
          const end = yield* runInstance(index, container, restartCount)
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

    // A Pod that already finished (this node restarted) is not run again.
    if (!isTerminalPhase(pod.status?.phase)) {
      yield* report
      yield* Effect.forEach(containers, runContainer, { concurrency: "unbounded", discard: true })
    }
    const deleting = yield* deleted
    if (!isTerminalPhase(pod.status?.phase)) {
      yield* Ref.update(state, (s) => ({ ...s, terminal: true }))
      yield* report
    }
    // The Pod's processes are gone: complete the deletion. Finalizers (the Job
    // controller's job-tracking) may still hold the object; that is their job.
    yield* kube
      .delete(Pod, name, { namespace, gracePeriodSeconds: 0, preconditions: { uid: deleting.metadata.uid ?? uid } })
      .pipe(
        Effect.catchTags({ NotFound: () => Effect.void, Conflict: () => Effect.void }),
        Effect.catch((error) => Effect.logWarning(`process node: deleting pod ${namespace}/${name}: ${error.message}`))
      )
  }).pipe(
    // Interruption is the normal end (Pod gone, node released); anything else is a bug worth a log line.
    Effect.catchCause((cause) =>
      Cause.hasInterruptsOnly(cause)
        ? Effect.void
        : Effect.logError(`process node: pod ${pod.metadata.namespace}/${pod.metadata.name} failed`, cause)
    ),
    Effect.annotateLogs({ pod: `${pod.metadata.namespace}/${pod.metadata.name}` })
  )
