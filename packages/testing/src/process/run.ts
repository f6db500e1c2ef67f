import { Duration, Effect, Stream } from "effect"
import { ChildProcess, ChildProcessSpawner } from "effect/process"
import { ProcessError } from "./ProcessError.ts"
import { wrapCommand } from "./privileges.ts"

/** Options of {@link runProcess}. */
export interface RunOptions {
  /** Extra environment, added to ours. */
  readonly env?: Record<string, string> | undefined
  readonly cwd?: string | undefined
  /** Written to the process's stdin, which is then closed. */
  readonly stdin?: string | undefined
  /** Run as this user when we are root (see `wrapCommand`). */
  readonly user?: string | undefined
  /** Kill the process group after this long (default 2 minutes). */
  readonly timeout?: Duration.Input | undefined
}

/** What a finished process printed, and its exit code. */
export interface RunResult {
  readonly stdout: string
  readonly stderr: string
  readonly exitCode: number
}

/** Renders a command for messages; arguments are shown, so never put a secret in them. */
export const describeCommand = (command: string, args: ReadonlyArray<string>): string =>
  [command, ...args].map((word) => (/^[\w@%+=:,./-]+$/u.test(word) ? word : JSON.stringify(word))).join(" ")

/**
 * Runs a short-lived command to completion (in its own process group, killed
 * with the group if interrupted or timed out) and returns its output. A non-zero
 * exit code is a result, not a failure; use {@link runChecked} for that.
 *
 * @example
 * ```ts
 * const { stdout } = yield* runProcess("openssl", ["version"])
 * ```
 */
export const runProcess = (
  command: string,
  args: ReadonlyArray<string>,
  options: RunOptions = {}
): Effect.Effect<RunResult, ProcessError, ChildProcessSpawner.ChildProcessSpawner> => {
  const wrapped = wrapCommand(command, args, { user: options.user, parentDeathSignal: "SIGKILL" })
  const display = describeCommand(command, args)
  const timeout = Duration.fromInputUnsafe(options.timeout ?? Duration.minutes(2))
  return Effect.scoped(
    Effect.gen(function* () {
      const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
      const handle = yield* spawner.spawn(
        ChildProcess.make(wrapped.command, wrapped.args, {
          ...(options.env === undefined ? {} : { env: options.env, extendEnv: true }),
          ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
          stdin: options.stdin === undefined ? "ignore" : Stream.succeed(new TextEncoder().encode(options.stdin)),
          forceKillAfter: "3 seconds"
        })
      )
      const [stdout, stderr, exitCode] = yield* Effect.all(
        [
          handle.stdout.pipe(Stream.decodeText(), Stream.mkString),
          handle.stderr.pipe(Stream.decodeText(), Stream.mkString),
          handle.exitCode
        ],
        { concurrency: "unbounded" }
      )
      return { stdout, stderr, exitCode: Number(exitCode) }
    })
  ).pipe(
    Effect.mapError((cause) => new ProcessError({ message: `${display}: ${cause.message}`, command: display, cause })),
    Effect.timeoutOrElse({
      duration: timeout,
      orElse: () =>
        Effect.fail(
          new ProcessError({ message: `${display}: timed out after ${Duration.format(timeout)}`, command: display })
        )
    })
  )
}

/**
 * Like {@link runProcess}, but a non-zero exit code fails with a
 * {@link ProcessError} carrying stderr; returns stdout.
 *
 * @example
 * ```ts
 * const version = yield* runChecked("go", ["env", "GOVERSION"])
 * ```
 */
export const runChecked = (
  command: string,
  args: ReadonlyArray<string>,
  options: RunOptions = {}
): Effect.Effect<string, ProcessError, ChildProcessSpawner.ChildProcessSpawner> =>
  runProcess(command, args, options).pipe(
    Effect.flatMap((result) =>
      result.exitCode === 0
        ? Effect.succeed(result.stdout)
        : Effect.fail(
            new ProcessError({
              message: `${describeCommand(command, args)} exited with code ${result.exitCode}: ${lastLines(result.stderr || result.stdout, 20)}`,
              command: describeCommand(command, args),
              output: lastLines(`${result.stdout}\n${result.stderr}`, 40)
            })
          )
    )
  )

/** The last `count` non-empty lines of `text`. */
export const lastLines = (text: string, count: number): string =>
  text
    .split("\n")
    .filter((line) => line.trim().length > 0)
    .slice(-count)
    .join("\n")
