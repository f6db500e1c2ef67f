/**
 * Benchmark of the operator framework: how fast one Manager with a trivial
 * controller brings N new objects to their desired state, what it costs in API
 * requests and memory, and whether it stays quiet when nothing changes.
 *
 *   npm run bench:operator [-- --count N] [--concurrency C] [--qps Q] [--burst B] [--idle S] [--dir D]
 *
 * Defaults: N = 1000 objects, C = 4 workers, client rate limit Q = 1000 req/s
 * with bursts of B = 1000 (high, so the framework is measured, not the limiter;
 * pass --qps 50 --burst 100 for the client's defaults), S = 60 idle seconds.
 * With --dir, the control plane's and the operator's logs are kept in D.
 *
 * Starts a local control plane (etcd + kube-apiserver, no controller manager)
 * with a test CRD, runs the controller in its own process
 * (test/bench/operator/main.ts, Manager.runMain), creates N objects concurrently
 * from this process, and prints:
 *   - seconds until every object's status is written (observed through a watch);
 *   - reconciles per second;
 *   - the API requests the operator made (its rest_client_requests_total);
 *   - the operator's peak RSS (VmHWM from /proc/<pid>/status) and CPU seconds;
 *   - the operator's API requests during S idle seconds afterwards (only watch
 *     re-establishment and lease renewals would be expected: no polling).
 */

import { mkdtempSync, writeFileSync } from "node:fs"
import { readFile } from "node:fs/promises"
import { availableParallelism, loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import { Kube, KubeClient, Namespace } from "@db-backup-operator/kube"
import { CustomResourceDefinition, Reflector } from "@db-backup-operator/operator"
import { ControlPlane, freePorts, NotReady, startDaemon, waitUntilReady } from "@db-backup-operator/testing"
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Clock, Deferred, Effect, Fiber, Layer, Ref, References, Schedule, Stream } from "effect"
import { BenchItem, isWritten } from "./operator/BenchItem.ts"

const { values } = parseArgs({
  options: {
    count: { type: "string", default: "1000" },
    concurrency: { type: "string", default: "4" },
    qps: { type: "string", default: "1000" },
    burst: { type: "string", default: "1000" },
    idle: { type: "string", default: "60" },
    dir: { type: "string" }
  }
})
const positive = (name: keyof typeof values): number => {
  const value = Number(values[name])
  if (!Number.isInteger(value) || value <= 0) {
    console.error(`--${name} must be a positive integer, got ${values[name]}`)
    process.exit(2)
  }
  return value
}
const count = positive("count")
const concurrency = positive("concurrency")
const qps = positive("qps")
const burst = positive("burst")
const idleSeconds = positive("idle")

const operatorMain = fileURLToPath(new URL("./operator/main.ts", import.meta.url))
const crd = CustomResourceDefinition.make(BenchItem)
const crdFile = join(mkdtempSync(join(tmpdir(), "bench-operator-")), CustomResourceDefinition.fileName(crd))
writeFileSync(crdFile, CustomResourceDefinition.toYaml(crd))
const namespace = "bench"

const print = (line: string) => Effect.sync(() => console.log(line))
const seconds = (millis: number) => (millis / 1000).toFixed(2)

// ---------------------------------------------------------------- the operator's numbers

interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

/** Parses the Prometheus text format (enough of it for counters and gauges). */
const parseMetrics = (text: string): ReadonlyArray<Sample> =>
  text.split("\n").flatMap((line) => {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/u.exec(line)
    if (match === null) return []
    const labels: Record<string, string> = {}
    for (const [, key, value] of (match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/gu)) {
      if (key !== undefined && value !== undefined) labels[key] = value
    }
    return [{ name: match[1] ?? "", labels, value: Number(match[3]) }]
  })

const scrape = (url: string) =>
  Effect.tryPromise(async () => parseMetrics(await (await fetch(url)).text())).pipe(Effect.orDie)

