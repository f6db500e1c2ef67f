import { loadavg } from "node:os"
import { fileURLToPath } from "node:url"
import { Backup, BackupDatabaseSchema, JobLabels } from "@db-backup-operator/backup-api"
import { Job, jobOutcome, KubeClient } from "@db-backup-operator/kube"
import { GcsObjectStore } from "@db-backup-operator/storage"
import { ControlPlane, eventually, GcsEmulator, Postgres, ProcessNode } from "@db-backup-operator/testing"
import { NodeServices } from "@effect/platform-node"
import { Clock, Effect, Fiber, FileSystem, Layer, Ref, Schedule, Stream } from "effect"
import { FetchHttpClient, HttpClient } from "effect/http"
import { imageNodeOptions } from "../bench/imageNodeOptions.ts"
import {
  applyYaml,
  exampleBucket,
  operatorStarted,
  originalExample,
  prepareNamespace,
  seedExampleDatabase
} from "../e2e/support.ts"
import { controlPlaneLayer, files, OperatorProcess, type Stack, type StackError } from "../stack/localStack.ts"
import { KnownSecrets } from "../stack/secretLeaks.ts"
import { checkInvariants, type Invariants } from "./invariants.ts"
import {
  type Component,
  type CpuTicks,
  cpuByComponent,
  type LagReport,
  lagReport,
  millisOf,
  type ObservedJob,
  type ProcessSnapshot,
  parseSeries,
  ratePerSecond,
  type Series,
  type SlotCoverage,
  type Summary,
  slotCoverage,
  statTicks,
  sumByLabel,
  summarize,
  sumSeries,
  vmRssBytes
} from "./loadStats.ts"
import { password } from "./scenarios.ts"

/**
 * The load profile of `npm run chaos` (issue 13): many resources on
 * `@every 1m` against one database for some minutes, with schedule lag, the
 * operator's RSS and API request rate, the CPU of every part of the stack,
 * and the invariants counted at the end.
 *
 *   npm run chaos -- --load [--resources 1000] [--minutes 15] [--runner real|stand-in]
 *                           [--ramp SECONDS] [--kcm-qps N] [--concurrency N] [--workers N]
 *                           [--api-qps N] [--cpu-prof DIR]
 *
 *   --runner       real: db-backup-runner; stand-in: `true` (default above 10 resources)
 *   --ramp         seconds over which the resources are created (default 60: slots spread evenly)
 *   --kcm-qps      kube-controller-manager's --kube-api-qps (burst twice that; default: its own, 20)
 *   --concurrency  the operator's --max-concurrent-backups(-per-server) (default: the resources)
 *   --workers      the operator's --backup-workers (default: its own, 4)
 *   --api-qps      the operator's --kube-api-qps (burst twice that; default: its own, 50)
 *   --cpu-prof     write a 2-minute CPU profile of the operator's steady state to this directory
 *
 * The real runner cannot keep up here: a run from the repository's sources
 * costs about 2.7 CPU-seconds (Node start with type stripping, pg_dump,
 * upload), so 50 resources on `@every 1m` already need more than the two
 * cores (measured: load average 57, runs taking 70-100 s). Above 10 resources
 * Jobs run a stand-in by default (`true`: it exits 0 at once). The whole
 * Kubernetes path is still real (operator, API server, Job controller, Pods on
 * the process node, outcomes recorded), but nothing is written to the bucket,
 * so the object invariant is not checked; the report says so loudly.
 */

/** What to run. */
export interface LoadOptions {
  readonly resources: number
  /** Length of the measured window, from the first resource's creation. */
  readonly minutes: number
  /** The real runner, or a stand-in that exits 0 at once and writes nothing. */
  readonly runner: "real" | "stand-in"
  /**
   * Seconds over which the resources are created. `@every` counts from a
   * resource's creation, so this spreads the slots: the default, one period,
   * gives a steady rate (1000 resources: 16.7 slots/s) rather than every slot
   * of a minute in the same few seconds.
   */
  readonly rampSeconds: number
  /** kube-controller-manager's `--kube-api-qps` (its burst: twice that); undefined keeps its default (20). */
  readonly controllerManagerQps: number | undefined
  /** The operator's `--max-concurrent-backups` and `--max-concurrent-backups-per-server`. */
  readonly concurrency: number
  /** The operator's `--backup-workers`; undefined keeps its default. */
  readonly workers: number | undefined
  /** The operator's `--kube-api-qps` (its burst: twice that); undefined keeps its default. */
  readonly apiQps: number | undefined
  /** Directory for the operator's `--cpu-prof` profile (written when it exits at the end), if any. */
  readonly cpuProfileDir: string | undefined
}

