import { fileURLToPath } from "node:url"
import { Postgres } from "@db-backup-operator/testing"
import { expect } from "@effect/vitest"
import { Effect, FileSystem, Path, Stream } from "effect"
import { ChildProcess, ChildProcessSpawner } from "effect/process"

// The runner is tested as a Job runs it: the real binary, configured by env vars.
const runnerBin = fileURLToPath(new URL("../bin/db-backup-runner.js", import.meta.url))

/** The message of a JSON log line (undefined for anything else). */
const messageOf = (line: string): unknown => {
  try {
    const parsed: unknown = JSON.parse(line)
    return typeof parsed === "object" && parsed !== null && "message" in parsed ? parsed.message : undefined
  } catch {
    return undefined
  }
}

/** What one run of db-backup-runner left behind. */
export interface RunnerRun {
  readonly exitCode: number
  readonly logs: ReadonlyArray<string>
  readonly stderr: string
  readonly terminationMessage: string
}

/**
 * Runs db-backup-runner with `env` (and only PATH besides, like a container)
 * and `args` (none for a backup, `restore …` for a restore);
 * returns its exit code, log lines and termination message. With `uid` it
 * runs as that user (and group), as a container's non-root user does; the
 * tests run as root. With `terminateAt`, it gets SIGTERM (as a deleted Pod's
 * container does) once it logs a line with that message, or once
 * `terminateWhen` completes.
 */
export const runRunner = <R = never>(
  env: Record<string, string>,
  options?: {
    readonly uid?: number
    readonly terminateAt?: string
    /** SIGTERM once this completes (a condition the test waits for, say). */
    readonly terminateWhen?: Effect.Effect<unknown, unknown, R>
    readonly args?: ReadonlyArray<string>
  }
) =>
  Effect.scoped(
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const dir = yield* fs.makeTempDirectoryScoped({ prefix: "runner-test-" })
      const terminationPath = path.join(dir, "termination-log")
      const uid = options?.uid
      // Its termination message is written by that user.
      if (uid !== undefined) yield* fs.chown(dir, uid, uid)
      const [command, ...args] = [
        ...(uid === undefined ? [] : ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups"]),
        process.execPath,
        runnerBin,
        ...(options?.args ?? [])
      ]
      const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
      const handle = yield* spawner.spawn(
        ChildProcess.make(command ?? process.execPath, args, {
          env: { PATH: process.env.PATH ?? "/usr/bin:/bin", TERMINATION_MESSAGE_PATH: terminationPath, ...env },
          extendEnv: false,
          stdin: "ignore"
        })
      )
      const terminateWhen = options?.terminateWhen
      if (terminateWhen !== undefined) {
        yield* Effect.forkScoped(
          terminateWhen.pipe(Effect.ignore, Effect.andThen(Effect.sync(() => process.kill(handle.pid, "SIGTERM"))))
        )
      }
      const text = (stream: Stream.Stream<Uint8Array, unknown>) =>
        stream.pipe(
          Stream.decodeText(),
          Stream.mkString,
          Effect.orElseSucceed(() => "")
        )
      const terminateAt = options?.terminateAt
      const stdoutLines = handle.stdout.pipe(
        Stream.decodeText(),
        Stream.splitLines,
        Stream.tap((line) =>
          terminateAt !== undefined && messageOf(line) === terminateAt
            ? // The runner alone, as a container runtime signals a container's first process.
              Effect.sync(() => process.kill(handle.pid, "SIGTERM"))
            : Effect.void
        ),
        Stream.runCollect,
        Effect.map((lines) => lines.join("\n")),
        Effect.orElseSucceed(() => "")
      )
      const [stdout, stderr] = yield* Effect.all([stdoutLines, text(handle.stderr)], { concurrency: 2 })
      const exitCode = yield* handle.exitCode
      const terminationMessage = yield* fs.readFileString(terminationPath).pipe(Effect.orElseSucceed(() => ""))
      return {
        exitCode,
        logs: stdout.split("\n").filter((line) => line.length > 0),
        stderr,
        terminationMessage
      } satisfies RunnerRun
    })
  )

/** No secret appears in the logs, stderr or the termination message. */
export const expectNoSecrets = (run: RunnerRun, secrets: ReadonlyArray<string>) => {
  for (const line of [...run.logs, run.stderr, run.terminationMessage]) {
    for (const secret of secrets) expect(line).not.toContain(secret)
  }
}

/** Every log line is JSON. */
export const expectJsonLogs = (run: RunnerRun) => {
  for (const line of run.logs) expect(() => JSON.parse(line), line).not.toThrow()
}

/** Everything the run printed, for assertion messages. */
export const describeRun = (run: RunnerRun): string =>
  `${run.terminationMessage}\n${run.logs.join("\n")}\n${run.stderr}`

/**
 * Creates the role `app` with `password` on the first run and does nothing
 * after: each test file's server is shared by its tests, and each test sets
 * up its own database owned by `app`.
 */
export const appRoleOnce = (password: string) => {
  let created = false
  return Effect.gen(function* () {
    if (created) return
    yield* (yield* Postgres).createRole("app", password)
    created = true
  })
}
