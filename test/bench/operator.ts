/**
 * Benchmark of the operator framework against controller-runtime: the same
 * trivial controller written with each (test/bench/operator/main.ts on our
 * Manager; test/bench/operator/controller-runtime/main.go on
 * sigs.k8s.io/controller-runtime, the reference kept in the repository), run one
 * after the other against one local control plane, measured the same way.
 *
 *   npm run bench:operator [-- --count N] [--rounds R] [--concurrency C] [--qps Q] [--burst B] [--idle S] [--dir D] [--source]
 *                          [--node-options="--cpu-prof --cpu-prof-dir=/tmp/prof"]
 *
 * Ours runs the way the operator ships: main.ts bundled by scripts/bundle.ts
 * (the build the images run), started with plain `node` and
 * the NODE_OPTIONS of the operator image (its V8 settings, read from
 * docker/operator/Dockerfile). With --source it runs from the TypeScript sources
 * instead, as in development (Node strips the types of every module at
 * start-up), with the same NODE_OPTIONS, to compare the two.
 *
 * Defaults: N = 1000 objects (try 10000), R = 5 rounds, C = 4 workers, client
 * rate limit Q = 1000 req/s with bursts of B = 1000 (high, so the frameworks are
 * measured, not the limiter; --qps 50 --burst 100 are the usual client defaults),
 * S = 60 idle seconds. With --dir, the control plane's and the operators' logs
 * are kept in D.
 *
 * The reference operator is built from the Go module proxy with the versions its
 * go.mod pins, into the same cache as the test binaries (keyed by the
 * controller-runtime version, a digest of its source and the Go version), once.
 *
 * One control plane (etcd + kube-apiserver, no controller manager) with the
 * BenchItem CRD is started once. Each round runs both operators, one at a time,
 * in alternating order (ours first in odd rounds, controller-runtime first in
 * even ones), so neither always runs on a warmer or more fragmented apiserver.
 * Every run starts from the same state: no BenchItem anywhere (the previous
 * run's are deleted, and gone, before the next operator starts), a fresh
 * process, and a fresh watch of our own. A run measures:
 *   - start to ready: from spawning the process until its /readyz answers 200 and
 *     its metrics show the benchitem controller started (both operators export
 *     controller_runtime_max_concurrent_reconciles{controller="benchitem"}; each
 *     readyz passes once the BenchItem cache has synced), polled every 20 ms;
 *   - convergence: from the first create until our watch has seen every object
 *     with its status written (N objects created 100 at a time);
 *   - reconciles per second over that time, and API requests during it (the
 *     operator's rest_client_requests_total, named alike in both);
 *   - peak RSS (VmHWM from /proc/<pid>/status) and CPU seconds (/proc/<pid>/stat);
 *   - the API requests during S idle seconds afterwards (none expected from
 *     either: no polling, no leader election).
 * The table shows the median of each measure over the rounds, and the ratio
 * ours / controller-runtime.
 */

import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { availableParallelism, cpus, loadavg, tmpdir } from "node:os"
import { basename, dirname, join, relative } from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import { KubeClient, Namespace } from "@db-backup-operator/kube"
import { Crd, Reflector } from "@db-backup-operator/operator"
import {
  ControlPlane,
  ensureGoModuleBuilt,
  freePorts,
  NotReady,
  startDaemon,
  versions,
  waitUntilReady
} from "@db-backup-operator/testing"
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Deferred, Effect, Fiber, Layer, Ref, References, Schedule, Stream } from "effect"
import { bundle } from "../../scripts/bundle.ts"
import { imageNodeOptions } from "./imageNodeOptions.ts"
import { BenchItem, isWritten } from "./operator/BenchItem.ts"
import {
  processUsage,
  requestDelta,
  type Sample,
  scrape,
  statusOf,
  total,
  tryScrape,
  watchSummary
} from "./operator/measure.ts"
import { type Measure, printTable, type Run } from "./operator/table.ts"

