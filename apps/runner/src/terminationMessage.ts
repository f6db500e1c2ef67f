import { Effect, FileSystem } from "effect"
import { oneLine } from "./oneLine.ts"

/**
 * Writes the container's termination message: one line, which the kubelet
 * copies into the Pod status (`state.terminated.message`) for the controller
 * and `kubectl describe` to show. It is cut to 3900 characters (the kubelet
 * keeps 4096 bytes); a success message is never that long
 * (`RunnerContract.maxSuccessMessageBytes`), so its JSON stays whole. Failing
 * to write it is logged, never fatal:
 * the exit code still tells the Job what happened.
 *
 * @example
 * ```ts
 * yield* writeTerminationMessage("/dev/termination-log", "pg_dump failed: ...")
 * ```
 */
export const writeTerminationMessage = (
  path: string,
  message: string
): Effect.Effect<void, never, FileSystem.FileSystem> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    yield* fs.writeFileString(path, `${oneLine(message, 3900)}\n`)
  }).pipe(
    Effect.catch((error) =>
      Effect.logWarning("cannot write the termination message").pipe(
        Effect.annotateLogs({ path, error: oneLine(error.message) })
      )
    )
  )
