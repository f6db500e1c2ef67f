import type { ChildProcess as NodeChildProcess } from "node:child_process"
import { type Cause, Duration, Effect, type PlatformError, Redacted, Stream } from "effect"
import { ChildProcess, ChildProcessSpawner } from "effect/process"
import { ToolUnavailable } from "./errors.ts"
import { oneLine } from "./oneLine.ts"

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

/** A tool's whole environment for `node:child_process`: the runner's own without `PG*` variables, plus `env` (`undefined` unsets). */
export const toolProcessEnv = (env: ChildEnv): NodeJS.ProcessEnv => {
  const result: NodeJS.ProcessEnv = { ...process.env }
  for (const [name, value] of Object.entries(withoutInheritedLibpqVariables(env))) {
    if (value === undefined) delete result[name]
    else result[name] = typeof value === "string" ? value : Redacted.value(value)
  }
  return result
}

/** Waits for a child to start; a command that cannot start (missing, not executable) is ToolUnavailable. */
export const started = (child: NodeChildProcess, tool: string) =>
  Effect.callback<void, ToolUnavailable>((resume) => {
    const onSpawn = () => {
      child.off("error", onError)
      resume(Effect.void)
    }
    const onError = (error: Error) => {
      child.off("spawn", onSpawn)
      resume(Effect.fail(new ToolUnavailable({ message: oneLine(`cannot start ${tool}: ${error.message}`) })))
    }
    child.once("spawn", onSpawn)
    child.once("error", onError)
    return Effect.sync(() => {
      child.off("spawn", onSpawn)
      child.off("error", onError)
    })
  })

/** Ends a child that still runs: `signal` (SIGTERM), then SIGKILL after `forceKillAfter`; waits for it to exit. */
export const terminate = (
  child: NodeChildProcess,
  forceKillAfter: Duration.Duration,
  signal: NodeJS.Signals = "SIGTERM"
) =>
  Effect.callback<void>((resume) => {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) {
      resume(Effect.void)
      return
    }
    const timer = setTimeout(() => child.kill("SIGKILL"), Duration.toMillis(forceKillAfter))
    child.once("exit", () => {
      clearTimeout(timer)
      resume(Effect.void)
    })
    child.kill(signal)
  })

/**
 * Drains a child's stderr as it comes (a full pipe would stall the tool) and
 * keeps its last {@link stderrTailBytes}; the effect gives them once stderr
 * has closed.
 */
export const stderrTailOf = (child: NodeChildProcess): Effect.Effect<string> => {
  let tail = Buffer.alloc(0)
  const closed = new Promise<void>((resolve) => {
    if (child.stderr === null) return resolve()
    child.stderr.on("data", (piece: Buffer) => {
      const joined = Buffer.concat([tail, piece])
      tail = joined.length > stderrTailBytes ? joined.subarray(joined.length - stderrTailBytes) : joined
    })
    child.stderr.once("close", () => resolve())
  })
  return Effect.promise(() => closed).pipe(Effect.map(() => tail.toString("utf8")))
}