/** The flags of `--load`, as `parseArgs` gives them (main.ts). */
export interface LoadFlags {
  readonly resources?: string | undefined
  readonly minutes?: string | undefined
  readonly runner?: string | undefined
  readonly ramp?: string | undefined
  readonly "kcm-qps"?: string | undefined
  readonly concurrency?: string | undefined
  readonly workers?: string | undefined
  readonly "api-qps"?: string | undefined
  readonly "cpu-prof"?: string | undefined
}

/** Scales up to this many resources run the real runner unless told otherwise (about half a core of runners). */
const realRunnerUpTo = 10

const period = 60_000
const runnerImage = "db-backup-runner:load"
const namespace = "chaos-load"
/** The backup controller's name: its queue, its reconcile counter. */
const backupController = "backupdatabaseschema"
/** Linux's USER_HZ: `/proc/<pid>/stat` counts CPU in 1/100 s on every architecture Node runs on. */
const ticksPerSecond = 100
/**
 * Slots this close to the stop (or closer than the worst lag) are not counted
 * as due: the resources are suspended right after it, and a slot a second
 * before the stop may rightly never get its Job. Twice the lag goal.
 */
const cutOffMillis = 10_000
/** The module `--cpu-prof` preloads into the operator (see {@link runLoad}). */
const cpuProfilePreload = fileURLToPath(new URL("./cpuProfile.ts", import.meta.url))

/**
 * The options from the flags, or the message for the first bad one.
 *
 * @example
 * ```ts
 * loadOptions({ resources: "200", minutes: "3" }) // { resources: 200, minutes: 3, runner: "stand-in", ... }
 * ```
 */
export const loadOptions = (flags: LoadFlags): LoadOptions | string => {
  const count = (flag: keyof LoadFlags, fallback: number, minimum = 1) => {
    const value = flags[flag] === undefined ? fallback : Number(flags[flag])
    return Number.isFinite(value) && value >= minimum ? value : undefined
  }
  const resources = count("resources", 1000)
  if (resources === undefined || !Number.isInteger(resources)) return "--resources must be a whole number from 1"
  const minutes = count("minutes", 15)
  if (minutes === undefined) return "--minutes must be a number from 1"
  const runner = flags.runner ?? (resources <= realRunnerUpTo ? "real" : "stand-in")
  if (runner !== "real" && runner !== "stand-in") return "--runner must be real or stand-in"
  const rampSeconds = count("ramp", period / 1000, 0)
  if (rampSeconds === undefined) return "--ramp must be a number of seconds from 0"
  const qps = flags["kcm-qps"] === undefined ? undefined : count("kcm-qps", 0)
  if (flags["kcm-qps"] !== undefined && qps === undefined) return "--kcm-qps must be a number from 1"
  const concurrency = count("concurrency", resources)
  if (concurrency === undefined || !Number.isInteger(concurrency)) return "--concurrency must be a whole number from 1"
  const optionalCount = (flag: "workers" | "api-qps") => {
    if (flags[flag] === undefined) return undefined
    const value = count(flag, 0)
    return value !== undefined && Number.isInteger(value) ? value : `--${flag} must be a whole number from 1`
  }
  const workers = optionalCount("workers")
  if (typeof workers === "string") return workers
  const apiQps = optionalCount("api-qps")
  if (typeof apiQps === "string") return apiQps
  return {
    resources,
    minutes,
    runner,
    rampSeconds,
    controllerManagerQps: qps,
    concurrency,
    workers,
    apiQps,
    cpuProfileDir: flags["cpu-prof"]
  }
}

/**
 * The stack of the load profile: the one of localStack.ts, assembled here
 * because two parts differ. Jobs' image maps to the stand-in when asked; the
 * harness's client (the process node's, playing every kubelet, and the
 * watches') gets a rate limit of 500 requests/s, since in a cluster each node's
 * kubelet has its own; kube-controller-manager may get a higher QPS. The
 * release-time secret scan is left out: at this scale it would dump every
 * object of the run through kubectl, and the profile has no secret to find.
 */
