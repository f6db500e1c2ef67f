import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ConfigMap, KubeClient, Lease, Resource } from "@db-backup-operator/kube"
import { Action, Controller, Crd, LeaderElection, Manager } from "@db-backup-operator/operator"
import {
  adminKube,
  ControlPlane,
  eventually as eventuallyWith,
  freePorts,
  freshNamespace as freshNamespaceWith
} from "@db-backup-operator/testing"
import { assert, layer } from "@effect/vitest"
import { Clock, Deferred, type Duration, Effect, Exit, Fiber, Layer, Schema, Scope } from "effect"
import { holdsFor } from "./fixtures/holds.ts"

// The Manager in this process against a real kube-apiserver: graceful shutdown
// drains in-flight reconciles (and only for as long as allowed), /metrics carries
// controller-runtime's metric names, /readyz follows cache sync.

const KubeLive = adminKube
const Env = KubeLive.pipe(Layer.provideMerge(ControlPlane.layer({ controllerManager: false })))

const freshNamespace = freshNamespaceWith("mgr")

const eventually = <A, E, R>(what: string, probe: Effect.Effect<A | undefined, E, R>, timeout?: Duration.Input) =>
  eventuallyWith(what, probe, timeout === undefined ? {} : { timeout })

const httpGet = (url: string) =>
  Effect.tryPromise(async () => {
    const response = await fetch(url)
    return { status: response.status, body: await response.text() }
  })

const elapsedSince = (start: number) => Effect.map(Clock.currentTimeMillis, (now) => (now - start) / 1000)

/** What the slow reconcile reports: it started, it ran to its end, or it was interrupted. */
interface Reconcile {
  readonly started: Deferred.Deferred<void>
  readonly finished: Deferred.Deferred<void>
  readonly interrupted: Deferred.Deferred<void>
}

const makeReconcile = Effect.all({
  started: Deferred.make<void>(),
  finished: Deferred.make<void>(),
  interrupted: Deferred.make<void>()
})

/** A ConfigMap controller whose reconcile announces itself, sleeps, then marks the ConfigMap. */
const slowController = (namespace: string, sleep: Duration.Input, drainTimeout: Duration.Input, report: Reconcile) =>
  Controller.make({
    name: `slow-${namespace}`,
    for: ConfigMap,
    labelSelector: "test=slow",
    queue: { drainTimeout },
    reconcile: ({ object }) =>
      Effect.gen(function* () {
        if (object === undefined) return Action.done
        yield* Deferred.succeed(report.started, undefined)
        yield* Effect.sleep(sleep)
        const kube = yield* KubeClient
        yield* kube.mergePatch(
          ConfigMap,
          object.metadata.name ?? "",
          { metadata: { annotations: { reconciled: "yes" } } },
          {
            namespace
          }
        )
        yield* Deferred.succeed(report.finished, undefined)
        return Action.done
      }).pipe(Effect.onInterrupt(() => Deferred.succeed(report.interrupted, undefined)))
  })

const annotation = (namespace: string) =>
  Effect.map(
    KubeClient.use((kube) => kube.get(ConfigMap, "slow", { namespace })),
    (cm) => cm.metadata.annotations?.reconciled
  )

const createSlow = (namespace: string) =>
  KubeClient.use((kube) =>
    kube.create(ConfigMap, { metadata: { name: "slow", namespace, labels: { test: "slow" } }, data: {} })
  )

// A kind whose CRD the test installs only later, to watch /readyz follow the cache sync.
const Gizmo = Resource.custom({
  group: "manager.test.example.com",
  version: "v1",
  kind: "Gizmo",
  plural: "gizmos",
  namespaced: true,
  spec: Schema.Struct({ size: Schema.Int }),
  status: Schema.Struct({ observedGeneration: Schema.optionalKey(Schema.Int) })
})
const gizmoCrd = Crd.make(Gizmo)
const gizmoCrdFile = join(mkdtempSync(join(tmpdir(), "gizmo-crd-")), Crd.fileName(gizmoCrd))
writeFileSync(gizmoCrdFile, Crd.toYaml(gizmoCrd))

