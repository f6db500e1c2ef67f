import type { Measured } from "./measure.ts"
import type { StoreName } from "./stores.ts"

// The rows the runner benchmark prints, the table, and the goals it reports against.

export type Compression = "none" | "gzip" | "zstd"

/** One configuration: the baseline, a shell pipeline or the runner, to a store or nowhere. */
export interface Case {
  readonly label: string
  readonly kind: "baseline" | "shell" | "runner"
  readonly store: StoreName | undefined
  readonly compression: Compression
  readonly encrypted?: boolean
}

/** One run of a case. */
export interface Run {
  readonly measured: Measured
  /** Bytes stored (compressed, encrypted), if known. */
  readonly storedBytes: number | undefined
  /** The runner's own dump-phase seconds (first to last byte), from its log. */
  readonly dumpSeconds: number | undefined
}

export interface Result {
  readonly case: Case
  readonly runs: ReadonlyArray<Run>
  /** Why the case did not run ("skipped: ..."), if it did not. */
  readonly skipped?: string
}

const mean = (values: ReadonlyArray<number>): number =>
  values.length === 0 ? Number.NaN : values.reduce((a, b) => a + b, 0) / values.length

const mib = (kb: number) => `${(kb / 1024).toFixed(0)} MiB`
const mb = (bytes: number) => `${(bytes / 1_000_000).toFixed(1)} MB`

/**
 * Bytes written to disk beyond the object itself (a volume's object is on disk
 * by design; its manifest, a few hundred bytes, counts as a 4 KiB page).
 */
const temporaryDisk = (result: Result, run: Run): number =>
  Math.max(0, run.measured.usage.writeBytes - (result.case.store === "file" ? (run.storedBytes ?? 0) : 0))

/** The table, one line per run, and the goals, as lines to print. */
export const report = (results: ReadonlyArray<Result>, dumpBytes: number): ReadonlyArray<string> => {
  const mbps = (seconds: number) => dumpBytes / 1_000_000 / seconds
  const meanMbps = (result: Result) => mean(result.runs.map((run) => mbps(run.measured.seconds)))
  const baseline = results.find((r) => r.case.kind === "baseline")
  const base = baseline === undefined ? Number.NaN : meanMbps(baseline)
  /** The fastest shell pipeline (mean over its runs) to each store. */
  const bestShell = new Map<StoreName, Result>()
  for (const result of results) {
    if (result.case.kind !== "shell" || result.case.store === undefined || result.runs.length === 0) continue
    const best = bestShell.get(result.case.store)
    if (best === undefined || meanMbps(result) > meanMbps(best)) bestShell.set(result.case.store, result)
  }

  const header = [
    "what",
    "run",
    "wall s",
    "MB/s",
    "vs pg_dump",
    "vs shell",
    "peak RSS",
    "disk written",
    "CPU s",
    "stored MB",
    "dump-phase MB/s"
  ]
  const rows: Array<ReadonlyArray<string>> = []
  for (const result of results) {
    if (result.skipped !== undefined) {
      rows.push([result.case.label, "-", result.skipped])
      continue
    }
    const shell = result.case.store === undefined ? undefined : bestShell.get(result.case.store)
    for (const [i, run] of result.runs.entries()) {
      const speed = mbps(run.measured.seconds)
      rows.push([
        result.case.label,
        String(i + 1),
        run.measured.seconds.toFixed(2),
        speed.toFixed(1),
        `${(speed / base).toFixed(2)}x`,
        result.case.kind === "runner" && shell !== undefined ? `${(speed / meanMbps(shell)).toFixed(2)}x` : "",
        mib(run.measured.usage.hwmKb),
        mb(run.measured.usage.writeBytes),
        run.measured.usage.cpuSeconds.toFixed(1),
        run.storedBytes === undefined ? "" : (run.storedBytes / 1_000_000).toFixed(1),
        run.dumpSeconds === undefined ? "" : mbps(run.dumpSeconds).toFixed(1)
      ])
    }
  }
  // A skipped row's reason spans the columns after "run".
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.filter((r) => r.length === header.length).map((r) => (r[i] ?? "").length))
  )
  const format = (cells: ReadonlyArray<string>) =>
    cells
      .map((c, i) => (cells.length < header.length && i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd()

  const lines: Array<string> = [format(header), format(widths.map((w) => "-".repeat(w))), ...rows.map(format)]
  lines.push("")
  for (const [store, shell] of bestShell) {
    lines.push(
      `vs shell (${store}): the runner's MB/s over the mean of "${shell.case.label}", the fastest shell row there`
    )
  }

  // Goals, on the mean of the runs: reported, not asserted.
  lines.push("", "goals (mean of the runs):")
  const verdict = (ok: boolean) => (ok ? "met" : "MISSED")
  for (const result of results) {
    if (result.case.kind !== "runner" || result.runs.length === 0 || result.case.store === undefined) continue
    const speed = meanMbps(result)
    const checks: Array<string> = []
    if (result.case.compression === "zstd" && result.case.encrypted !== true) {
      if (result.case.store === "s3" || result.case.store === "file") {
        checks.push(`${(speed / base).toFixed(2)}x pg_dump (>= 0.9: ${verdict(speed / base >= 0.9)})`)
      }
      const shell = bestShell.get(result.case.store)
      if (shell !== undefined) {
        const ratio = speed / meanMbps(shell)
        checks.push(`${ratio.toFixed(2)}x shell (>= 0.9: ${verdict(ratio >= 0.9)})`)
      }
    }
    const rss = Math.max(...result.runs.map((run) => run.measured.usage.hwmKb)) / 1024
    checks.push(`peak RSS ${rss.toFixed(0)} MiB (<= 100: ${verdict(rss <= 100)})`)
    const temporary = Math.max(...result.runs.map((run) => temporaryDisk(result, run)))
    // write_bytes counts pages as they are dirtied: up to a few dozen KB of slack, so under 1 MB counts as none.
    checks.push(
      `temporary disk ${temporary} bytes (0, under 1 MB of page accounting: ${verdict(temporary < 1_000_000)})`
    )
    lines.push(`  ${result.case.label}: ${checks.join("; ")}`)
  }
  return lines
}