const { values } = parseArgs({
  options: {
    count: { type: "string", default: "1000" },
    rounds: { type: "string", default: "5" },
    concurrency: { type: "string", default: "4" },
    qps: { type: "string", default: "1000" },
    burst: { type: "string", default: "1000" },
    idle: { type: "string", default: "60" },
    dir: { type: "string" },
    source: { type: "boolean", default: false },
    "node-options": { type: "string", default: "" }
  }
})
const positive = (name: Exclude<keyof typeof values, "dir" | "source" | "node-options">): number => {
  const value = Number(values[name])
  if (!Number.isInteger(value) || value <= 0) {
    console.error(`--${name} must be a positive integer, got ${values[name]}`)
    process.exit(2)
  }
  return value
}
const count = positive("count")
const rounds = positive("rounds")
const concurrency = positive("concurrency")
const qps = positive("qps")
const burst = positive("burst")
const idleSeconds = positive("idle")

const operatorSource = fileURLToPath(new URL("./operator/main.ts", import.meta.url))
const referenceDir = fileURLToPath(new URL("./operator/controller-runtime", import.meta.url))
const controllerRuntimeVersion =
  /^\s*sigs\.k8s\.io\/controller-runtime (\S+)/mu.exec(readFileSync(join(referenceDir, "go.mod"), "utf8"))?.[1] ?? "?"

const crd = Crd.make(BenchItem)
const crdFile = join(mkdtempSync(join(tmpdir(), "bench-operator-")), Crd.fileName(crd))
writeFileSync(crdFile, Crd.toYaml(crd))
const namespace = "bench"
const itemsPath = `/apis/${BenchItem.group}/${BenchItem.version}/namespaces/${namespace}/${BenchItem.plural}`

const print = (line: string) => Effect.sync(() => console.log(line))
const now = Effect.sync(() => performance.now())
const seconds = (millis: number) => millis / 1000

// ---------------------------------------------------------------- the two operators

interface Operator {
  readonly key: "ours" | "controller-runtime"
  readonly command: string
  readonly args: (ports: { readonly metrics: number; readonly health: number }) => ReadonlyArray<string>
  readonly env: (ports: { readonly metrics: number; readonly health: number }) => Record<string, string>
}

const oursAt = (main: string, nodeOptions: string): Operator => ({
  key: "ours",
  command: process.execPath,
  args: () => [main],
  env: (ports) => ({
    NODE_OPTIONS: nodeOptions,
    BENCH_CONCURRENCY: String(concurrency),
    BENCH_QPS: String(qps),
    BENCH_BURST: String(burst),
    METRICS_PORT: String(ports.metrics),
    HEALTH_PORT: String(ports.health)
  })
})

const controllerRuntime = (binary: string): Operator => ({
  key: "controller-runtime",
  command: binary,
  args: (ports) => [
    `--concurrency=${concurrency}`,
    `--qps=${qps}`,
    `--burst=${burst}`,
    `--metrics-bind-address=127.0.0.1:${ports.metrics}`,
    `--health-probe-bind-address=127.0.0.1:${ports.health}`
  ],
  env: () => ({})
})

// ---------------------------------------------------------------- one run

/** The moment an operator counts as started, the same for both (see the header). */
const readyProbe = (healthUrl: string, metricsUrl: string, ensureRunning: Effect.Effect<void, Error>) =>
  Effect.gen(function* () {
    yield* ensureRunning
    const readyz = yield* statusOf(`${healthUrl}/readyz`)
    if (readyz !== 200) return yield* new NotReady({ reason: readyz === 0 ? "not listening" : `readyz ${readyz}` })
    const samples = (yield* tryScrape(metricsUrl)) ?? []
    const workers = total(samples, "controller_runtime_max_concurrent_reconciles", { controller: "benchitem" })
    if (workers !== concurrency) return yield* new NotReady({ reason: "controller benchitem not started" })
  })