const total = (samples: ReadonlyArray<Sample>, name: string) =>
  samples.filter((sample) => sample.name === name).reduce((sum, sample) => sum + sample.value, 0)

/** Requests by `METHOD code`, e.g. `PATCH 200`. */
const requestsBy = (samples: ReadonlyArray<Sample>): Map<string, number> => {
  const byKind = new Map<string, number>()
  for (const sample of samples.filter((s) => s.name === "rest_client_requests_total")) {
    const key = `${sample.labels.method ?? "?"} ${sample.labels.code ?? "?"}`
    byKind.set(key, (byKind.get(key) ?? 0) + sample.value)
  }
  return byKind
}

const requestDelta = (before: ReadonlyArray<Sample>, after: ReadonlyArray<Sample>): string => {
  const start = requestsBy(before)
  const parts = [...requestsBy(after)]
    .map(([key, value]) => [key, value - (start.get(key) ?? 0)] as const)
    .filter(([, delta]) => delta > 0)
    .map(([key, delta]) => `${key}: ${delta}`)
  return parts.length === 0 ? "none" : parts.join(", ")
}

/** Mean of a histogram over an interval, in milliseconds. */
const meanMillis = (before: ReadonlyArray<Sample>, after: ReadonlyArray<Sample>, histogram: string): string => {
  const sum = total(after, `${histogram}_sum`) - total(before, `${histogram}_sum`)
  const n = total(after, `${histogram}_count`) - total(before, `${histogram}_count`)
  return n === 0 ? "-" : ((sum / n) * 1000).toFixed(1)
}

/** The reflectors' list, watch and restart counters, to tell polling from watching. */
const watchSummary = (samples: ReadonlyArray<Sample>): string => {
  const restarts = samples
    .filter((sample) => sample.name === "reflector_watch_restarts_total" && sample.value > 0)
    .map((sample) => `${sample.labels.reason ?? "?"}: ${sample.value}`)
  return (
    `${total(samples, "reflector_lists_total")} list(s), ${total(samples, "reflector_watches_total")} watch(es) started, ` +
    `restarts ${restarts.length === 0 ? "none" : restarts.join(", ")}` +
    // The reflector counts any clean end by the server as "timeout", including the API
    // server dropping a watcher that fell behind (it keeps only ~10 events per watcher).
    (restarts.length === 0 ? "" : " (timeout = ended by the server: its timeout or a slow-watcher close)")
  )
}

/** Peak RSS (MiB) and CPU seconds (user + system) of a process, from /proc. */
const processUsage = (pid: number) =>
  Effect.tryPromise(async () => {
    const [status, stat] = await Promise.all([
      readFile(`/proc/${pid}/status`, "utf8"),
      readFile(`/proc/${pid}/stat`, "utf8")
    ])
    const hwmKb = Number(/^VmHWM:\s+(\d+) kB$/mu.exec(status)?.[1] ?? 0)
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    const ticks = Number(fields[11] ?? 0) + Number(fields[12] ?? 0)
    const rssKb = Number(/^VmRSS:\s+(\d+) kB$/mu.exec(status)?.[1] ?? 0)
    return { peakRssMib: hwmKb / 1024, rssMib: rssKb / 1024, cpuSeconds: ticks / 100 }
  }).pipe(Effect.orDie)

// ---------------------------------------------------------------- the run

