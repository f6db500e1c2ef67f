import { readFile } from "node:fs/promises"
import { Effect } from "effect"

// What the benchmark reads from an operator process: its Prometheus metrics (both
// operators expose controller-runtime's metric names) and its /proc accounting.

export interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

/** Parses the Prometheus text format (enough of it for counters and gauges). */
export const parseMetrics = (text: string): ReadonlyArray<Sample> =>
  text.split("\n").flatMap((line) => {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/u.exec(line)
    if (match === null) return []
    const labels: Record<string, string> = {}
    for (const [, key, value] of (match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/gu)) {
      if (key !== undefined && value !== undefined) labels[key] = value
    }
    return [{ name: match[1] ?? "", labels, value: Number(match[3]) }]
  })

/** Fetches and parses `/metrics`; undefined while nothing answers. */
export const tryScrape = (url: string): Effect.Effect<ReadonlyArray<Sample> | undefined> =>
  Effect.promise(async () => {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(5000) })
      return response.status === 200 ? parseMetrics(await response.text()) : undefined
    } catch {
      return undefined
    }
  })

export const scrape = (url: string): Effect.Effect<ReadonlyArray<Sample>, Error> =>
  Effect.flatMap(tryScrape(url), (samples) =>
    samples === undefined ? Effect.fail(new Error(`${url} did not answer`)) : Effect.succeed(samples)
  )

/** The HTTP status of a GET, or 0 while nothing listens. */
export const statusOf = (url: string): Effect.Effect<number> =>
  Effect.promise(async () => {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(5000) })
      await response.arrayBuffer()
      return response.status
    } catch {
      return 0
    }
  })

/** Sum of a metric's samples whose labels include `labels`. */
export const total = (
  samples: ReadonlyArray<Sample>,
  name: string,
  labels: Readonly<Record<string, string>> = {}
): number =>
  samples
    .filter(
      (sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value)
    )
    .reduce((sum, sample) => sum + sample.value, 0)

/** Requests by `METHOD code`, e.g. `PATCH 200`. */
const requestsBy = (samples: ReadonlyArray<Sample>): Map<string, number> => {
  const byKind = new Map<string, number>()
  for (const sample of samples.filter((s) => s.name === "rest_client_requests_total")) {
    const key = `${sample.labels.method ?? "?"} ${sample.labels.code ?? "?"}`
    byKind.set(key, (byKind.get(key) ?? 0) + sample.value)
  }
  return byKind
}

/** The requests made between two scrapes, by method and status: `PATCH 200: 1000, GET 200: 2`. */
export const requestDelta = (before: ReadonlyArray<Sample>, after: ReadonlyArray<Sample>): string => {
  const start = requestsBy(before)
  const parts = [...requestsBy(after)]
    .map(([key, value]) => [key, value - (start.get(key) ?? 0)] as const)
    .filter(([, delta]) => delta > 0)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([key, delta]) => `${key}: ${delta}`)
  return parts.length === 0 ? "none" : parts.join(", ")
}

/**
 * Our reflectors' list, watch and restart counters, to tell a watch the server
 * ended from polling; undefined for an operator without them (controller-runtime).
 */
export const watchSummary = (samples: ReadonlyArray<Sample>): string | undefined => {
  if (!samples.some((sample) => sample.name === "reflector_watches_total")) return undefined
  const restarts = samples
    .filter((sample) => sample.name === "reflector_watch_restarts_total" && sample.value > 0)
    .map((sample) => `${sample.labels.reason ?? "?"}: ${sample.value}`)
  return (
    `${total(samples, "reflector_lists_total")} list(s), ${total(samples, "reflector_watches_total")} watch(es) ` +
    `started, restarts ${restarts.length === 0 ? "none" : restarts.join(", ")}` +
    // Any clean end by the server counts as "timeout", including the apiserver
    // dropping a watcher that fell behind.
    (restarts.length === 0 ? "" : " (timeout = ended by the server: its timeout or a slow-watcher close)")
  )
}

export interface Usage {
  /** VmHWM: the most resident memory the process ever had, MiB. */
  readonly peakRssMib: number
  /** VmRSS now, MiB. */
  readonly rssMib: number
  /** User + system CPU time since the process started, seconds. */
  readonly cpuSeconds: number
}

// /proc/<pid>/stat counts in clock ticks; USER_HZ is 100 on every Linux ABI Node runs on.
const ticksPerSecond = 100

/** Memory and CPU of a process, from /proc. */
export const processUsage = (pid: number): Effect.Effect<Usage, Error> =>
  Effect.tryPromise({
    try: async () => {
      const [status, stat] = await Promise.all([
        readFile(`/proc/${pid}/status`, "utf8"),
        readFile(`/proc/${pid}/stat`, "utf8")
      ])
      const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, "mu").exec(status)?.[1] ?? 0)
      // The command name may hold spaces and parentheses: fields are counted after the last ")".
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      const ticks = Number(fields[11] ?? 0) + Number(fields[12] ?? 0)
      return { peakRssMib: kib("VmHWM") / 1024, rssMib: kib("VmRSS") / 1024, cpuSeconds: ticks / ticksPerSecond }
    },
    catch: (cause) => new Error(`cannot read /proc/${pid}: ${String(cause)}`)
  })
