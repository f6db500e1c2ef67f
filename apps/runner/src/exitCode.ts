import { Cause, Effect } from "effect"
import { oneLine } from "./oneLine.ts"

/** Exit codes of `db-backup-runner` (a backup, or `restore`). */
export const ExitCode = {
  /** Done: a backup stored and verified, or a restore committed. */
  success: 0,
  /** It failed; the reason is in the last log line and the termination message. Nothing half-done is left. */
  failed: 1,
  /** The environment (a backup's contract) or the arguments (`restore`) are unusable. */
  invalidConfiguration: 2
} as const

/**
 * Logs why a run failed (`<what> failed`, with the reason, the error's tag and,
 * for a defect, its whole cause), reports `<what> failed: <reason>` with
 * `report` (the termination message), and gives the exit code: 2 for an
 * `InvalidConfiguration`, else 1.
 *
 * @example
 * ```ts
 * declare const cause: Cause.Cause<{ readonly _tag: string; readonly message: string }>
 * const code = yield* reportFailure("restore", cause, (message) => Effect.log(message))
 * ```
 */
export const reportFailure = <R>(
  what: string,
  cause: Cause.Cause<{ readonly _tag: string; readonly message: string }>,
  report: (message: string) => Effect.Effect<void, never, R>
): Effect.Effect<number, never, R> => {
  const error = Cause.findErrorOption(cause)
  const reason =
    error._tag === "Some"
      ? error.value.message
      : oneLine(`internal error: ${Cause.pretty(cause).split("\n", 1)[0] ?? "unknown"}`)
  return Effect.logError(`${what} failed`).pipe(
    Effect.annotateLogs({
      reason,
      error: error._tag === "Some" ? error.value._tag : "Defect",
      ...(error._tag === "Some" ? {} : { cause: Cause.pretty(cause) })
    }),
    Effect.andThen(report(`${what} failed: ${reason}`)),
    Effect.as(
      error._tag === "Some" && error.value._tag === "InvalidConfiguration"
        ? ExitCode.invalidConfiguration
        : ExitCode.failed
    )
  )
}
