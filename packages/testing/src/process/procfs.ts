import { readdir, readFile } from "node:fs/promises"
import { Effect } from "effect"

/** One process as seen in Linux's `/proc`. */
export interface ProcessInfo {
  readonly pid: number
  readonly ppid: number
  /** Process group id. */
  readonly pgid: number
  /** `R`, `S`, `Z` (zombie), ... */
  readonly state: string
  readonly cmdline: ReadonlyArray<string>
}

const readProcess = async (pid: number): Promise<ProcessInfo | undefined> => {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8")
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0").filter((arg) => arg !== "")
    return {
      pid,
      state: fields[0] ?? "?",
      ppid: Number(fields[1]),
      pgid: Number(fields[2]),
      cmdline
    }
  } catch {
    return undefined // gone meanwhile
  }
}

/**
 * Every process on this machine (Linux `/proc`), zombies included.
 *
 * @example
 * ```ts
 * const etcds = (yield* listProcesses).filter((p) => p.cmdline[0]?.endsWith("/etcd"))
 * ```
 */
export const listProcesses: Effect.Effect<ReadonlyArray<ProcessInfo>> = Effect.promise(async () => {
  const entries = await readdir("/proc").catch(() => [] as Array<string>)
  const pids = entries.filter((name) => /^\d+$/u.test(name)).map(Number)
  const infos = await Promise.all(pids.map(readProcess))
  return infos.filter((info): info is ProcessInfo => info !== undefined)
})

/**
 * The live (non-zombie) members of process group `pgid`: empty once a stopped
 * server's whole group is gone.
 *
 * @example
 * ```ts
 * assert.deepStrictEqual(yield* liveGroupMembers(pid), [])
 * ```
 */
export const liveGroupMembers = (pgid: number): Effect.Effect<ReadonlyArray<ProcessInfo>> =>
  Effect.map(listProcesses, (all) => all.filter((p) => p.pgid === pgid && p.state !== "Z"))