const bench = Effect.gen(function* () {
  const plane = yield* ControlPlane
  const kube = yield* KubeClient
  yield* print(`control plane up at ${plane.server}; CRD ${crd.metadata.name} installed`)
  yield* kube.create(Namespace, { metadata: { name: namespace } })

  const [metricsPort, healthPort] = yield* freePorts(2)
  const operator = yield* startDaemon({
    name: "bench-operator",
    dir: plane.dir,
    command: process.execPath,
    args: [operatorMain],
    env: {
      KUBECONFIG: plane.kubeconfigPath,
      BENCH_CONCURRENCY: String(concurrency),
      BENCH_QPS: String(qps),
      BENCH_BURST: String(burst),
      METRICS_PORT: String(metricsPort),
      HEALTH_PORT: String(healthPort)
    }
  })
  const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`
  const readyStarted = yield* Clock.currentTimeMillis
  yield* waitUntilReady(
    Effect.tryPromise(() => fetch(`http://127.0.0.1:${healthPort}/readyz`)).pipe(
      Effect.catch(() => Effect.fail(new NotReady({ reason: "not listening" }))),
      Effect.flatMap((response) =>
        response.status === 200 ? Effect.void : Effect.fail(new NotReady({ reason: `readyz ${response.status}` }))
      ),
      Effect.tap(() => operator.ensureRunning)
    ),
    { timeout: "60 seconds", onTimeout: (reason) => new Error(`operator not ready: ${reason}`) }
  )
  yield* print(
    `operator pid ${operator.pid} ready in ${seconds((yield* Clock.currentTimeMillis) - readyStarted)} s ` +
      `(${concurrency} workers, client limit ${qps} req/s, burst ${burst})`
  )

  // Our own watch of the objects, to see the moment the operator has written every status.
  const watch = yield* Reflector.make({ resource: BenchItem, namespace })
  yield* watch.synced
  const written = new Set<string>()
  const allWritten = yield* Deferred.make<number>()
  yield* watch.changes().pipe(
    Stream.runForEach((change) =>
      Effect.gen(function* () {
        if (change.type === "Deleted" || !isWritten(change.object)) return
        written.add(change.object.metadata.name ?? "")
        if (written.size >= count) yield* Deferred.succeed(allWritten, yield* Clock.currentTimeMillis)
      })
    ),
    Effect.forkChild
  )
  const created = yield* Ref.make(0)
  const lastCreated = yield* Ref.make(0)
  const readyUsage = yield* processUsage(operator.pid)

  const beforeLoad = yield* scrape(metricsUrl)
  yield* print(`creating ${count} BenchItems (100 at a time)...`)
  const started = yield* Clock.currentTimeMillis
  const progress = yield* Effect.gen(function* () {
    const elapsed = seconds((yield* Clock.currentTimeMillis) - started)
    yield* print(`  ${elapsed} s: created ${yield* Ref.get(created)}/${count}, status written ${written.size}/${count}`)
  }).pipe(Effect.repeat(Schedule.spaced("1 second")), Effect.delay("1 second"), Effect.forkChild)
  const creating = yield* Effect.forEach(
    Array.from({ length: count }, (_, i) => i),
    (i) =>
      kube
        .create(BenchItem, { metadata: { name: `item-${i}`, namespace }, spec: { value: i } })
        .pipe(
          Effect.andThen(Ref.update(created, (n) => n + 1)),
          Effect.andThen(Effect.flatMap(Clock.currentTimeMillis, (now) => Ref.set(lastCreated, now)))
        ),
    { concurrency: 100, discard: true }
  ).pipe(Effect.forkChild)
  const finished = yield* Deferred.await(allWritten)
  yield* Fiber.join(creating)
  const createdAt = yield* Ref.get(lastCreated)
  yield* Fiber.interrupt(progress)
  const elapsedMillis = finished - started
  const afterLoad = yield* scrape(metricsUrl)
  const usage = yield* processUsage(operator.pid)
  const reconciles =
    total(afterLoad, "controller_runtime_reconcile_total") - total(beforeLoad, "controller_runtime_reconcile_total")
  const loadRequests = total(afterLoad, "rest_client_requests_total") - total(beforeLoad, "rest_client_requests_total")

  yield* print("")
  yield* print(
    `objects:                        ${count} (created at ${(count / ((createdAt - started) / 1000)).toFixed(1)}/s, all after ${seconds(createdAt - started)} s)`
  )
  yield* print(
    `all statuses written after:     ${seconds(elapsedMillis)} s (${seconds(finished - createdAt)} s after the last create)`
  )
  yield* print(
    `reconciles:                     ${reconciles} (${(reconciles / (elapsedMillis / 1000)).toFixed(1)} per second)`
  )
  yield* print(`objects per second:             ${(count / (elapsedMillis / 1000)).toFixed(1)}`)
  yield* print(`operator API requests, load:    ${loadRequests} (${requestDelta(beforeLoad, afterLoad)})`)
  yield* print(
    `operator API requests, total:   ${total(afterLoad, "rest_client_requests_total")} since start (${requestDelta([], afterLoad)})`
  )
  yield* print(
    `mean reconcile time:            ${meanMillis(beforeLoad, afterLoad, "controller_runtime_reconcile_time_seconds")} ms ` +
      `(one status PATCH each); mean queue wait ${meanMillis(beforeLoad, afterLoad, "workqueue_queue_duration_seconds")} ms`
  )
  yield* print(`operator watches:               ${watchSummary(afterLoad)}`)
  yield* print(
    `operator peak RSS (VmHWM):      ${usage.peakRssMib.toFixed(1)} MiB (${readyUsage.rssMib.toFixed(1)} MiB when ready, before any object)`
  )
  yield* print(`operator CPU time so far:       ${usage.cpuSeconds.toFixed(2)} s`)
  yield* print("")

  yield* print(`idling ${idleSeconds} s to count the operator's requests when nothing changes...`)
  const idleStart = yield* Clock.currentTimeMillis
  for (let waited = 0; waited < idleSeconds; waited += 10) {
    const step = Math.min(10, idleSeconds - waited)
    yield* Effect.sleep(`${step} seconds`)
    const now = yield* scrape(metricsUrl)
    yield* print(
      `  ${waited + step} s idle: ${total(now, "rest_client_requests_total") - total(afterLoad, "rest_client_requests_total")} requests`
    )
  }
  const afterIdle = yield* scrape(metricsUrl)
  const idleRequests = total(afterIdle, "rest_client_requests_total") - total(afterLoad, "rest_client_requests_total")
  const idleUsage = yield* processUsage(operator.pid)
  yield* operator.ensureRunning
  yield* print("")
  yield* print(
    `operator API requests, idle:    ${idleRequests} in ${seconds((yield* Clock.currentTimeMillis) - idleStart)} s (${requestDelta(afterLoad, afterIdle)})`
  )
  yield* print(`operator watches after idle:    ${watchSummary(afterIdle)}`)
  yield* print(
    `operator peak RSS after idle:   ${idleUsage.peakRssMib.toFixed(1)} MiB (now ${idleUsage.rssMib.toFixed(1)} MiB)`
  )
  yield* print(`operator CPU time while idle:   ${(idleUsage.cpuSeconds - usage.cpuSeconds).toFixed(2)} s`)
  yield* print(
    `load average now:               ${loadavg()
      .map((value) => value.toFixed(2))
      .join(" ")}`
  )
})

const KubeLive = Layer.unwrap(
  Effect.map(ControlPlane, (plane) =>
    Kube.layer({ _tag: "File", path: plane.kubeconfigPath }, { qps: 1000, burst: 1000 })
  )
)

const program = Effect.gen(function* () {
  const load = loadavg().map((value) => value.toFixed(2))
  yield* print(
    `bench:operator: ${count} objects; ${availableParallelism()} CPUs, load average ${load.join(" ")}; starting a control plane...`
  )
  yield* bench.pipe(
    Effect.scoped,
    Effect.provide(
      Layer.mergeAll(KubeLive, NodeServices.layer).pipe(
        Layer.provideMerge(ControlPlane.layer({ controllerManager: false, crds: [crdFile], dir: values.dir }))
      )
    )
  )
}).pipe(Effect.provideService(References.MinimumLogLevel, "Warn"))

NodeRuntime.runMain(program)