export const loadStackLayer = (options: LoadOptions): Layer.Layer<Stack, StackError> =>
  OperatorProcess.layer({
    runnerImage,
    extraArgs: [
      "--max-concurrent-backups",
      String(options.concurrency),
      "--max-concurrent-backups-per-server",
      String(options.concurrency),
      ...(options.workers === undefined ? [] : ["--backup-workers", String(options.workers)]),
      ...(options.apiQps === undefined
        ? []
        : ["--kube-api-qps", String(options.apiQps), "--kube-api-burst", String(options.apiQps * 2)])
    ]
  }).pipe(
    Layer.provideMerge(
      ProcessNode.layer({
        imageMap: { [runnerImage]: options.runner === "real" ? `${process.execPath} ${files.runnerBin}` : "true" }
      })
    ),
    Layer.provideMerge(
      Layer.unwrap(
        ControlPlane.useSync((controlPlane) =>
          KubeClient.layer({ _tag: "File", path: controlPlane.kubeconfigPath }, { qps: 500, burst: 1000 })
        )
      )
    ),
    Layer.provideMerge(
      Layer.mergeAll(
        options.controllerManagerQps === undefined
          ? controlPlaneLayer
          : ControlPlane.layer({
              crds: files.crds,
              extraControllerManagerArgs: [
                `--kube-api-qps=${options.controllerManagerQps}`,
                `--kube-api-burst=${options.controllerManagerQps * 2}`
              ]
            }),
        Postgres.layer,
        GcsEmulator.layer,
        KnownSecrets.layer
      )
    )
  )

/** A backup Job as the harness's watch saw it: its last state, and when it first arrived. */
interface Arrival {
  readonly job: Job
  /** Milliseconds; undefined if it first came in a list (after the watch broke), which says nothing of when it was made. */
  readonly received: number | undefined
}

/**
 * Follows the backup Jobs of `namespace` for the rest of the scope (like
 * support.ts's watchJobs, so Jobs the cleanup controller deleted still count)
 * and notes when each first arrived. The map is mutated in place: thousands
 * of Jobs with a handful of events each would make a copy per event quadratic.
 */
const watchArrivals = (inNamespace: string) =>
  Effect.gen(function* () {
    const kube = yield* KubeClient
    const arrivals = new Map<string, Arrival>()
    const note = (job: Job, received: number | undefined) =>
      Effect.sync(() => {
        const name = job.metadata.name ?? ""
        const previous = arrivals.get(name)
        arrivals.set(name, { job, received: previous === undefined ? received : previous.received })
      })
    const follow = Effect.gen(function* () {
      const { items, resourceVersion } = yield* kube.list(Job, {
        namespace: inNamespace,
        labelSelector: JobLabels.jobSelector
      })
      yield* Effect.forEach(items, (job) => note(job, undefined), { discard: true })
      yield* kube
        .watch(Job, { namespace: inNamespace, labelSelector: JobLabels.jobSelector, resourceVersion })
        .pipe(
          Stream.runForEach((event) =>
            event.type === "BOOKMARK" || event.type === "MALFORMED"
              ? Effect.void
              : Effect.flatMap(Clock.currentTimeMillis, (now) => note(event.object, now))
          )
        )
    })
    yield* follow.pipe(Effect.ignore, Effect.andThen(Effect.sleep("200 millis")), Effect.forever, Effect.forkScoped)
    return Effect.sync((): ReadonlyArray<Arrival> => [...arrivals.values()])
  })