const measure = (operator: Operator, round: number) =>
  Effect.gen(function* () {
    const plane = yield* ControlPlane
    const kube = yield* KubeClient
    const name = `${operator.key} r${round}`

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
          if (written.size >= count) yield* Deferred.succeed(allWritten, yield* now)
        })
      ),
      Effect.forkScoped
    )

    const [metrics, health] = yield* freePorts(2)
    const ports = { metrics: metrics ?? 0, health: health ?? 0 }
    const metricsUrl = `http://127.0.0.1:${ports.metrics}/metrics`
    const spawned = yield* now
    const daemon = yield* startDaemon({
      name: `${operator.key}-r${round}`,
      dir: plane.dir,
      command: operator.command,
      args: operator.args(ports),
      env: { KUBECONFIG: plane.kubeconfigPath, ...operator.env(ports) }
    })
    yield* waitUntilReady(readyProbe(`http://127.0.0.1:${ports.health}`, metricsUrl, daemon.ensureRunning), {
      interval: "20 millis",
      timeout: "120 seconds",
      onTimeout: (reason) => new Error(`${name}: not ready after 120 s: ${reason}`)
    })
    const ready = yield* now
    const atReady = yield* processUsage(daemon.pid)

    const beforeLoad = yield* scrape(metricsUrl)
    const created = yield* Ref.make(0)
    const lastCreated = yield* Ref.make(0)
    const started = yield* now
    const creating = yield* Effect.forEach(
      Array.from({ length: count }, (_, i) => i),
      (i) =>
        kube
          .create(BenchItem, { metadata: { name: `item-${i}`, namespace }, spec: { value: i } })
          .pipe(
            Effect.andThen(Ref.update(created, (n) => n + 1)),
            Effect.andThen(Effect.flatMap(now, (at) => Ref.set(lastCreated, at)))
          ),
      { concurrency: 100, discard: true }
    ).pipe(Effect.forkScoped)
    const progress = yield* Effect.gen(function* () {
      const elapsed = seconds((yield* now) - started).toFixed(0)
      yield* print(
        `    ${elapsed} s: created ${yield* Ref.get(created)}/${count}, status written ${written.size}/${count}`
      )
    }).pipe(Effect.repeat(Schedule.spaced("10 seconds")), Effect.delay("10 seconds"), Effect.forkScoped)
    // A crashed operator or a failed create would otherwise leave us waiting until the timeout.
    const crashed = daemon.ensureRunning.pipe(Effect.repeat(Schedule.spaced("1 second")), Effect.andThen(Effect.never))
    const timeout = Math.max(300, count / 10)
    const createFailed = Fiber.join(creating).pipe(Effect.andThen(Effect.never))
    const finished = yield* Deferred.await(allWritten).pipe(
      Effect.raceFirst(crashed),
      Effect.raceFirst(createFailed),
      Effect.timeoutOrElse({
        duration: `${timeout} seconds`,
        orElse: () =>
          Effect.fail(new Error(`${name}: only ${written.size}/${count} statuses written after ${timeout} s`))
      })
    )
    yield* Fiber.join(creating)
    yield* Fiber.interrupt(progress)
    const reconcilesIn = (samples: ReadonlyArray<Sample>) => total(samples, "controller_runtime_reconcile_total")
    const beforeReconciles = reconcilesIn(beforeLoad)
    // An operator counts a reconcile and its PATCH once the response is back, which can be
    // after our watch has seen the new status: wait (a little) until its counters cover
    // every object, or the last requests would land in the idle numbers.
    const afterLoad = yield* waitUntilReady(
      Effect.flatMap(scrape(metricsUrl), (samples) =>
        reconcilesIn(samples) - beforeReconciles >= count
          ? Effect.succeed(samples)
          : Effect.fail(new NotReady({ reason: "reconciles not all counted" }))
      ),
      { interval: "50 millis", timeout: "5 seconds", onTimeout: (reason) => new Error(reason) }
    ).pipe(Effect.catch(() => scrape(metricsUrl)))
    const atLoad = yield* processUsage(daemon.pid)

    yield* Effect.sleep(`${idleSeconds} seconds`)
    const afterIdle = yield* scrape(metricsUrl)
    const atIdle = yield* processUsage(daemon.pid)
    yield* daemon.ensureRunning

    const requests = (samples: ReadonlyArray<Sample>) => total(samples, "rest_client_requests_total")
    const reconciles = reconcilesIn(afterLoad) - beforeReconciles
    const convergence = seconds(finished - started)
    const run: Run = {
      operator: operator.key,
      round,
      startToReady: seconds(ready - spawned),
      cpuToReady: atReady.cpuSeconds,
      rssAtReady: atReady.rssMib,
      creates: seconds((yield* Ref.get(lastCreated)) - started),
      convergence,
      reconcilesPerSecond: reconciles / convergence,
      reconciles,
      loadRequests: requests(afterLoad) - requests(beforeLoad),
      peakRss: atIdle.peakRssMib,
      cpuLoad: atLoad.cpuSeconds - atReady.cpuSeconds,
      idleRequests: requests(afterIdle) - requests(afterLoad),
      cpuIdle: atIdle.cpuSeconds - atLoad.cpuSeconds,
      rssAfterIdle: atIdle.rssMib
    }
    yield* print(
      `  ${name}: ready ${run.startToReady.toFixed(2)} s, converged ${convergence.toFixed(2)} s ` +
        `(creates done ${run.creates.toFixed(2)} s), ${reconciles} reconciles, peak RSS ${run.peakRss.toFixed(1)} MiB`
    )
    yield* print(`    requests before ready: ${requestDelta([], beforeLoad)}`)
    yield* print(`    requests during load:  ${requestDelta(beforeLoad, afterLoad)}`)
    yield* print(`    requests while idle:   ${requestDelta(afterLoad, afterIdle)} (${idleSeconds} s)`)
    const watches = watchSummary(afterIdle)
    if (watches !== undefined) yield* print(`    its watches:           ${watches}`)
    return run
  }).pipe(Effect.scoped)

