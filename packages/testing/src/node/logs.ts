import { Effect, FileSystem } from "effect"
import { ProcessNodeError } from "./errors.ts"

interface PodLogs {
  readonly uid: string
  /** Container names in spec order, so the default container is the first. */
  readonly order: ReadonlyArray<string>
  /** Container name -> the log file of its current (latest) instance. */
  readonly current: Map<string, string>
}

/**
 * Where each Pod's container output is: the latest Pod of a name wins (a Job's
 * Pod recreated under the same name), and entries outlive the Pod so tests can
 * read the logs of Pods that were already deleted.
 */
export class LogRegistry {
  readonly #pods = new Map<string, PodLogs>()

  /** Records the log file of a container instance that is starting. */
  register(
    pod: { readonly namespace: string; readonly name: string; readonly uid: string },
    containers: ReadonlyArray<string>,
    container: string,
    file: string
  ): void {
    const key = `${pod.namespace}/${pod.name}`
    let entry = this.#pods.get(key)
    if (entry === undefined || entry.uid !== pod.uid) {
      entry = { uid: pod.uid, order: containers, current: new Map() }
      this.#pods.set(key, entry)
    }
    entry.current.set(container, file)
  }

  /** The log file of a container (by default the Pod's first container). */
  file(namespace: string, pod: string, container?: string): Effect.Effect<string, ProcessNodeError> {
    const entry = this.#pods.get(`${namespace}/${pod}`)
    if (entry === undefined) {
      return Effect.fail(new ProcessNodeError({ message: `pod ${namespace}/${pod} has not run on this process node` }))
    }
    const name = container ?? entry.order[0] ?? ""
    const file = entry.current.get(name)
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