/** The processes this harness started, directly or not, with their CPU so far: the stack, nothing of other runs. */
const processTree = Effect.gen(function* () {
  const fs = yield* FileSystem.FileSystem
  const pids = (yield* fs.readDirectory("/proc").pipe(Effect.orElseSucceed(() => []))).filter((entry) =>
    /^\d+$/u.test(entry)
  )
  const all = yield* Effect.forEach(
    pids,
    (pid) =>
      Effect.all([fs.readFileString(`/proc/${pid}/stat`), fs.readFileString(`/proc/${pid}/cmdline`)]).pipe(
        Effect.map(([stat, cmdline]) => {
          const ticks = statTicks(stat)
          return ticks === undefined ? [] : [{ ...ticks, cmdline: cmdline.split("\0").filter((arg) => arg !== "") }]
        }),
        // Gone meanwhile, or not ours to read.
        Effect.orElseSucceed(() => [])
      ),
    { concurrency: 16 }
  ).pipe(Effect.map((lists) => lists.flat()))
  const children = new Map<number, Array<CpuTicks & { readonly cmdline: ReadonlyArray<string> }>>()
  for (const proc of all) children.set(proc.ppid, [...(children.get(proc.ppid) ?? []), proc])
  const tree: Array<CpuTicks & { readonly cmdline: ReadonlyArray<string> }> = []
  const walk = (pid: number) => {
    for (const child of children.get(pid) ?? []) {
      tree.push(child)
      walk(child.pid)
    }
  }
  walk(process.pid)
  const self = all.find((proc) => proc.pid === process.pid)
  return { tree: tree as ProcessSnapshot, self }
})

/** The operator's `/metrics`, parsed, from the address its log announces (it binds port 0). */
const operatorSeries = Effect.gen(function* () {
  const operator = yield* OperatorProcess
  const url = yield* eventually(
    "the operator's metrics address in its log",
    Effect.map(operator.logs, (log) => /serving \/metrics[^\n]*? on (http:\/\/[0-9.]+:\d+)/u.exec(log)?.[1]),
    { timeout: "60 seconds", interval: "500 millis" }
  )
  const client = yield* HttpClient.HttpClient
  // The address is read once: the log grows with the run, and reading all of it every few seconds would cost.
  return client.get(`${url}/metrics`).pipe(
    Effect.flatMap((response) => response.text),
    Effect.map(parseSeries),
    Effect.orElseSucceed((): ReadonlyArray<Series> => [])
  )
})

/** kube-apiserver's own `/metrics`: every client's requests, not only the operator's. */
const apiServerSeries = KubeClient.use((kube) =>
  kube.request({ method: "GET", path: "/metrics", accept: "text/plain" })
).pipe(
  Effect.map((body) => (typeof body === "string" ? parseSeries(body) : [])),
  Effect.orElseSucceed((): ReadonlyArray<Series> => [])
)

/** What is read at both ends of the measured window. */
interface Reading {
  readonly at: number
  readonly operator: ReadonlyArray<Series>
  readonly apiServer: ReadonlyArray<Series>
  readonly tree: ProcessSnapshot
  readonly self: CpuTicks | undefined
  readonly loadAverage: ReadonlyArray<number>
}

/** One periodic sample during the window. */
interface Sample {
  readonly at: number
  readonly rssBytes: number | undefined
  readonly requests: number
  readonly queueDepth: number
}

/** What the load profile measured; see {@link printLoadReport}. */
export interface LoadResult {
  readonly options: LoadOptions
  readonly seconds: number
  readonly coverage: SlotCoverage
  /** Slots this close to the stop were not counted as due (the larger of 10 s and the worst lag). */
  readonly cutOffSeconds: number
  readonly jobsCreated: number
  readonly lag: LagReport
  readonly rss: Summary
  readonly operatorRequestsPerSecond: number
  readonly operatorPeakRequestsPerSecond: number
  readonly operatorRequestsByMethod: Readonly<Record<string, number>>
  readonly apiServerRequestsPerSecond: number
  readonly reconciles: number
  readonly reconcilesPerSecond: number
  /** Mean time of one backup reconcile (its histogram's sum over count); with 2 workers, the ceiling is 2 / this. */
  readonly reconcileSeconds: number
  readonly queueDepth: Summary
  readonly cpuSeconds: Readonly<Partial<Record<Component | "harness" | "exited children", number>>>
  readonly loadAverage: { readonly start: ReadonlyArray<number>; readonly end: ReadonlyArray<number> }
  readonly settled: boolean
  readonly invariants: Invariants
  readonly throttledLogLines: number
}

const counterDelta = (
  before: ReadonlyArray<Series>,
  after: ReadonlyArray<Series>,
  name: string,
  where: Readonly<Record<string, string>> = {}
) => sumSeries(after, name, where) - sumSeries(before, name, where)

