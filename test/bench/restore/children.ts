import { readdir, readFile } from "node:fs/promises"
import { Effect, Schedule } from "effect"

// What measure.ts cannot see: the processes a measured process starts itself
// (the runner's psql), found by their parent in /proc/<pid>/stat.

/** The parent pid and command name of a process, from /proc/<pid>/stat; undefined once it is gone. */
const parentAndName = async (pid: string) => {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => undefined)
  if (stat === undefined) return undefined
  const close = stat.lastIndexOf(")")
  return {
    name: stat.slice(stat.indexOf("(") + 1, close),
    // After the command name: state, then the parent's pid.
    parent: Number(stat.slice(close + 2).split(" ")[1])
  }
}

/**
 * Every 100 ms until interrupted, the peak RSS (VmHWM, KiB) of each child of
 * `parent` whose command is `name`, kept per pid in `peaks`. A child that lives
 * less than one interval may be missed.
 */
export const sampleChildren = (parent: number, name: string, peaks: Map<number, number>) =>
  Effect.promise(async () => {
    for (const pid of await readdir("/proc")) {
      if (!/^\d+$/u.test(pid)) continue
      const process = await parentAndName(pid)
      if (process === undefined || process.parent !== parent || process.name !== name) continue
      const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "")
      const kb = Number(/^VmHWM:\s+(\d+) kB$/mu.exec(status)?.[1] ?? 0)
      peaks.set(Number(pid), Math.max(peaks.get(Number(pid)) ?? 0, kb))
    }
  }).pipe(Effect.repeat(Schedule.spaced("100 millis")), Effect.asVoid)
