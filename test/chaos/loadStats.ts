/**
 * The pure half of the load profile (load.ts): what is computed from what was
 * observed — percentiles, schedule lag, slot coverage, Prometheus counters and
 * `/proc` fields — so each piece is tested on its own (load.test.ts) and the
 * harness only gathers inputs.
 */

/** Count, median, 99th percentile and maximum of some measurements. */
export interface Summary {
  readonly count: number
  readonly p50: number
  readonly p99: number
  readonly max: number
}

/**
 * The `p`-quantile (0 < p ≤ 1) by the nearest-rank method: the smallest value
 * with at least `p` of the values at or below it, so p99 of 100 values is the
 * 99th and never an interpolated value nobody measured. 0 for no values.
 *
 * @example
 * ```ts
 * percentile([5, 1, 4, 2, 3], 0.5) // 3
 * ```
 */
export const percentile = (values: ReadonlyArray<number>, p: number): number => {
  if (values.length === 0) return 0
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(p * sorted.length)))
  return sorted[rank - 1] ?? 0
}

/**
 * {@link Summary} of some measurements.
 *
 * @example
 * ```ts
 * summarize([1, 2, 3]) // { count: 3, p50: 2, p99: 3, max: 3 }
 * ```
 */
export const summarize = (values: ReadonlyArray<number>): Summary => ({
  count: values.length,
  p50: percentile(values, 0.5),
  p99: percentile(values, 0.99),
  max: values.length === 0 ? 0 : Math.max(...values)
})

/** An RFC 3339 time in milliseconds, or undefined when absent or unparsable. */
export const millisOf = (time: string | undefined): number | undefined => {
  if (time === undefined) return undefined
  const millis = Date.parse(time)
  return Number.isNaN(millis) ? undefined : millis
}

/** What the load profile needs of one scheduled run's Job. */
export interface ObservedJob {
  /** The resource's uid (the Job's resource-uid label). */
  readonly resource: string
  /** The slot it runs (its scheduled-at annotation), in milliseconds. */
  readonly slot: number
  /** `metadata.creationTimestamp`: whole seconds, truncated by the API server. */
  readonly created: number
  /** When the harness's watch first received it (milliseconds), if it did. */
  readonly received: number | undefined
  /** `status.startTime`: when the Job controller first synced it (whole seconds). */
  readonly started: number | undefined
  /** `status.completionTime`, set once it succeeded (whole seconds). */
  readonly completed: number | undefined
}

/** Schedule lag (slot to Job), measured two ways, and what the Job controller added after it. */
export interface LagReport {
  /**
   * `creationTimestamp − slot`. The API server truncates the creation time to
   * the second, so each value is up to 1 s short of the truth (slots are whole
   * seconds too: they count from the resource's creationTimestamp).
   */
  readonly byCreationTimestamp: Summary
  /**
   * First receipt on the harness's watch − slot: millisecond resolution, an
   * upper bound (it adds the watch's delivery). Jobs first seen in a list after
   * the watch broke are left out: their receipt time says nothing.
   */
  readonly byWatch: Summary
  /** `status.startTime − creationTimestamp`: how long Jobs waited for kube-controller-manager's Job controller. */
  readonly jobControllerPickup: Summary
  /** `completionTime − creationTimestamp` of succeeded Jobs: Job created to Job complete, Pod run included. */
  readonly jobDuration: Summary
}

/**
 * The lag figures of a set of Jobs (see {@link LagReport}); a negative value
 * (a creation second truncated below a slot of the same second) counts as 0.
 *
 * @example
 * ```ts
 * lagReport([{ resource: "u", slot: 60_000, created: 61_000, received: 61_400, started: 62_000, completed: 63_000 }])
 * // byCreationTimestamp.p50 1000, byWatch.p50 1400, jobControllerPickup.p50 1000, jobDuration.p50 2000
 * ```
 */
export const lagReport = (jobs: ReadonlyArray<ObservedJob>): LagReport => {
  const lag = (to: number, from: number) => Math.max(0, to - from)
  return {
    byCreationTimestamp: summarize(jobs.map((job) => lag(job.created, job.slot))),
    byWatch: summarize(jobs.flatMap((job) => (job.received === undefined ? [] : [lag(job.received, job.slot)]))),
    jobControllerPickup: summarize(
      jobs.flatMap((job) => (job.started === undefined ? [] : [lag(job.started, job.created)]))
    ),
    jobDuration: summarize(
      jobs.flatMap((job) => (job.completed === undefined ? [] : [lag(job.completed, job.created)]))
    )
  }
}

/**
 * The slots of an `@every` schedule from `anchor` (its first slot: the
 * operator counts `@every` from the resource's creation) up to and including
 * `until`.
 *
 * @example
 * ```ts
 * everySlots(0, 60_000, 150_000) // [0, 60000, 120000]
 * ```
 */
