import { Deferred, Duration, Effect, Exit, Fiber, FileSystem, Path, Scope, Stream } from "effect"
import { ChildProcess, ChildProcessSpawner } from "effect/process"
import { ProcessError } from "./ProcessError.ts"
import { wrapCommand } from "./privileges.ts"
import { describeCommand, lastLines } from "./run.ts"

/** What {@link startDaemon} starts, and how it is stopped. */
export interface DaemonOptions {
  /** Short name, used for `<dir>/<name>.log`, `<dir>/<name>.pid` and messages. */
  readonly name: string
  /** Where the log and pid files go. */
  readonly dir: string
  readonly command: string
  /** Arguments; visible in `ps`, so never a secret. */
  readonly args: ReadonlyArray<string>
  /** Extra environment, added to ours. */
  readonly env?: Record<string, string> | undefined
  readonly cwd?: string | undefined
  /** Run as this user when we are root. */
  readonly user?: string | undefined
  /** First signal sent to the process group on stop (default SIGTERM). */
  readonly stopSignal?: ChildProcess.Signal | undefined
  /** After this long the group gets SIGKILL (default 5 seconds). */
  readonly stopTimeout?: Duration.Input | undefined
  /** Sent by the kernel if our process dies first (default SIGKILL). */
  readonly parentDeathSignal?: ChildProcess.Signal | undefined
}

/** A running long-lived process, leader of its own process group. */
export interface Daemon {
  readonly name: string
  readonly pid: number
  readonly logFile: string
  readonly isRunning: Effect.Effect<boolean>
  /** Fails with a {@link ProcessError} (exit status and log tail) when the process is gone. */
  readonly ensureRunning: Effect.Effect<void, ProcessError>
  /** The last `lines` lines of the log. */
  readonly logTail: (lines?: number) => Effect.Effect<string>
  /** Stops the whole process group: stop signal, then SIGKILL after the timeout. Idempotent. */
  readonly stop: Effect.Effect<void>
}

/**
 * Starts a long-running process in its own process group, with stdout and stderr
 * appended to `<dir>/<name>.log` and its pid in `<dir>/<name>.pid`. Closing the
 * scope (success, failure or interruption) stops the whole group; on Linux the
 * kernel also kills it if this Node process dies first.
 *
 * @example
 * ```ts
 * declare const dir: string, data: string
 * const etcd = yield* startDaemon({ name: "etcd", dir, command: "/path/etcd", args: ["--data-dir", data] })
 * yield* etcd.ensureRunning
 * ```
 */
export const startDaemon = (
  options: DaemonOptions
): Effect.Effect<
  Daemon,
  ProcessError,
  Scope.Scope | ChildProcessSpawner.ChildProcessSpawner | FileSystem.FileSystem | Path.Path
> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
    const display = describeCommand(options.command, options.args)
    const logFile = path.join(options.dir, `${options.name}.log`)
    const pidFile = path.join(options.dir, `${options.name}.pid`)
    const wrapped = wrapCommand(options.command, options.args, {
      user: options.user,
      parentDeathSignal: options.parentDeathSignal ?? "SIGKILL"
    })
    const fail = (message: string, cause?: unknown) =>
      new ProcessError({ message: `${options.name}: ${message}`, command: display, cause })
    yield* fs.writeFileString(logFile, `# ${display}\n`, { flag: "a" }).pipe(Effect.mapError((e) => fail(e.message, e)))

    const logTail = (lines = 30) =>
      fs.readFileString(logFile).pipe(
        Effect.map((text) => lastLines(text, lines)),
        Effect.orElseSucceed(() => "")
      )

    return yield* Effect.acquireRelease(
      Effect.gen(function* () {
        const processScope = yield* Scope.make()
        const handle = yield* spawner
          .spawn(
            ChildProcess.make(wrapped.command, wrapped.args, {
              ...(options.env === undefined ? {} : { env: options.env, extendEnv: true }),
              ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
              detached: true,
              stdin: "ignore",
              killSignal: options.stopSignal ?? "SIGTERM",
              forceKillAfter: options.stopTimeout ?? Duration.seconds(5)
            })
          )
          .pipe(
            Scope.provide(processScope),
            Effect.tapError(() => Scope.close(processScope, Exit.void)),
            Effect.mapError((e) => fail(`cannot start: ${e.message}`, e))
          )
        const exited = yield* Deferred.make<string>()
        yield* handle.exitCode.pipe(
          Effect.map((code) => `exited with code ${code}`),
          Effect.catch((e) => Effect.succeed(e.message)),
          Effect.flatMap((status) => Deferred.succeed(exited, status)),
          Effect.forkIn(processScope)
        )
        // Drained until the pipes close, so output written while stopping still lands in the log.
        const logWriter = yield* handle.all.pipe(
          Stream.run(fs.sink(logFile, { flag: "a" })),
          Effect.ignore,
          Effect.forkDetach
        )
        yield* fs.writeFileString(pidFile, `${handle.pid}\n`).pipe(Effect.ignore)
        const stop = Effect.gen(function* () {
          yield* Scope.close(processScope, Exit.void)
          yield* Fiber.await(logWriter).pipe(Effect.timeout("2 seconds"), Effect.ignore)
          yield* Fiber.interrupt(logWriter)
          yield* fs.remove(pidFile, { force: true }).pipe(Effect.ignore)
        })
        const daemon: Daemon = {
          name: options.name,
          pid: handle.pid,
          logFile,
          isRunning: Deferred.isDone(exited).pipe(Effect.map((done) => !done)),
          ensureRunning: Effect.gen(function* () {
            if (!(yield* Deferred.isDone(exited))) return
            const status = yield* Deferred.await(exited)
            const output = yield* logTail(40)
            return yield* new ProcessError({
              message: `${options.name} ${status}:\n${output}`,
              command: display,
              output
            })
          }),
          logTail,
          stop: Effect.uninterruptible(stop)
        }
        return daemon
      }),
      (daemon) => daemon.stop
    )
  })
