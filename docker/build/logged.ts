import { Console, Duration, Effect, Schedule, Stream } from "effect"
import { ChildProcess, ChildProcessSpawner } from "effect/process"
import { ImageBuildError } from "./ImageBuildError.ts"

/** Progress and notices of the image build go to stderr, so stdout carries only the summary. */
export const say = (line: string): Effect.Effect<void> => Console.error(`images: ${line}`)

/** Options of {@link runLogged}. */
export interface LoggedOptions {
  /** What the step is, for progress and error messages ("debootstrap trixie"). */
  readonly what: string
  /** Picks the output lines worth showing as progress (returns the text to show), or none. */
  readonly progress?: ((line: string) => string | undefined) | undefined
  readonly env?: Record<string, string> | undefined
  readonly cwd?: string | undefined
  /** Kill the process group after this long (default 30 minutes). */
  readonly timeout?: Duration.Input | undefined
}

/**
 * Runs a long build step (debootstrap, apt, buildah) to completion, showing
 * the progress lines `options.progress` picks and a "still running" line every
 * 20 seconds. A non-zero exit fails with the last 40 lines of output. The
 * process gets an argument array, never a shell line; it is killed with its
 * group if interrupted or timed out.
 *
 * @example
 * ```ts
 * yield* runLogged("buildah", ["build", "-t", ref, "-f", file, dir], { what: `building ${ref}` })
 * ```
 */
export const runLogged = (
  command: string,
  args: ReadonlyArray<string>,
  options: LoggedOptions
): Effect.Effect<void, ImageBuildError, ChildProcessSpawner.ChildProcessSpawner> => {
  const timeout = Duration.fromInputUnsafe(options.timeout ?? Duration.minutes(30))
  const started = Date.now()
  const tail: Array<string> = []
  return Effect.scoped(
    Effect.gen(function* () {
      const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
      const handle = yield* spawner.spawn(
        ChildProcess.make(command, args, {
          ...(options.env === undefined ? {} : { env: options.env, extendEnv: true }),
          ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
          stdin: "ignore",
          forceKillAfter: "5 seconds"
        })
      )
      yield* Effect.sleep(Duration.seconds(20)).pipe(
        Effect.andThen(
          Effect.suspend(() => say(`still ${options.what}: ${Math.round((Date.now() - started) / 1000)} s`))
        ),
        Effect.repeat(Schedule.forever),
        Effect.forkScoped
      )
      yield* handle.all.pipe(
        Stream.decodeText(),
        // apt and dpkg redraw progress with carriage returns; keep the last state of each line.
        Stream.splitLines,
        Stream.map((line) => line.split("\r").at(-1) ?? ""),
        Stream.runForEach((line) =>
          Effect.suspend(() => {
            tail.push(line)
            if (tail.length > 40) tail.shift()
            const shown = options.progress?.(line)
            return shown === undefined ? Effect.void : say(shown)
          })
        )
      )
      return Number(yield* handle.exitCode)
    })
  ).pipe(
    Effect.mapError(
      (cause) => new ImageBuildError({ message: `${options.what}: cannot run ${command}: ${cause.message}`, cause })
    ),
    Effect.timeoutOrElse({
      duration: timeout,
      orElse: () =>
        Effect.fail(new ImageBuildError({ message: `${options.what}: timed out after ${Duration.format(timeout)}` }))
    }),
    Effect.flatMap((exitCode) =>
      exitCode === 0
        ? Effect.void
        : Effect.fail(
            new ImageBuildError({
              message: `${options.what} failed (${command} exited with code ${exitCode}); its last lines:\n${tail.join("\n")}`
            })
          )
    )
  )
}

/**
 * A progress filter that shows the first line of each phase (the first
 * capture of `pattern`) and nothing else: debootstrap's hundreds of
 * "I: Retrieving x" and "I: Validating x" lines become one line per phase.
 *
 * @example
 * ```ts
 * const progress = phases(/^I: (\S+)/u)
 * progress("I: Retrieving libc6") // "I: Retrieving libc6"
 * progress("I: Validating libc6") // "I: Validating libc6"
 * progress("I: Retrieving apt") // undefined
 * ```
 */
export const phases = (pattern: RegExp): ((line: string) => string | undefined) => {
  const seen = new Set<string>()
  return (line) => {
    const phase = pattern.exec(line)?.[1]
    if (phase === undefined || seen.has(phase)) return undefined
    seen.add(phase)
    return line
  }
}