/** A histogram's mean observation between two readings (its `_sum` growth over its `_count` growth), 0 if none. */
const meanOver = (
  before: ReadonlyArray<Series>,
  after: ReadonlyArray<Series>,
  histogram: string,
  where: Readonly<Record<string, string>>
) => {
  const count = counterDelta(before, after, `${histogram}_count`, where)
  return count > 0 ? counterDelta(before, after, `${histogram}_sum`, where) / count : 0
}

/** Runs the profile on a stack from {@link loadStackLayer}, prints the report, and returns the figures. */
export const loadProfile = (options: LoadOptions) =>
  Effect.gen(function* () {
    const kube = yield* KubeClient
    const pg = yield* Postgres
    const operator = yield* OperatorProcess
    const controlPlane = yield* ControlPlane
    yield* seedExampleDatabase(password)
    yield* operatorStarted(0)
    yield* prepareNamespace(namespace, { name: "backup-secret", password })
    const arrivals = yield* watchArrivals(namespace)
    const readOperator = yield* operatorSeries
    const read = Effect.gen(function* () {
      const [at, operatorNow, apiServer, tree] = yield* Effect.all(
        [Clock.currentTimeMillis, readOperator, apiServerSeries, processTree],
        { concurrency: "unbounded" }
      )
      return { at, operator: operatorNow, apiServer, ...tree, loadAverage: loadavg() } satisfies Reading
    })

    // Sampled every 5 s for the whole window: RSS, the request counter (its peak rate) and the queue.
    const samples = yield* Ref.make<ReadonlyArray<Sample>>([])
    const sample = Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const pid = (yield* operator.current).pid
      const rssBytes = yield* fs.readFileString(`/proc/${pid}/status`).pipe(
        Effect.map(vmRssBytes),
        Effect.orElseSucceed(() => undefined)
      )
      const series = yield* readOperator
      const next: Sample = {
        at: yield* Clock.currentTimeMillis,
        rssBytes,
        requests: sumSeries(series, "rest_client_requests_total"),
        queueDepth: sumSeries(series, "workqueue_depth", { name: backupController })
      }
      const all = [...(yield* Ref.get(samples)), next]
      yield* Ref.set(samples, all)
      const jobs = (yield* arrivals).length
      yield* Effect.sync(() =>
        process.stdout.write(
          `\rload: ${jobs} Jobs, queue ${next.queueDepth}, operator RSS ${((rssBytes ?? 0) / 2 ** 20).toFixed(0)} MiB, load average ${loadavg()[0]?.toFixed(2)}   `
        )
      )
    })

    const yaml = (i: number) =>
      `${originalExample({ name: `db-${i}`, namespace, dbHost: pg.host, dbPort: pg.port })}  schedule: "@every 1m"\n`
    // Created in batches every 2 s over the ramp: kubectl per resource would cost more CPU than the operator.
    const batchEvery = 2000
    const batches = Math.max(1, Math.ceil((options.rampSeconds * 1000) / batchEvery))
    const perBatch = Math.ceil(options.resources / batches)

    const before = yield* read
    const started = before.at
    const sampler = yield* sample.pipe(Effect.repeat(Schedule.spaced("5 seconds")), Effect.forkScoped)
    yield* Effect.forEach(
      Array.from({ length: batches }, (_, b) => b),
      (b) =>
        Effect.gen(function* () {
          const indices = Array.from({ length: perBatch }, (_, k) => b * perBatch + k).filter(
            (i) => i < options.resources
          )
          if (indices.length === 0) return
          // Deadlines from the start, not sleeps between batches: a slow kubectl does not stretch the ramp.
          const wait = started + b * batchEvery - (yield* Clock.currentTimeMillis)
          if (wait > 0) yield* Effect.sleep(wait)
          const applied = yield* applyYaml(indices.map(yaml).join("---\n"))
          if (applied.exitCode !== 0) return yield* Effect.die(new Error(applied.stderr))
        }),
      { discard: true }
    )
    const remaining = started + options.minutes * 60_000 - (yield* Clock.currentTimeMillis)
    if (remaining > 0) yield* Effect.sleep(remaining)
    const after = yield* read
    yield* Fiber.interrupt(sampler)
    yield* sample
    yield* Effect.sync(() => process.stdout.write("\n"))

    // Stopped: suspend everything, then wait for the runs in flight to finish and be recorded.
    yield* Effect.forEach(
      Array.from({ length: options.resources }, (_, i) => `db-${i}`),
      (name) => kube.mergePatch(BackupDatabaseSchema, name, { spec: { suspend: true } }, { namespace }),
      { concurrency: 16, discard: true }
    )
    const settled = yield* eventually(
      "every started run to finish and be recorded",
      Effect.gen(function* () {
        const jobs = (yield* arrivals).map((arrival) => arrival.job)
        const records = (yield* kube.list(Backup, { namespace })).items
        const running = records.some((record) => record.status?.phase === "Running")
        return running || jobs.some((job) => jobOutcome(job) === undefined) ? undefined : true
      }),
      { timeout: "5 minutes", interval: "2 seconds" }
    ).pipe(Effect.orElseSucceed(() => false))

    const seen = yield* arrivals
    const backups = (yield* kube.list(Backup, { namespace })).items
    const resources = (yield* kube.list(BackupDatabaseSchema, { namespace })).items
    const objects =
      options.runner === "real"
        ? yield* GcsEmulator.use((gcs) =>
            GcsObjectStore.make({ apiEndpoint: gcs.endpoint })
              .list(exampleBucket, { prefix: `backups/${namespace}/` })
              .pipe(Effect.orDie)
          )
        : []
    const invariants = checkInvariants({
      backups,
      jobs: seen.map((arrival) => arrival.job),
      objects: objects.map((info) => info.object),
      bucketUrl: `gs://${exampleBucket}`
    })

    const observed: ReadonlyArray<ObservedJob> = seen.flatMap(({ job, received }) => {
      const slot = millisOf(job.metadata.annotations?.[JobLabels.Annotation.scheduledAt])
      const created = millisOf(job.metadata.creationTimestamp)
      const resource = job.metadata.labels?.[JobLabels.Label.resourceUid]
      if (slot === undefined || created === undefined || resource === undefined) return []
      return [
        {
          resource,
          slot,
          created,
          received,
          started: millisOf(job.status?.startTime),
          completed: jobOutcome(job) === "Complete" ? millisOf(job.status?.completionTime) : undefined
        }
      ]
    })
    const lag = lagReport(observed)
    // A slot less than the worst lag before the stop may have been cut by the suspension, not skipped.
    const cutOff = Math.max(cutOffMillis, lag.byWatch.max)
    const coverage = slotCoverage({
      resources: resources.flatMap((resource) => {
        const anchor = millisOf(resource.metadata.creationTimestamp)
        return anchor === undefined ? [] : [{ uid: resource.metadata.uid ?? "", anchor }]
      }),
      periodMillis: period,
      until: after.at - cutOff,
      jobs: observed
    })
    const seconds = (after.at - before.at) / 1000
    const taken = yield* Ref.get(samples)
    const peak = taken
      .slice(1)
      .map((s, i) =>
        ratePerSecond(taken[i]?.requests ?? s.requests, s.requests, (s.at - (taken[i]?.at ?? s.at)) / 1000)
      )
    const byMethodBefore = sumByLabel(before.operator, "rest_client_requests_total", "method")
    const byMethodAfter = sumByLabel(after.operator, "rest_client_requests_total", "method")
    const reconciles = counterDelta(before.operator, after.operator, "controller_runtime_reconcile_total", {
      controller: backupController
    })
    const selfSeconds = (ticks: CpuTicks | undefined, of: "own" | "children") => (ticks?.[of] ?? 0) / ticksPerSecond
    const controllerManagerLog = yield* (yield* FileSystem.FileSystem)
      .readFileString(`${controlPlane.dir}/kube-controller-manager.log`)
      .pipe(Effect.orElseSucceed(() => ""))
    const result: LoadResult = {
      options,
      seconds,
      coverage,
      jobsCreated: observed.length,
      lag,
      cutOffSeconds: cutOff / 1000,
      rss: summarize(taken.flatMap((s) => (s.rssBytes === undefined ? [] : [s.rssBytes]))),
      operatorRequestsPerSecond: ratePerSecond(
        0,
        counterDelta(before.operator, after.operator, "rest_client_requests_total"),
        seconds
      ),
      operatorPeakRequestsPerSecond: peak.length === 0 ? 0 : Math.max(...peak),
      operatorRequestsByMethod: Object.fromEntries(
        Object.entries(byMethodAfter).map(([method, n]) => [
          method,
          ratePerSecond(byMethodBefore[method] ?? 0, n, seconds)
        ])
      ),
      apiServerRequestsPerSecond: ratePerSecond(
        0,
        counterDelta(before.apiServer, after.apiServer, "apiserver_request_total"),
        seconds
      ),
      reconciles,
      reconcilesPerSecond: ratePerSecond(0, reconciles, seconds),
      reconcileSeconds: meanOver(before.operator, after.operator, "controller_runtime_reconcile_time_seconds", {
        controller: backupController
      }),
      queueDepth: summarize(taken.map((s) => s.queueDepth)),
      cpuSeconds: {
        ...cpuByComponent(before.tree, after.tree, process.pid, ticksPerSecond),
        harness: selfSeconds(after.self, "own") - selfSeconds(before.self, "own"),
        "exited children": selfSeconds(after.self, "children") - selfSeconds(before.self, "children")
      },
      loadAverage: { start: before.loadAverage, end: after.loadAverage },
      settled,
      invariants,
      throttledLogLines: controllerManagerLog.split("client-side throttling").length - 1
    }
    printLoadReport(result)
    return result
  })