/** Deletes every BenchItem and waits until none is left, so the next run starts from nothing. */
const deleteAll = Effect.gen(function* () {
  const kube = yield* KubeClient
  const remaining = kube.request({ method: "GET", path: itemsPath, query: { limit: "1" } }).pipe(
    Effect.map((list) => {
      const items = (list as { readonly items?: ReadonlyArray<unknown> }).items
      return items?.length ?? 0
    })
  )
  // A large collection can outlast the request timeout while the server keeps
  // deleting: ask again until the list is empty.
  yield* waitUntilReady(
    Effect.gen(function* () {
      if ((yield* remaining) === 0) return
      yield* kube.request({ method: "DELETE", path: itemsPath }).pipe(Effect.ignore)
      if ((yield* remaining) > 0) return yield* new NotReady({ reason: "BenchItems left" })
    }),
    { interval: "1 second", timeout: "15 minutes", onTimeout: () => new Error("BenchItems still there after 15 min") }
  )
})

// ---------------------------------------------------------------- the bench

const rows: ReadonlyArray<Measure> = [
  { label: "start to ready, s", pick: (run) => run.startToReady, digits: 2 },
  { label: "CPU to ready, s", pick: (run) => run.cpuToReady, digits: 2 },
  { label: "RSS when ready, MiB", pick: (run) => run.rssAtReady, digits: 1 },
  { label: `convergence of ${count} objects, s`, pick: (run) => run.convergence, digits: 2 },
  { label: "  (our creates done after, s)", pick: (run) => run.creates, digits: 2 },
  { label: "reconciles/s", pick: (run) => run.reconcilesPerSecond, digits: 1 },
  { label: "reconciles", pick: (run) => run.reconciles, digits: 0 },
  { label: "API requests during load", pick: (run) => run.loadRequests, digits: 0 },
  { label: "peak RSS (VmHWM), MiB", pick: (run) => run.peakRss, digits: 1 },
  { label: "CPU during load, s", pick: (run) => run.cpuLoad, digits: 2 },
  { label: `idle API requests (${idleSeconds} s)`, pick: (run) => run.idleRequests, digits: 0 },
  { label: `CPU while idle (${idleSeconds} s), s`, pick: (run) => run.cpuIdle, digits: 2 },
  { label: "RSS after idle, MiB", pick: (run) => run.rssAfterIdle, digits: 1 }
]

const load = () =>
  loadavg()
    .map((value) => value.toFixed(2))
    .join(" ")