layer(Env, { timeout: "180 seconds", excludeTestServices: true })("Manager on a real API server", (it) => {
  it.effect("SIGTERM-style interruption lets the in-flight reconcile finish, then releases the Lease", () =>
    Effect.gen(function* () {
      const kube = yield* KubeClient
      const namespace = yield* freshNamespace
      const reconcile = yield* makeReconcile
      // The drain timeout is far beyond the test's own: shutdown ends because the reconcile did,
      // not because the timeout ran out (that would fail the test by timing out).
      const manager = yield* Manager.run({
        controllers: [slowController(namespace, "3 seconds", "10 minutes", reconcile)],
        namespaces: [namespace],
        leaderElection: { namespace, name: "drain-test", identity: "drainer" },
        metrics: false,
        health: false
      }).pipe(Effect.forkChild)
      yield* createSlow(namespace)
      yield* Deferred.await(reconcile.started)
      // The reconcile has 3 s of work left: the interruption reaches the Manager while it runs.
      assert.isFalse(yield* Deferred.isDone(reconcile.finished))
      // Bounded well below the 10-minute drain timeout: a Manager that sat out the timeout fails here.
      yield* Fiber.interrupt(manager).pipe(Effect.timeout("60 seconds"))
      // Read the moment the Manager has exited: the reconcile ran to its end before that, untouched.
      assert.isTrue(yield* Deferred.isDone(reconcile.finished), "the reconcile finished before the Manager exited")
      assert.isFalse(yield* Deferred.isDone(reconcile.interrupted), "the in-flight reconcile was not interrupted")
      assert.strictEqual(yield* annotation(namespace), "yes", "the reconcile's write landed")
      const lease = yield* kube.get(Lease, "drain-test", { namespace })
      assert.strictEqual(lease.spec?.holderIdentity ?? "", "", "the Lease is released after the drain")
    })
  )

  it.effect("a reconcile that outlasts the drain timeout is interrupted", () =>
    Effect.gen(function* () {
      const namespace = yield* freshNamespace
      const reconcile = yield* makeReconcile
      // The reconcile would outlive the test (10 minutes): only the drain timeout ends it.
      const manager = yield* Manager.run({
        controllers: [slowController(namespace, "10 minutes", "1 second", reconcile)],
        namespaces: [namespace],
        metrics: false,
        health: false
      }).pipe(Effect.forkChild)
      yield* createSlow(namespace)
      yield* Deferred.await(reconcile.started)
      const shutdownAt = yield* Clock.currentTimeMillis
      // When the reconcile sees its interruption: a lower bound only, which scheduling delays can
      // only lengthen, so it cannot fail on a loaded machine.
      const interruptedAfter = yield* Effect.forkChild(
        Effect.andThen(Deferred.await(reconcile.interrupted), elapsedSince(shutdownAt)),
        { startImmediately: true }
      )
      // Bounded well below the reconcile's 10 minutes: a Manager that waited for it fails here.
      yield* Fiber.interrupt(manager).pipe(Effect.timeout("60 seconds"))
      // Interrupted, not abandoned: by the time the Manager has exited, the reconcile has stopped.
      assert.isTrue(
        yield* Deferred.isDone(reconcile.interrupted),
        "the reconcile was interrupted before the Manager exited"
      )
      assert.isFalse(yield* Deferred.isDone(reconcile.finished))
      const waited = yield* Fiber.join(interruptedAfter)
      // 0.99: node's timers may fire a millisecond early as Date.now() sees it.
      assert.isAtLeast(waited, 0.99, `interrupted after ${waited} s, before the 1 s drain timeout`)
      assert.isUndefined(yield* annotation(namespace))
    })
  )

  it.effect("/metrics carries controller-runtime's metrics; /readyz waits for the caches", () =>
    Effect.gen(function* () {
      const kube = yield* KubeClient
      const { kubectl } = yield* ControlPlane
      const namespace = yield* freshNamespace
      const [metricsPort, healthPort] = yield* freePorts(2)
      const reconciled = yield* Deferred.make<void>()
      const gizmos = Controller.make({
        name: "gizmos",
        for: Gizmo,
        reconcile: ({ object }) =>
          object === undefined
            ? Effect.succeed(Action.done)
            : Effect.as(Deferred.succeed(reconciled, undefined), Action.done)
      })
      const scope = yield* Scope.make()
      yield* Manager.run({
        controllers: [gizmos],
        metrics: { host: "127.0.0.1", port: metricsPort ?? 0 },
        health: { host: "127.0.0.1", port: healthPort ?? 0 },
        // Retry the failing list (no CRD yet) often, so the test need not wait long.
        cacheTiming: { backoff: { initial: "100 millis", max: "500 millis" } }
      }).pipe(Effect.forkIn(scope))
      const health = `http://127.0.0.1:${healthPort}`
      const metrics = `http://127.0.0.1:${metricsPort}/metrics`

      // The kind does not exist yet: the cache cannot sync, so not ready (but alive).
      const unready = yield* eventually(
        "/readyz answering",
        Effect.map(httpGet(`${health}/readyz`), (r) => (r.status === 503 ? r : undefined)).pipe(
          Effect.catch(() => Effect.succeed(undefined))
        )
      )
      assert.include(unready.body, "[-]caches failed")
      assert.strictEqual((yield* httpGet(`${health}/healthz`)).status, 200)
      // And it stays so while the list keeps failing. The bound: with retries backing off to at
      // most 500 ms (cacheTiming), 2 s span several failed relists, any of which a readiness that
      // ignored the failure would turn into a 200.
      yield* holdsFor(
        "/readyz stays 503 while the kind is missing",
        Effect.map(httpGet(`${health}/readyz`), (r) => r.status === 503),
        "2 seconds"
      )

      const applied = yield* kubectl(["apply", "--server-side", "-f", gizmoCrdFile])
      assert.strictEqual(applied.exitCode, 0, applied.stderr)
      const ready = yield* eventually(
        "/readyz 200",
        Effect.map(httpGet(`${health}/readyz`), (r) => (r.status === 200 ? r : undefined))
      )
      assert.include(ready.body, "[+]caches ok")

      yield* eventually(
        "the Gizmo kind served",
        kube.create(Gizmo, { metadata: { name: "g", namespace }, spec: { size: 1 } }).pipe(
          Effect.as(true),
          Effect.catch(() => Effect.succeed(undefined))
        )
      )
      yield* Deferred.await(reconciled)
      const text = yield* eventually(
        "metrics",
        Effect.map(httpGet(metrics), (r) =>
          r.body.includes("controller_runtime_reconcile_total") ? r.body : undefined
        )
      )
      for (const expected of [
        /controller_runtime_reconcile_total\{[^}]*controller="gizmos"[^}]*result="success"[^}]*\} [1-9]/u,
        /controller_runtime_reconcile_time_seconds_bucket\{[^}]*controller="gizmos"/u,
        /controller_runtime_reconcile_time_seconds_count\{[^}]*controller="gizmos"[^}]*\} [1-9]/u,
        /controller_runtime_max_concurrent_reconciles\{[^}]*controller="gizmos"[^}]*\} 1/u,
        /controller_runtime_active_workers\{[^}]*controller="gizmos"/u,
        /workqueue_adds_total\{[^}]*name="gizmos"[^}]*\} [1-9]/u,
        /workqueue_depth\{[^}]*name="gizmos"[^}]*\} 0/u,
        /workqueue_queue_duration_seconds_bucket\{[^}]*name="gizmos"/u,
        /workqueue_work_duration_seconds_bucket\{[^}]*name="gizmos"/u,
        /rest_client_requests_total\{[^}]*code="200"[^}]*method="GET"[^}]*\} [1-9]/u,
        /# TYPE controller_runtime_reconcile_total counter/u,
        /# TYPE workqueue_depth gauge/u,
        /# TYPE controller_runtime_reconcile_time_seconds histogram/u
      ]) {
        assert.match(text, expected)
      }
      yield* Scope.close(scope, Exit.void)
    })
  )

  it.effect("with leader election, a standby is ready but idle; once leading it reconciles", () =>
    Effect.gen(function* () {
      const namespace = yield* freshNamespace
      const [metricsPort, healthPort] = yield* freePorts(2)
      // Someone else holds the Lease first.
      const otherScope = yield* Scope.make()
      const other = yield* LeaderElection.make({ namespace, name: "ready-test", identity: "other" }).pipe(
        Scope.provide(otherScope)
      )
      yield* other.awaitLeadership
      // Something to reconcile, so "a standby does not reconcile" means something.
      yield* KubeClient.use((kube) => kube.create(ConfigMap, { metadata: { name: "work", namespace }, data: {} }))
      const reconciled = yield* Deferred.make<void>()
      const controller = Controller.make({
        name: `leader-ready-${namespace}`,
        for: ConfigMap,
        reconcile: () => Effect.as(Deferred.succeed(reconciled, undefined), Action.done)
      })
      const scope = yield* Scope.make()
      yield* Manager.run({
        controllers: [controller],
        namespaces: [namespace],
        leaderElection: { namespace, name: "ready-test", identity: "manager" },
        metrics: { host: "127.0.0.1", port: metricsPort ?? 0 },
        health: { host: "127.0.0.1", port: healthPort ?? 0 }
      }).pipe(Effect.forkIn(scope))
      const health = `http://127.0.0.1:${healthPort}`
      // Ready as a standby (as controller-runtime): a rolling update's new Pod starts as one.
      const standby = yield* eventually(
        "/readyz answering",
        Effect.map(httpGet(`${health}/readyz`), (r) => (r.status === 200 ? r : undefined)).pipe(
          Effect.catch(() => Effect.succeed(undefined))
        )
      )
      assert.include(standby.body, "[+]caches ok")
      // A standby that ran its controllers anyway would reconcile as soon as its cache synced
      // (the ConfigMap is waiting), one that wrongly took the Lease would do so at its first
      // acquire attempt, which comes within one retry period (2 s, plus 20% jitter): 3 s cover both.
      yield* holdsFor(
        "a standby does not reconcile",
        Effect.map(Deferred.isDone(reconciled), (done) => !done),
        "3 seconds"
      )
      const metricsBefore = yield* httpGet(`http://127.0.0.1:${metricsPort}/metrics`)
      assert.match(metricsBefore.body, /leader_election_master_status\{[^}]*name="ready-test"[^}]*\} 0/u)

      // The holder steps down (releases the Lease): this Manager takes over and becomes ready.
      yield* Scope.close(otherScope, Exit.void)
      yield* Deferred.await(reconciled).pipe(Effect.timeout("10 seconds"))
      const ready = yield* httpGet(`${health}/readyz`)
      assert.strictEqual(ready.status, 200)
      assert.include(ready.body, "[+]caches ok")
      const status = yield* httpGet(`http://127.0.0.1:${metricsPort}/metrics`)
      assert.match(status.body, /leader_election_master_status\{[^}]*name="ready-test"[^}]*\} 1/u)
      yield* Scope.close(scope, Exit.void)
    })
  )
})