const seconds = (millis: number) => (millis / 1000).toFixed(2)
const lagLine = (summary: Summary) =>
  `p50 ${seconds(summary.p50)} s, p99 ${seconds(summary.p99)} s, max ${seconds(summary.max)} s (${summary.count} Jobs)`

/** The report, README-ready: one figure a line, with what each means where it is not obvious. */
export const printLoadReport = (result: LoadResult) => {
  const { options, lag, invariants } = result
  const standIn = options.runner === "stand-in"
  const objectInvariant = standIn ? "n/a (stand-in runner writes nothing)" : String(invariants.incompleteObjects)
  // With the stand-in every Succeeded record lacks its dump by design: those lines are noise, the rest are findings.
  const violations = invariants.violations.filter(
    (line) => !standIn || !(line.startsWith("gs://") || /^record .* is Succeeded, but /u.test(line))
  )
  const cpu = Object.entries(result.cpuSeconds)
    .sort(([, a], [, b]) => (b ?? 0) - (a ?? 0))
    .map(([name, s]) => `${name} ${(s ?? 0).toFixed(0)} s (${(((s ?? 0) / result.seconds) * 100).toFixed(0)}%)`)
    .join(", ")
  const lines = [
    "",
    `load profile: ${options.resources} resources on @every 1m against one database, ${options.minutes} min (measured ${result.seconds.toFixed(0)} s), created over ${options.rampSeconds} s`,
    ...(standIn
      ? [
          "  !!! RUNNER: STAND-IN. Backup Jobs run `true` (exits 0 at once) instead of db-backup-runner: the Kubernetes",
          "  !!! path is real (operator, API server, Job controller, Pods, outcomes), but no dump is made or uploaded."
        ]
      : ["  runner: the real db-backup-runner (node + pg_dump per Pod)"]),
    `  kube-controller-manager --kube-api-qps: ${options.controllerManagerQps ?? "20 (its default)"}; operator --max-concurrent-backups(-per-server): ${options.concurrency}, --backup-workers: ${options.workers ?? "4 (its default)"}`,
    `  load average (1/5/15 min) at start ${result.loadAverage.start.map((n) => n.toFixed(2)).join(" ")}, at end ${result.loadAverage.end.map((n) => n.toFixed(2)).join(" ")}`,
    `  slots due (to ${result.cutOffSeconds.toFixed(0)} s before the stop, the larger of 10 s and the worst lag): ${result.coverage.due}; with a Job: ${result.coverage.withJob}; without: ${result.coverage.withoutJob}`,
    `  Jobs created (scheduled runs): ${result.jobsCreated}`,
    `  schedule lag by creationTimestamp (1 s resolution, truncated: up to 1 s low): ${lagLine(lag.byCreationTimestamp)}`,
    `  schedule lag by the harness's watch (ms resolution, includes watch delivery): ${lagLine(lag.byWatch)}`,
    `  Job controller pickup (status.startTime - creationTimestamp, 1 s resolution): ${lagLine(lag.jobControllerPickup)}`,
    `  Job created to complete (1 s resolution): ${lagLine(lag.jobDuration)}`,
    `  goal schedule lag p99 < 5 s: ${lag.byWatch.p99 < 5000 ? "met" : "MISSED"} (by the watch)`,
    `  operator RSS (with the image's NODE_OPTIONS, ${imageNodeOptions("operator")}): p50 ${(result.rss.p50 / 2 ** 20).toFixed(0)} MiB, max ${(result.rss.max / 2 ** 20).toFixed(0)} MiB (${result.rss.count} samples, every 5 s)`,
    `  operator API requests: ${result.operatorRequestsPerSecond.toFixed(1)}/s mean, ${result.operatorPeakRequestsPerSecond.toFixed(1)}/s peak (5 s); by method ${Object.entries(
      result.operatorRequestsByMethod
    )
      .map(([method, rate]) => `${method} ${rate.toFixed(1)}`)
      .join(
        ", "
      )} (its client limit: ${options.apiQps === undefined ? "50/s, burst 100 (its default)" : `${options.apiQps}/s, burst ${options.apiQps * 2}`})`,
    `  API server requests, every client: ${result.apiServerRequestsPerSecond.toFixed(1)}/s`,
    `  reconciles (backup controller): ${result.reconciles} (${result.reconcilesPerSecond.toFixed(1)}/s, mean ${(result.reconcileSeconds * 1000).toFixed(0)} ms each); queue depth p50 ${result.queueDepth.p50}, max ${result.queueDepth.max}`,
    `  CPU over the window (share of one core): ${cpu}`,
    `  kube-controller-manager log lines about client-side throttling: ${result.throttledLogLines}`,
    `  settled after the stop: ${result.settled ? "yes" : "NO (runs still in flight after 5 minutes)"}`,
    `  invariants: duplicated runs ${invariants.duplicatedRuns}, lost outcomes ${invariants.lostOutcomes}, incomplete objects ${objectInvariant} (${invariants.slots} slots recorded, ${invariants.runs} Jobs)`,
    ...violations.slice(0, 20).map((line) => `    ${line}`),
    ...(violations.length > 20 ? [`    ... and ${violations.length - 20} more`] : [])
  ]
  for (const line of lines) console.log(line)
}

