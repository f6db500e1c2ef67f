import { spawn } from "node:child_process"
import { NodeStream } from "@effect/platform-node"
import { Cause, Duration, Effect, Fiber, Stream } from "effect"
import { RestoreFailed, ToolUnavailable } from "../errors.ts"
import { oneLine, reasonFromStderr } from "../oneLine.ts"
import { pgRestoreScriptArgs } from "../postgres/commands.ts"
import { started, stderrTailOf, terminate, toolProcessEnv } from "../process.ts"

const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error))

/**
 * A custom-format archive as the SQL script it holds, streamed: `archive`
 * goes to the stdin of `pg_restore --format=custom --file=-` (`command`, its
 * arguments an array, no shell) and the script comes out of its stdout.
 * pg_restore reads an archive front to back when it cannot seek, as pg_dump
 * wrote it into a pipe, so nothing is buffered or written to disk, and it is
 * read only as fast as the script is taken.
 *
 * The stream ends only once pg_restore exited 0 and `archive` was read to its
 * end: pg_restore may exit before the end of its input (it needs no byte after
 * the last data block), and the rest is then read and dropped, so that a
 * checksum taken upstream still covers every byte. It fails when pg_restore
 * does (a damaged or cut archive, an archive version newer than it reads),
 * with pg_restore's own reason as `describeReason` words it, or with
 * `archive`'s error when that fails first: pg_restore is then killed, as the
 * archive it would see cut short is only a consequence. pg_restore lives in
 * the stream's Scope: a stream ended early (psql failed, the restore was
 * stopped) kills it.
 *
 * @example
 * ```ts
 * declare const archive: Stream.Stream<Uint8Array>
 * const script = archive.pipe(
 *   archiveToSql({ command: "/usr/lib/postgresql/17/bin/pg_restore", describeReason: (reason) => `${reason}; nothing was restored` })
 * )
 * ```
 */
export const archiveToSql =
  (options: {
    readonly command: string
    /** The failure's message after `pg_restore failed (exit code N): `, from pg_restore's error line (default: that line). */
    readonly describeReason?: ((reason: string) => string) | undefined
  }) =>
  <E, R>(archive: Stream.Stream<Uint8Array, E, R>): Stream.Stream<Uint8Array, E | RestoreFailed | ToolUnavailable, R> =>
    Stream.unwrap(
      Effect.gen(function* () {
        const child = yield* Effect.try({
          try: () =>
            // It writes a script and connects to no server: it gets none of the runner's PG* variables.
            spawn(options.command, [...pgRestoreScriptArgs], {
              env: toolProcessEnv({}),
              stdio: ["pipe", "pipe", "pipe"]
            }),
          catch: (error) => new ToolUnavailable({ message: oneLine(`cannot start pg_restore: ${errorText(error)}`) })
        })
        const { stdin, stdout } = child
        if (stdin === null || stdout === null) {
          return yield* new ToolUnavailable({ message: "cannot start pg_restore: no stdin or stdout" })
        }
        const exited = new Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>(
          (resolve) => child.once("exit", (code, signal) => resolve({ code, signal }))
        )
        const stderr = stderrTailOf(child)
        yield* Effect.addFinalizer(() => terminate(child, Duration.seconds(5)))
        yield* started(child, "pg_restore")

        // Once pg_restore stops reading (it exited), a write fails with EPIPE: reported by its exit, not thrown.
        let closed = false
        stdin.on("error", () => {
          closed = true
        })
        stdin.once("close", () => {
          closed = true
        })
        const write = (bytes: Uint8Array) =>
          Effect.callback<void>((resume) => {
            if (closed || stdin.destroyed || stdin.write(bytes)) {
              resume(Effect.void)
              return
            }
            const onDrain = () => {
              stdin.off("close", onClose)
              resume(Effect.void)
            }
            const onClose = () => {
              stdin.off("drain", onDrain)
              resume(Effect.void)
            }
            stdin.once("drain", onDrain)
            stdin.once("close", onClose)
            return Effect.sync(() => {
              stdin.off("drain", onDrain)
              stdin.off("close", onClose)
            })
          })

        let inputFailed = false
        const feeder = yield* Stream.runForEach(archive, (chunk) => (closed ? Effect.void : write(chunk))).pipe(
          Effect.andThen(
            Effect.sync(() => {
              if (!closed) stdin.end()
            })
          ),
          Effect.onError((cause) =>
            Effect.sync(() => {
              inputFailed = !Cause.hasInterruptsOnly(cause)
              child.kill("SIGKILL")
            })
          ),
          Effect.forkScoped
        )

        // After its stdout ended: pg_restore's verdict, then the input read to its end.
        const finished = Effect.gen(function* () {
          const { code, signal } = yield* Effect.promise(() => exited)
          if (inputFailed) return yield* Fiber.join(feeder)
          if (code !== 0) {
            const reason = reasonFromStderr(yield* stderr) ?? "no error output"
            return yield* new RestoreFailed({
              message: oneLine(
                `pg_restore failed (${code === null ? `killed by ${signal ?? "a signal"}` : `exit code ${code}`}): ${options.describeReason?.(reason) ?? reason}`
              )
            })
          }
          const warnings = (yield* stderr).trim()
          if (warnings !== "") {
            yield* Effect.logWarning("pg_restore reported").pipe(Effect.annotateLogs({ stderr: oneLine(warnings) }))
          }
          yield* Fiber.join(feeder)
        })
        return Stream.concat(
          NodeStream.fromReadable<Uint8Array, RestoreFailed>({
            evaluate: () => stdout,
            onError: (error) =>
              new RestoreFailed({ message: oneLine(`reading pg_restore's output failed: ${errorText(error)}`) })
          }),
          Stream.fromEffectDrain(finished)
        )
      })
    )