export const everySlots = (anchor: number, periodMillis: number, until: number): ReadonlyArray<number> => {
  if (until < anchor || periodMillis <= 0) return []
  return Array.from({ length: Math.floor((until - anchor) / periodMillis) + 1 }, (_, k) => anchor + k * periodMillis)
}

/** Of the slots that were due, how many got a Job. */
export interface SlotCoverage {
  /** Slots of every resource from its creation up to the cut-off. */
  readonly due: number
  /** Due slots with at least one Job. */
  readonly withJob: number
  /** Due slots without any: skipped, or folded into a later catch-up run. */
  readonly withoutJob: number
}

/**
 * Which due slots got a Job. `until` is the cut-off: slots after it are not
 * due (the run stops there), and Jobs of later slots are ignored.
 *
 * @example
 * ```ts
 * slotCoverage({ resources: [{ uid: "u", anchor: 0 }], periodMillis: 60_000, until: 130_000, jobs: [{ resource: "u", slot: 0 }] })
 * // { due: 3, withJob: 1, withoutJob: 2 }
 * ```
 */
export const slotCoverage = (input: {
  readonly resources: ReadonlyArray<{ readonly uid: string; readonly anchor: number }>
  readonly periodMillis: number
  readonly until: number
  readonly jobs: ReadonlyArray<Pick<ObservedJob, "resource" | "slot">>
}): SlotCoverage => {
  const ran = new Set(input.jobs.map((job) => `${job.resource}@${job.slot}`))
  let due = 0
  let withJob = 0
  for (const resource of input.resources) {
    for (const slot of everySlots(resource.anchor, input.periodMillis, input.until)) {
      due += 1
      if (ran.has(`${resource.uid}@${slot}`)) withJob += 1
    }
  }
  return { due, withJob, withoutJob: due - withJob }
}