/** Any duplicated run or lost outcome; incomplete objects too unless the stand-in ran (it writes none). */
export const loadViolated = (result: LoadResult): boolean =>
  result.invariants.duplicatedRuns + result.invariants.lostOutcomes > 0 ||
  (result.options.runner === "real" && result.invariants.incompleteObjects > 0)

/**
 * `npm run chaos -- --load ...`: the options from the flags, the profile on
 * its own stack; exit code 2 for bad flags, 1 for a violated invariant.
 */
export const runLoad = (flags: LoadFlags) => {
  const options = loadOptions(flags)
  if (typeof options === "string") {
    return Effect.sync(() => {
      console.error(options)
      process.exitCode = 2
    })
  }
  return Effect.gen(function* () {
    // The only way into the operator's Node: OperatorProcess takes operator flags, and the process
    // inherits this environment (Pods do not: the process node builds theirs like a kubelet).
    // The image's V8 settings, so the RSS reported is the shipped operator's.
    yield* Effect.sync(() => {
      process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ""} ${imageNodeOptions("operator")}`.trim()
    })
    // `--cpu-prof` is not allowed in NODE_OPTIONS, so a preloaded module profiles instead.
    if (options.cpuProfileDir !== undefined) {
      const dir = options.cpuProfileDir
      yield* Effect.sync(() => {
        process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ""} --import=${cpuProfilePreload}`.trim()
        process.env.LOAD_CPU_PROFILE_DIR = dir
        // The steady state: from half a minute after the ramp, for two minutes (or what is left).
        process.env.LOAD_CPU_PROFILE_DELAY_SECONDS = String(options.rampSeconds + 30)
        process.env.LOAD_CPU_PROFILE_SECONDS = String(
          Math.max(10, Math.min(120, options.minutes * 60 - options.rampSeconds - 40))
        )
      })
    }
    const result = yield* loadProfile(options).pipe(Effect.provide(loadStackLayer(options)))
    if (loadViolated(result)) process.exitCode = 1
  }).pipe(Effect.scoped, Effect.provide([FetchHttpClient.layer, NodeServices.layer]))
}
