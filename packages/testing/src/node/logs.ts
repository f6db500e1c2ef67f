import { Effect, FileSystem, Result } from "effect"
import { ProcessNodeError } from "./errors.ts"

/** One instance of a container: its log file, and whether it has stopped (all output is in the file then). */
export interface LogInstance {
  readonly file: string
  readonly done: boolean
}

/** The registry's own view: `done` flips in place, so a reader following the log sees it. */
interface Instance {
  readonly file: string
  done: boolean
}

interface ContainerLogs {
  current?: Instance
  previous?: Instance
  /** Why the container waits, while no instance has started. */
  waiting: string
}

interface PodLogs {
  readonly uid: string
  /** Container names in spec order, so the default container is the first. */
  readonly order: ReadonlyArray<string>
  readonly containers: Map<string, ContainerLogs>
}

/** Why a log cannot be served, with the kubelet's HTTP status and wording. */
export interface LogUnavailable {
  readonly status: 400 | 404
  readonly message: string
}

/**
 * Where each Pod's container output is: the latest Pod of a name wins (a Job's
 * Pod recreated under the same name), and entries outlive the Pod so tests can
 * read the logs of Pods that were already deleted. Knows the current and the
 * previous instance of every container, as the kubelet's log endpoint needs.
 */
export class LogRegistry {
  readonly #pods = new Map<string, PodLogs>()

  /** Records a Pod that starts on this node (its containers wait to be created). */
  register(
    pod: { readonly namespace: string; readonly name: string; readonly uid: string },
    containers: ReadonlyArray<string>
  ): void {
    const key = `${pod.namespace}/${pod.name}`
    const entry = this.#pods.get(key)
    if (entry !== undefined && entry.uid === pod.uid) return
    this.#pods.set(key, {
      uid: pod.uid,
      order: containers,
      containers: new Map(containers.map((name) => [name, { waiting: "ContainerCreating" }]))
    })
  }

  #container(namespace: string, pod: string, uid: string, container: string): ContainerLogs | undefined {
    const entry = this.#pods.get(`${namespace}/${pod}`)
    return entry?.uid === uid ? entry.containers.get(container) : undefined
  }

  /** A new instance of a container started, writing to `file`; the one before becomes the previous. */
  started(
    pod: { readonly namespace: string; readonly name: string; readonly uid: string },
    container: string,
    file: string
  ): void {
    const logs = this.#container(pod.namespace, pod.name, pod.uid, container)
    if (logs === undefined) return
    if (logs.current !== undefined) logs.previous = logs.current
    logs.current = { file, done: false }
  }

  /** The current instance of a container stopped and its output is complete. */
  finished(pod: { readonly namespace: string; readonly name: string; readonly uid: string }, container: string): void {
    const logs = this.#container(pod.namespace, pod.name, pod.uid, container)
    if (logs?.current !== undefined) logs.current.done = true
  }

  /** The container waits (for its image, config, volumes): what a log request is told until it starts. */
  waiting(
    pod: { readonly namespace: string; readonly name: string; readonly uid: string },
    container: string,
    reason: string
  ): void {
    const logs = this.#container(pod.namespace, pod.name, pod.uid, container)
    if (logs !== undefined) logs.waiting = reason
  }

  /**
   * The instance a log request means, as the kubelet chooses it: the current
   * (running or last stopped) one, or with `previous` the one before it.
   */
  select(
    namespace: string,
    pod: string,
    container: string,
    previous: boolean
  ): Result.Result<LogInstance, LogUnavailable> {
    const entry = this.#pods.get(`${namespace}/${pod}`)
    if (entry === undefined) return Result.fail({ status: 404, message: `pod "${pod}" does not exist` })
    const logs = entry.containers.get(container)
    if (logs === undefined) {
      return Result.fail({ status: 404, message: `container "${container}" not found in pod "${pod}"` })
    }
    if (previous) {
      return logs.previous === undefined
        ? Result.fail({
            status: 400,
            message: `previous terminated container "${container}" in pod "${pod}" not found`
          })
        : Result.succeed(logs.previous)
    }
    return logs.current === undefined
      ? Result.fail({
          status: 400,
          message: `container "${container}" in pod "${pod}" is waiting to start: ${logs.waiting}`
        })
      : Result.succeed(logs.current)
  }

  /** The log file of a container's current instance (by default the Pod's first container). */
  file(namespace: string, pod: string, container?: string): Effect.Effect<string, ProcessNodeError> {
    const entry = this.#pods.get(`${namespace}/${pod}`)
    if (entry === undefined) {
      return Effect.fail(new ProcessNodeError({ message: `pod ${namespace}/${pod} has not run on this process node` }))
    }
    const name = container ?? entry.order[0] ?? ""
    const file = entry.containers.get(name)?.current?.file
    if (file === undefined) {
      return Effect.fail(
        new ProcessNodeError({
          message: entry.order.includes(name)
            ? `container "${name}" in pod ${namespace}/${pod} has not started`
            : `container "${name}" is not valid for pod ${namespace}/${pod}`
        })
      )
    }
    return Effect.succeed(file)
  }

  /** The first container of a Pod (what `kubectl logs POD` means without `-c`). */
  defaultContainer(namespace: string, pod: string): string | undefined {
    return this.#pods.get(`${namespace}/${pod}`)?.order[0]
  }
}

/** The kubelet's limits for `terminationMessagePolicy: FallbackToLogsOnError`. */
const fallbackLines = 80
const fallbackBytes = 2048
/** The kubelet reads at most this much of the termination message file. */
export const maxTerminationMessageBytes = 4096

const decodeUtf8 = (bytes: Uint8Array): string => new TextDecoder().decode(bytes)

/** The last 80 lines of a log, at most 2 KiB, as the kubelet's fallback message. */
export const logTail = (log: Uint8Array): string => {
  const tail = decodeUtf8(log.subarray(Math.max(0, log.length - fallbackBytes)))
  const lines = tail.split("\n")
  if (lines.at(-1) === "") lines.pop()
  return lines.slice(-fallbackLines).join("\n")
}

/**
 * The `state.terminated.message` of a container that exited: its termination
 * message file (first 4 KiB) or, under `FallbackToLogsOnError`, when that is
 * empty and the container failed, the tail of its log.
 *
 * @example
 * ```ts
 * const message = yield* terminationMessage({ messageFile, logFile, policy: "FallbackToLogsOnError", exitCode: 1 })
 * ```
 */
export const terminationMessage = (options: {
  readonly messageFile: string
  readonly logFile: string
  readonly policy: string | undefined
  readonly exitCode: number
}): Effect.Effect<string, never, FileSystem.FileSystem> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const file = yield* fs.readFile(options.messageFile).pipe(Effect.orElseSucceed(() => new Uint8Array()))
    const message = decodeUtf8(file.subarray(0, maxTerminationMessageBytes))
    if (message !== "" || options.exitCode === 0 || options.policy !== "FallbackToLogsOnError") return message
    const log = yield* fs.readFile(options.logFile).pipe(Effect.orElseSucceed(() => new Uint8Array()))
    return logTail(log)
  })
