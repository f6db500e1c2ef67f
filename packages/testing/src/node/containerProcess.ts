import { constants } from "node:os"
import { Deferred, type Duration, Effect, Fiber, FileSystem, type Scope, Stream } from "effect"
import { ChildProcess, ChildProcessSpawner } from "effect/process"
import { wrapCommand } from "../process/privileges.ts"
import { StartError } from "./runtime.ts"

/** What runs and where; the argv is final (looked up and expanded). */
export interface ContainerProcessOptions {
  readonly executable: string
  readonly args: ReadonlyArray<string>
  /** The whole environment: nothing is inherited from the test runner. */
  readonly env: Readonly<Record<string, string>>
  readonly cwd: string
  /** stdout and stderr are appended here, interleaved as they arrive. */
  readonly logFile: string
  /**
   * What the process group gets when the scope closes without a graceful
   * stop (default SIGTERM, SIGKILL 2 seconds later).
   */
  readonly killSignal?: "SIGTERM" | "SIGKILL" | undefined
}

/** One running container instance, leader of its own process group. */
export interface ContainerProcess {
  readonly pid: number
  /**
   * The exit code once the process has exited and its output is in the log
   * file; death by signal N is reported as 128 + N, as container runtimes do.
   */
  readonly exited: Effect.Effect<number>
  /** SIGTERM to the process, SIGKILL to its process group once it exits or after `grace`. */
  readonly stop: (grace: Duration.Input) => Effect.Effect<void>
}

/** Signals one process; one that is already gone is no error. */
const signal = (pid: number, name: NodeJS.Signals) => {
  try {
    process.kill(pid, name)
  } catch {
    // already exited
  }
}

/**
 * `Process interrupted due to receipt of signal: 'SIGTERM'` (the cause of the
 * spawner's error; its message quotes the command line) -> 143.
 */
const exitCodeOfSignal = (error: { readonly message: string; readonly cause?: unknown }): number => {
  const text = `${String(error.cause)} ${error.message}`
  const name = /receipt of signal: '(SIG[A-Z0-9]+)'/u.exec(text)?.[1]
  const signals: Readonly<Record<string, number>> = constants.signals
  const number = name === undefined ? undefined : signals[name]
  return 128 + (number ?? constants.signals.SIGKILL)
}

/**
 * Starts one container process: never through a shell, in its own process
 * group (closing the scope kills the group), with the kernel killing it if the
 * test runner dies first, and its output drained into `logFile`.
 *
 * @example
 * ```ts
 * const proc = yield* startContainerProcess({ executable: "/usr/bin/node", args: ["-e", "1"], env: {}, cwd, logFile })
 * const exitCode = yield* proc.exited
 * ```
 */
export const startContainerProcess = (
  options: ContainerProcessOptions
): Effect.Effect<
  ContainerProcess,
  StartError,
  Scope.Scope | ChildProcessSpawner.ChildProcessSpawner | FileSystem.FileSystem
> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
    const wrapped = wrapCommand(options.executable, options.args, { parentDeathSignal: "SIGKILL" })
    const handle = yield* spawner
      .spawn(
        ChildProcess.make(wrapped.command, wrapped.args, {
          env: options.env,
          cwd: options.cwd,
          detached: true,
          stdin: "ignore",
          // Used when the scope closes without a graceful stop (node teardown, Pod DELETED).
          killSignal: options.killSignal ?? "SIGTERM",
          forceKillAfter: "2 seconds"
        })
      )
      .pipe(Effect.mapError((error) => new StartError({ message: error.message })))
    const drained = yield* handle.all.pipe(
      Stream.run(fs.sink(options.logFile, { flag: "a" })),
      Effect.ignore,
      Effect.forkScoped
    )
    const exit = yield* Deferred.make<number>()
    yield* handle.exitCode.pipe(
      Effect.map(Number),
      Effect.catch((error) => Effect.succeed(exitCodeOfSignal(error))),
      // Background processes the container left behind may hold the pipes open: bounded.
      Effect.tap(() => Fiber.await(drained).pipe(Effect.timeout("2 seconds"), Effect.ignore)),
      Effect.flatMap((code) => Deferred.succeed(exit, code)),
      Effect.forkScoped
    )
    const process: ContainerProcess = {
      pid: handle.pid,
      exited: Deferred.await(exit),
      // As a container runtime stops a container: the signal to its first process only (a runner's
      // pg_dump must not die before the runner decides what stopping means), then SIGKILL to
      // whatever is left of the group once the process exits or the grace period ends.
      stop: (grace) =>
        Effect.sync(() => signal(handle.pid, "SIGTERM")).pipe(
          Effect.andThen(Deferred.await(exit).pipe(Effect.timeout(grace), Effect.ignore)),
          Effect.andThen(handle.kill({ killSignal: "SIGKILL" }).pipe(Effect.ignore))
        )
    }
    return process
  })