const bench = (ours: Operator, reference: Operator, goVersion: string, oursIs: string) =>
  Effect.gen(function* () {
    const plane = yield* ControlPlane
    const kube = yield* KubeClient
    const loadBefore = load()
    yield* print(`control plane up at ${plane.server}; CRD ${crd.metadata.name} installed`)
    yield* kube.create(Namespace, { metadata: { name: namespace } })
    const runs: Array<Run> = []
    for (let round = 1; round <= rounds; round++) {
      const order = round % 2 === 1 ? [ours, reference] : [reference, ours]
      yield* print(`round ${round}/${rounds}: ${order.map((operator) => operator.key).join(", then ")}`)
      for (const operator of order) {
        runs.push(yield* measure(operator, round))
        yield* deleteAll
        // Lets the apiserver and etcd finish with the deletions before the next process starts.
        yield* Effect.sleep("2 seconds")
      }
    }
    yield* print("")
    yield* print(
      `bench:operator: ${count} objects, ${rounds} round(s), ${concurrency} workers, client limit ${qps} req/s ` +
        `burst ${burst}, ${idleSeconds} s idle`
    )
    yield* print(
      `machine: ${availableParallelism()} CPUs (${cpus()[0]?.model.trim() ?? "?"}), load average ${loadBefore} ` +
        `before, ${load()} after`
    )
    yield* print(`ours: ${oursIs}`)
    yield* print(
      `versions: Node ${process.version}; controller-runtime ${controllerRuntimeVersion} built with ${goVersion}; ` +
        `kube-apiserver ${versions.kubernetes}, etcd ${versions.etcd}`
    )
    yield* print("")
    yield* printTable(rows, runs, print)
    yield* print("")
    yield* print(
      "medians over the rounds; ratio = ours / controller-runtime (reconciles/s: higher is better; every other row: lower)"
    )
  })

const KubeLive = Layer.unwrap(
  Effect.map(ControlPlane, (plane) =>
    KubeClient.layer({ _tag: "File", path: plane.kubeconfigPath }, { qps: 1000, burst: 1000 })
  )
)

const program = Effect.gen(function* () {
  yield* print(`bench:operator: building (or finding cached) the controller-runtime reference operator...`)
  const buildStarted = yield* now
  const binary = yield* ensureGoModuleBuilt({
    name: "bench-controller-runtime",
    dir: referenceDir,
    binary: "controller-runtime",
    pinnedBy: "sigs.k8s.io/controller-runtime"
  })
  // The cache entry ends in the Go version that built it.
  const goVersion = /-(go[^-]+)$/u.exec(basename(dirname(binary)))?.[1] ?? "?"
  yield* print(`  ${binary} (${seconds((yield* now) - buildStarted).toFixed(1)} s)`)
  // The operator as it ships: one bundle, built like the images' (scripts/bundle.ts).
  // Both with the image's NODE_OPTIONS; from sources also with ours (the source condition).
  const shipped = imageNodeOptions("operator")
  let oursMain = operatorSource
  let nodeOptions = `${process.env.NODE_OPTIONS ?? ""} ${shipped}`.trim()
  let oursIs = `from sources (${relative(process.cwd(), operatorSource)}, types stripped by Node)`
  if (!values.source) {
    oursMain = join(mkdtempSync(join(tmpdir(), "bench-operator-bundle-")), "operator.mjs")
    const report = yield* Effect.promise(() => bundle(operatorSource, oursMain))
    nodeOptions = shipped
    const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(2)} MiB`
    oursIs = `bundled by scripts/bundle.ts (${mib(report.bytes)} read at start, ${mib(report.lazyBytes)} in lazy chunks)`
  }
  // Extra flags for ours only, e.g. --cpu-prof or --heap-prof to see where its time and memory go.
  nodeOptions = `${nodeOptions} ${values["node-options"]}`.trim()
  oursIs += `, NODE_OPTIONS=${JSON.stringify(nodeOptions)}`
  yield* print(`  ours: ${oursIs}`)
  yield* print(
    `starting a control plane (${count} objects, ${rounds} round(s); ${availableParallelism()} CPUs, load average ${load()})...`
  )
  yield* bench(oursAt(oursMain, nodeOptions), controllerRuntime(binary), goVersion, oursIs).pipe(
    Effect.scoped,
    Effect.provide(
      Layer.mergeAll(KubeLive, NodeServices.layer).pipe(
        Layer.provideMerge(ControlPlane.layer({ controllerManager: false, crds: [crdFile], dir: values.dir }))
      )
    )
  )
}).pipe(Effect.provideService(References.MinimumLogLevel, "Warn"))

NodeRuntime.runMain(program)
