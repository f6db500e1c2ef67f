import { type ChildProcess, type SpawnOptions, spawn } from "node:child_process"
import { readFile } from "node:fs/promises"
import { Effect, Schedule, type Scope } from "effect"

// How the runner benchmark starts processes and what it reads of them: wall time,
// and from /proc peak RSS (VmHWM), bytes written to the storage layer and CPU time.

export interface Usage {
  /** Peak resident set size, KiB (largest of the processes measured). */
  readonly hwmKb: number
  /** Bytes written to the storage layer (sum over the processes measured). */
  readonly writeBytes: number
  /** CPU seconds, user + system, including reaped children (sum over the processes measured). */
  readonly cpuSeconds: number
}

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux). */
const ticksPerSecond = 100

const readUsage = async (pid: number): Promise<Usage | undefined> => {
  try {
    const [status, io, stat] = await Promise.all([
      readFile(`/proc/${pid}/status`, "utf8"),
      readFile(`/proc/${pid}/io`, "utf8"),
      readFile(`/proc/${pid}/stat`, "utf8")
    ])
    const hwm = /^VmHWM:\s+(\d+) kB$/mu.exec(status)?.[1]
    const write = /^write_bytes:\s+(\d+)$/mu.exec(io)?.[1]
    // Fields after the parenthesised command name: utime, stime, cutime, cstime are fields 14-17.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i] ?? 0), 0)
    return { hwmKb: Number(hwm ?? 0), writeBytes: Number(write ?? 0), cpuSeconds: ticks / ticksPerSecond }
  } catch {
    return undefined
  }
}

/**
 * Samples /proc for the given processes every 100 ms until interrupted, keeping
 * each one's highest values (a process that just exited reads as zero, or is gone).
 */
const sample = (pids: ReadonlyArray<number>, peaks: Map<number, Usage>) =>
  Effect.promise(async () => {
    for (const pid of pids) {
      const usage = await readUsage(pid)
      if (usage === undefined) continue
      const peak = peaks.get(pid) ?? { hwmKb: 0, writeBytes: 0, cpuSeconds: 0 }
      peaks.set(pid, {
        hwmKb: Math.max(peak.hwmKb, usage.hwmKb),
        writeBytes: Math.max(peak.writeBytes, usage.writeBytes),
        cpuSeconds: Math.max(peak.cpuSeconds, usage.cpuSeconds)
      })
    }
  }).pipe(Effect.repeat(Schedule.spaced("100 millis")), Effect.asVoid)

const usageOf = (peaks: Map<number, Usage>): Usage => ({
  hwmKb: Math.max(0, ...[...peaks.values()].map((u) => u.hwmKb)),
  writeBytes: [...peaks.values()].reduce((sum, u) => sum + u.writeBytes, 0),
  cpuSeconds: [...peaks.values()].reduce((sum, u) => sum + u.cpuSeconds, 0)
})

/** A child process (argument array, no shell) that lives in the current Scope: killed if the Scope closes first. */
export const spawnScoped = (
  command: string,
  args: ReadonlyArray<string>,
  options: SpawnOptions
): Effect.Effect<ChildProcess, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn(command, [...args], options)
      // A command that cannot start (ENOENT) emits `error`, and exits with no code: reported by exitOf.
      child.on("error", () => {})
      return child
    }),
    (child) => Effect.sync(() => (child.exitCode === null && child.signalCode === null ? child.kill("SIGKILL") : true))
  )

/**
 * Spawns `stages` connected by pipes, as a shell pipeline would: each stage's
 * stdin is the previous one's stdout, so no byte passes through this process.
 * The last stage's stdout goes where `last` says: discarded (default), a pipe
 * to this process, or a file descriptor.
 */
export const pipeline = (
  stages: ReadonlyArray<{
    readonly command: string
    readonly args: ReadonlyArray<string>
    readonly env?: NodeJS.ProcessEnv
  }>,
  last: "ignore" | "pipe" | number = "ignore"
): Effect.Effect<ReadonlyArray<ChildProcess>, never, Scope.Scope> =>
  Effect.gen(function* () {
    const children: Array<ChildProcess> = []
    let input: ChildProcess["stdout"] | "ignore" = "ignore"
    for (const [i, stage] of stages.entries()) {
      const child: ChildProcess = yield* spawnScoped(stage.command, stage.args, {
        env: stage.env ?? process.env,
        stdio: [input ?? "ignore", i === stages.length - 1 ? last : "pipe", "inherit"]
      })
      children.push(child)
      input = child.stdout
    }
    return children
  })

const exitOf = (child: ChildProcess) =>
  Effect.callback<number>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resume(Effect.succeed(child.exitCode ?? 128))
      return
    }
    child.once("exit", (code, signal) => resume(Effect.succeed(code ?? (signal === null ? 128 : 128 + 15))))
    child.once("error", () => resume(Effect.succeed(127)))
  })

export interface Measured {
  readonly seconds: number
  readonly usage: Usage
  /** What the last process wrote to stdout, if captured. */
  readonly stdout: string
  /** Bytes the last process wrote to stdout, if counted. */
  readonly stdoutBytes: number
}

/**
 * Starts the processes, samples them, waits for all to exit, and fails if any
 * exits non-zero. `stdout` reads the last process's stdout (which must be a
 * pipe): "text" keeps it, "count" only counts its bytes.
 */
export const measure = (
  label: string,
  start: () => Effect.Effect<ReadonlyArray<ChildProcess>, never, Scope.Scope>,
  options: { readonly stdout?: "text" | "count" } = {}
): Effect.Effect<Measured, Error> =>
  Effect.scoped(
    Effect.gen(function* () {
      const began = performance.now()
      const children = yield* start()
      const peaks = new Map<number, Usage>()
      const pids = children.flatMap((c) => (c.pid === undefined ? [] : [c.pid]))
      let stdout = ""
      let stdoutBytes = 0
      // Only the last process: a pipe handed to another process must not also be read here.
      const lastStdout = children.at(-1)?.stdout
      if (options.stdout !== undefined && lastStdout !== undefined && lastStdout !== null) {
        const keep = options.stdout === "text"
        lastStdout.on("data", (chunk: Buffer) => {
          stdoutBytes += chunk.byteLength
          if (keep) stdout += chunk.toString("utf8")
        })
      }
      yield* Effect.forkScoped(sample(pids, peaks))
      const codes = yield* Effect.forEach(children, exitOf, { concurrency: "unbounded" })
      const seconds = (performance.now() - began) / 1000
      if (codes.some((code) => code !== 0)) {
        return yield* Effect.fail(new Error(`${label}: exit codes ${codes.join(", ")}\n${stdout.slice(-3000)}`))
      }
      return { seconds, usage: usageOf(peaks), stdout, stdoutBytes } satisfies Measured
    })
  )
