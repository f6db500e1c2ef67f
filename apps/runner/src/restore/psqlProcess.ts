import { spawn } from "node:child_process"
import { createInterface } from "node:readline"
import { Data, Duration, Effect, type Scope } from "effect"
import { ToolUnavailable } from "../errors.ts"
import { oneLine } from "../oneLine.ts"
import { type ChildEnv, started, stderrTailOf, terminate, toolProcessEnv } from "../process.ts"

/** How a psql run ended. */
export interface PsqlExit {
  /** Its exit code; `undefined` when a signal ended it. */
  readonly code: number | undefined
  readonly signal: string | undefined
  /** The last part of its stderr (errors, notices). */
  readonly stderr: string
}

/**
 * A psql reading SQL on stdin inside one transaction (`--single-transaction`
 * with `ON_ERROR_STOP`): it commits only when its input ends, and a statement
 * that fails ends it with nothing committed.
 */
export interface PsqlTransaction {
  /** Hands psql the next bytes; waits while its pipe is full. Fails once psql has exited. */
  readonly write: (bytes: Uint8Array) => Effect.Effect<void, PsqlExited>
  /** Ends psql's input, so it commits, and waits for it to exit. */
  readonly commit: Effect.Effect<PsqlExit>
  /** Waits for psql to exit (after it failed, say). */
  readonly exited: Effect.Effect<PsqlExit>
  /**
   * The lines psql printed that start with `marker` (the rest of its output is
   * dropped), once `count` of them came; fails if psql exits before.
   */
  readonly marked: (count: number) => Effect.Effect<ReadonlyArray<string>, PsqlExited>
}

/** psql stopped reading before its input ended: it has exited (see `exited` for why). */
export class PsqlExited extends Data.TaggedError("PsqlExited")<Record<never, never>> {}

/**
 * Starts psql (`command` with `args`, no shell; its input on stdin). It lives
 * in the current Scope: closing the Scope before {@link PsqlTransaction.commit}
 * kills psql at once (SIGKILL), so its connection closes with the transaction
 * open and the server rolls it back. Nothing can commit then, whatever psql
 * had read: a psql killed that way never sends COMMIT.
 */
export const spawnPsqlTransaction = (options: {
  readonly command: string
  readonly args: ReadonlyArray<string>
  readonly env: ChildEnv
  /** Output lines starting with this are kept for {@link PsqlTransaction.marked}. */
  readonly marker: string
}): Effect.Effect<PsqlTransaction, ToolUnavailable, Scope.Scope> =>
  Effect.gen(function* () {
    const child = yield* Effect.try({
      try: () =>
        spawn(options.command, [...options.args], {
          env: toolProcessEnv(options.env),
          stdio: ["pipe", "pipe", "pipe"]
        }),
      catch: (error) =>
        new ToolUnavailable({
          message: oneLine(`cannot start psql: ${error instanceof Error ? error.message : String(error)}`)
        })
    })
    const stdin = child.stdin
    if (stdin === null) return yield* new ToolUnavailable({ message: "cannot start psql: no stdin" })
    // A write after psql exited fails with EPIPE; that is reported through `exited`, not thrown.
    let closed = false
    stdin.on("error", () => {
      closed = true
    })
    stdin.once("close", () => {
      closed = true
    })
    const exit = new Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>((resolve) =>
      child.once("exit", (code, signal) => resolve({ code, signal }))
    )
    const stderr = stderrTailOf(child)
    // Its output is drained as it comes (a full pipe would stall psql); only marked lines are kept.
    const marked: Array<string> = []
    let onMarked = () => {}
    if (child.stdout !== null) {
      createInterface({ input: child.stdout }).on("line", (line) => {
        if (!line.startsWith(options.marker)) return
        marked.push(line)
        onMarked()
      })
    }
    let hasExited = false
    child.once("exit", () => {
      hasExited = true
      onMarked()
    })
    let committing = false
    yield* Effect.addFinalizer(() =>
      // Not told to commit: kill it, so the transaction cannot commit.
      committing ? terminate(child, Duration.seconds(10)) : terminate(child, Duration.seconds(10), "SIGKILL")
    )
    yield* started(child, "psql")

    const exited: Effect.Effect<PsqlExit> = Effect.promise(() => exit).pipe(
      Effect.flatMap(({ code, signal }) =>
        Effect.map(stderr, (text) => ({ code: code ?? undefined, signal: signal ?? undefined, stderr: text }))
      )
    )

    const write = (bytes: Uint8Array) =>
      Effect.callback<void, PsqlExited>((resume) => {
        if (closed || stdin.destroyed) {
          resume(Effect.fail(new PsqlExited()))
          return
        }
        if (stdin.write(bytes)) {
          resume(Effect.void)
          return
        }
        const onDrain = () => {
          stdin.off("close", onClose)
          resume(Effect.void)
        }
        const onClose = () => {
          stdin.off("drain", onDrain)
          resume(Effect.fail(new PsqlExited()))
        }
        stdin.once("drain", onDrain)
        stdin.once("close", onClose)
        return Effect.sync(() => {
          stdin.off("drain", onDrain)
          stdin.off("close", onClose)
        })
      })

    const commit = Effect.suspend(() => {
      committing = true
      stdin.end()
      return exited
    })

    const awaitMarked = (count: number) =>
      Effect.callback<ReadonlyArray<string>, PsqlExited>((resume) => {
        const check = () => {
          if (marked.length >= count) resume(Effect.succeed(marked.slice(0, count)))
          else if (hasExited) resume(Effect.fail(new PsqlExited()))
          else return false
          return true
        }
        if (check()) return
        onMarked = () => {
          if (check()) onMarked = () => {}
        }
        return Effect.sync(() => {
          onMarked = () => {}
        })
      })

    return { write, commit, exited, marked: awaitMarked } satisfies PsqlTransaction
  })
