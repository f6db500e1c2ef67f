import { type Cause, type Duration, Effect, type PlatformError, type Redacted, Stream } from "effect"
import { ChildProcess, ChildProcessSpawner } from "effect/process"

/** The environment a PostgreSQL client tool gets on top of the runner's own. */
export type ChildEnv = Record<string, string | Redacted.Redacted<string> | undefined>

/**
 * A tool's environment: the runner's own, minus every `PG*` variable in it,
 * plus `env`. libpq reads dozens of `PG*` variables (`PGSSLMODE`,
 * `PGREQUIREAUTH`, `PGSERVICE` pointing at a service file, `PGHOSTADDR`, ...);
 * none set on the container may weaken or redirect the connection the runner
 * decided on, so the tools see only what `env` sets. (`undefined` makes the
 * spawner unset a variable.)
 *
 * @example
 * ```ts
 * withoutInheritedLibpqVariables({ PGSSLMODE: "verify-full" }, { PGSSLMODE: "disable", PGSERVICE: "evil", PATH: "/bin" })
 * // { PGSSLMODE: "verify-full", PGSERVICE: undefined }   (PATH is inherited as usual)
 * ```
 */
export const withoutInheritedLibpqVariables = (
  env: ChildEnv,
  inherited: Readonly<Record<string, string | undefined>> = process.env
): ChildEnv => {
  const unset: ChildEnv = {}
  for (const name of Object.keys(inherited)) if (name.startsWith("PG")) unset[name] = undefined
  return { ...unset, ...env }
}

/** What a finished short-lived process printed. */
export interface ProcessOutput {
  readonly exitCode: number
  readonly stdout: string
  /** The last {@link stderrTailBytes} bytes of stderr. */
  readonly stderr: string
}

/** How much stderr is kept: enough for the reason, bounded whatever the tool prints. */
export const stderrTailBytes = 64 * 1024

/**
 * Folds a byte stream into its last `maxBytes` bytes (bounded memory for
 * arbitrarily chatty stderr).
 */
export const collectTail = <E, R>(stream: Stream.Stream<Uint8Array, E, R>, maxBytes: number = stderrTailBytes) =>
  Stream.runFold(
    stream,
    () => Buffer.alloc(0),
    (tail: Buffer, chunk: Uint8Array) => {
      const joined = Buffer.concat([tail, chunk])
      return joined.length > maxBytes ? joined.subarray(joined.length - maxBytes) : joined
    }
  ).pipe(Effect.map((buffer) => buffer.toString("utf8")))

/**
 * Runs a short-lived command (argument array, no shell) and captures its
 * output; a non-zero exit is a result, not a failure. The process is killed if
 * it outlives `timeout`. Its environment is the runner's without `PG*`
 * variables, plus `env` (see {@link withoutInheritedLibpqVariables}).
 */
export const runCaptured = (
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly env?: ChildEnv; readonly timeout: Duration.Input }
): Effect.Effect<
  ProcessOutput,
  PlatformError.PlatformError | Cause.TimeoutError,
  ChildProcessSpawner.ChildProcessSpawner
> =>
  Effect.scoped(
    Effect.gen(function* () {
      const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
      const handle = yield* spawner.spawn(
        ChildProcess.make(command, [...args], {
          env: withoutInheritedLibpqVariables(options.env ?? {}),
          extendEnv: true,
          stdin: "ignore",
          forceKillAfter: "5 seconds"
        })
      )
      const [stdout, stderr] = yield* Effect.all(
        [collectTail(handle.stdout, 1024 * 1024), collectTail(handle.stderr)],
        {
          concurrency: 2
        }
      )
      const exitCode = yield* handle.exitCode
      return { exitCode, stdout, stderr }
    })
  ).pipe(Effect.timeout(options.timeout))