/** One sample of a Prometheus text exposition: `name{labels} value`. */
export interface Series {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

/**
 * Every sample of a Prometheus text exposition (comments skipped), for
 * counters summed over their labels.
 *
 * @example
 * ```ts
 * parseSeries('# TYPE x counter\nx{a="1"} 2\ny 3')
 * // [{ name: "x", labels: { a: "1" }, value: 2 }, { name: "y", labels: {}, value: 3 }]
 * ```
 */
export const parseSeries = (text: string): ReadonlyArray<Series> =>
  text.split("\n").flatMap((line) => {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/u.exec(line)
    if (match === null || match[1] === undefined || match[3] === undefined) return []
    const labels = Object.fromEntries(
      [...(match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/gu)].map(([, key, value]) => [key ?? "", value ?? ""])
    )
    const value = Number(match[3])
    return Number.isNaN(value) ? [] : [{ name: match[1], labels, value }]
  })

/**
 * The sum of a metric's samples whose labels include `where`, e.g. every
 * `rest_client_requests_total` of a process.
 *
 * @example
 * ```ts
 * sumSeries(parseSeries('r{code="200"} 5\nr{code="409"} 1'), "r") // 6
 * ```
 */
export const sumSeries = (
  series: ReadonlyArray<Series>,
  name: string,
  where: Readonly<Record<string, string>> = {}
): number =>
  series
    .filter((s) => s.name === name && Object.entries(where).every(([key, value]) => s.labels[key] === value))
    .reduce((sum, s) => sum + s.value, 0)

/**
 * A metric's sum per value of one label (samples without it are left out).
 *
 * @example
 * ```ts
 * sumByLabel(parseSeries('r{verb="GET"} 5\nr{verb="GET",x="1"} 1\nr{verb="POST"} 2'), "r", "verb") // { GET: 6, POST: 2 }
 * ```
 */
export const sumByLabel = (
  series: ReadonlyArray<Series>,
  name: string,
  label: string
): Readonly<Record<string, number>> => {
  const sums: Record<string, number> = {}
  for (const s of series) {
    const key = s.labels[label]
    if (s.name === name && key !== undefined) sums[key] = (sums[key] ?? 0) + s.value
  }
  return sums
}

/** How much a counter grew per second between two readings, or 0 over no time. */
export const ratePerSecond = (before: number, after: number, seconds: number): number =>
  seconds > 0 ? (after - before) / seconds : 0

/**
 * `VmRSS` of a `/proc/<pid>/status` text, in bytes (the kernel writes kB,
 * meaning KiB), or undefined when absent (a zombie has none).
 *
 * @example
 * ```ts
 * vmRssBytes("Name:\tnode\nVmRSS:\t  123456 kB\n") // 126418944
 * ```
 */
export const vmRssBytes = (status: string): number | undefined => {
  const match = /^VmRSS:\s+(\d+)\s+kB$/mu.exec(status)
  return match?.[1] === undefined ? undefined : Number(match[1]) * 1024
}

/** CPU a process used, from `/proc/<pid>/stat`, in clock ticks. */
export interface CpuTicks {
  readonly pid: number
  readonly ppid: number
  /** utime + stime: the process's own CPU. */
  readonly own: number
  /** cutime + cstime: CPU of its children that exited and were waited for. */
  readonly children: number
}

/**
 * The CPU fields of a `/proc/<pid>/stat` line. The command name (field 2) may
 * hold spaces and parentheses, so fields are counted after its last `)`.
 *
 * @example
 * ```ts
 * statTicks("42 (node (x)) S 1 42 42 0 -1 0 0 0 0 0 150 50 7 3 20 0") // { pid: 42, ppid: 1, own: 200, children: 10 }
 * ```
 */
export const statTicks = (stat: string): CpuTicks | undefined => {
  const close = stat.lastIndexOf(")")
  if (close < 0) return undefined
  const pid = Number(stat.slice(0, stat.indexOf(" ")))
  // After ")": state(3) ppid(4) pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14) stime cutime cstime(17)
  const fields = stat
    .slice(close + 2)
    .trim()
    .split(/\s+/u)
  const field = (n: number) => Number(fields[n - 3])
  const [ppid, utime, stime, cutime, cstime] = [field(4), field(14), field(15), field(16), field(17)]
  if ([pid, ppid, utime, stime, cutime, cstime].some(Number.isNaN)) return undefined
  return { pid, ppid, own: utime + stime, children: cutime + cstime }
}

/** The parts of the stack whose CPU the load profile reports. */
export type Component =
  | "etcd"
  | "kube-apiserver"
  | "kube-controller-manager"
  | "operator"
  | "postgres"
  | "gcs emulator"
  | "other"

/**
 * Which part of the stack a process belongs to, by its command line (a
 * launcher such as `setpriv` execs the real program, so the words are there).
 *
 * @example
 * ```ts
 * componentOf(["/usr/bin/node", "/work/apps/operator/bin/db-backup-operator.js", "--kubeconfig", "k"]) // "operator"
 * ```
 */
export const componentOf = (cmdline: ReadonlyArray<string>): Component => {
  const words = cmdline.join(" ")
  if (/db-backup-operator\.js/u.test(words)) return "operator"
  if (/kube-controller-manager/u.test(words)) return "kube-controller-manager"
  if (/kube-apiserver/u.test(words)) return "kube-apiserver"
  if (/(^|\/)etcd(\s|$)/u.test(words)) return "etcd"
  if (/postgres|initdb|pg_ctl/u.test(words)) return "postgres"
  if (/fake-gcs-server/u.test(words)) return "gcs emulator"
  return "other"
}

/** One reading of a process tree: each live process's ticks and its command line. */
export type ProcessSnapshot = ReadonlyArray<CpuTicks & { readonly cmdline: ReadonlyArray<string> }>

/**
 * CPU seconds per component between two snapshots of the harness's process
 * tree: every process is counted under the component of its topmost ancestor
 * below the harness (postgres backends under postgres), with the CPU of its
 * own children that exited meanwhile. Processes that both started and ended
 * between the snapshots appear only in their parent's `children` ticks; the
 * harness's own (the process node, the watches) and its children's (Pods,
 * kubectl) are the caller's to add.
 *
 * @example
 * ```ts
 * const before = [{ pid: 2, ppid: 1, own: 100, children: 0, cmdline: ["etcd"] }]
 * const after = [{ pid: 2, ppid: 1, own: 300, children: 0, cmdline: ["etcd"] }]
 * cpuByComponent(before, after, 1, 100) // { etcd: 2 }
 * ```
 */
export const cpuByComponent = (
  before: ProcessSnapshot,
  after: ProcessSnapshot,
  harnessPid: number,
  ticksPerSecond: number
): Readonly<Partial<Record<Component, number>>> => {
  const byPid = new Map(after.map((p) => [p.pid, p]))
  const topOf = (pid: number): number => {
    let current = byPid.get(pid)
    while (current !== undefined && current.ppid !== harnessPid) current = byPid.get(current.ppid)
    return current?.pid ?? pid
  }
  const earlier = new Map(before.map((p) => [p.pid, p]))
  const totals: Partial<Record<Component, number>> = {}
  for (const proc of after) {
    if (proc.pid === harnessPid) continue
    const top = byPid.get(topOf(proc.pid)) ?? proc
    const component = componentOf(top.cmdline)
    const previous = earlier.get(proc.pid)
    const ticks = proc.own + proc.children - (previous === undefined ? 0 : previous.own + previous.children)
    totals[component] = (totals[component] ?? 0) + Math.max(0, ticks) / ticksPerSecond
  }
  return totals
}
