import type { Measured } from "../runner/measure.ts"

// The restore benchmark's table: a row per restore, every run, and the ratio of the medians.

export type Method = "psql" | "runner"

/** One restore into a fresh database. */
export interface Restore {
  readonly method: Method
  readonly run: number
  /** Whether it went first in its run (the other method second). */
  readonly first: boolean
  readonly measured: Measured
  /** The runner only: peak RSS (VmHWM, KiB) of the largest psql it started. */
  readonly psqlHwmKb?: number | undefined
  /** The runner only: its own seconds, from its "restore complete" log line. */
  readonly ownSeconds?: number | undefined
}

const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1
    ? (sorted[middle] ?? Number.NaN)
    : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2
}

const mibOf = (kb: number | undefined) => (kb === undefined ? "" : `${Math.round(kb / 1024)} MiB`)

/** The header, a rule, then the rows: columns padded to their widest cell, two spaces apart. */
const aligned = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): ReadonlyArray<string> => {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => (row[i] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd()
  return [line(header), line(widths.map((width) => "-".repeat(width))), ...rows.map(line)]
}

/** The table, then the medians and their ratio, as lines to print. */
export const restoreTable = (
  labels: Readonly<Record<Method, string>>,
  restores: ReadonlyArray<Restore>,
  sqlBytes: number
): ReadonlyArray<string> => {
  const mbps = (seconds: number) => sqlBytes / 1_000_000 / seconds
  const header = [
    "what",
    "run",
    "order",
    "wall s",
    "MB/s",
    "peak RSS",
    "its psql's peak RSS",
    "CPU s",
    "runner's own s"
  ]
  const methods: ReadonlyArray<Method> = ["psql", "runner"]
  const rows = methods.flatMap((method) =>
    restores
      .filter((r) => r.method === method)
      .map((r) => [
        labels[method],
        String(r.run),
        r.first ? "first" : "second",
        r.measured.seconds.toFixed(2),
        mbps(r.measured.seconds).toFixed(1),
        mibOf(r.measured.usage.hwmKb),
        mibOf(r.psqlHwmKb),
        r.measured.usage.cpuSeconds.toFixed(1),
        r.ownSeconds === undefined ? "" : r.ownSeconds.toFixed(1)
      ])
  )
  const medianOf = (method: Method) =>
    median(restores.filter((r) => r.method === method).map((r) => r.measured.seconds))
  const psql = medianOf("psql")
  const runner = medianOf("runner")
  return [
    ...aligned(header, rows),
    "",
    `median wall s: psql ${psql.toFixed(2)} (${mbps(psql).toFixed(1)} MB/s), runner ${runner.toFixed(2)} (${mbps(runner).toFixed(1)} MB/s)`,
    `runner/psql (median seconds): ${(runner / psql).toFixed(2)}x (1.00 = as fast as psql -f of the plain file; above 1, slower)`
  ]
}
