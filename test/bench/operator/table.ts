import { Effect } from "effect"

// The numbers of one operator process in one round, and the side-by-side table
// of their medians that `npm run bench:operator` prints.

export type OperatorKey = "ours" | "controller-runtime"

export interface Run {
  readonly operator: OperatorKey
  readonly round: number
  /** Seconds from spawn to ready (readyz 200 and the controller started). */
  readonly startToReady: number
  readonly cpuToReady: number
  readonly rssAtReady: number
  /** Seconds from the first create until the last create returned: the harness's own pace. */
  readonly creates: number
  /** Seconds from the first create until every status was seen written. */
  readonly convergence: number
  readonly reconcilesPerSecond: number
  readonly reconciles: number
  readonly loadRequests: number
  /** VmHWM at the end of the run (after the idle time): the process's peak, MiB. */
  readonly peakRss: number
  readonly cpuLoad: number
  readonly idleRequests: number
  readonly cpuIdle: number
  readonly rssAfterIdle: number
}

export interface Measure {
  readonly label: string
  readonly pick: (run: Run) => number
  readonly digits: number
}

/** The median; of an even count, the mean of the middle two. */
export const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  if (sorted.length === 0) return Number.NaN
  return sorted.length % 2 === 1
    ? (sorted[middle] ?? Number.NaN)
    : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2
}

const ratio = (ours: number, reference: number): string => {
  if (Number.isNaN(ours) || Number.isNaN(reference)) return "-"
  if (reference === 0) return ours === 0 ? "-" : "n/a"
  return `${(ours / reference).toFixed(2)}x`
}

/** Prints `metric | ours | controller-runtime | ratio`, one row per measure, medians over the runs. */
export const printTable = (
  measures: ReadonlyArray<Measure>,
  runs: ReadonlyArray<Run>,
  print: (line: string) => Effect.Effect<void>
): Effect.Effect<void> =>
  Effect.gen(function* () {
    const of = (key: OperatorKey, measure: Measure) =>
      median(runs.filter((run) => run.operator === key).map(measure.pick))
    const lines = measures.map((measure) => {
      const ours = of("ours", measure)
      const reference = of("controller-runtime", measure)
      return [measure.label, ours.toFixed(measure.digits), reference.toFixed(measure.digits), ratio(ours, reference)]
    })
    const header = ["metric", "ours", "controller-runtime", "ratio"]
    const widths = header.map((title, column) =>
      Math.max(title.length, ...lines.map((line) => line[column]?.length ?? 0))
    )
    const format = (cells: ReadonlyArray<string>) =>
      cells
        .map((cell, column) => (column === 0 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0)))
        .join(" | ")
    yield* print(format(header))
    yield* print(widths.map((width) => "-".repeat(width)).join("-|-"))
    for (const line of lines) yield* print(format(line))
  })
