import { Condition, ConfigMap, Event, KubeClient, type KubeError, Namespace, Resource } from "@db-backup-operator/kube"
import { ControlPlane } from "@db-backup-operator/testing"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer, Metric, Random, Schedule, Schema } from "effect"
import * as Action from "../src/Action.ts"
import { Conditions, EventRecorder, Finalizers, Status } from "../src/helpers/index.ts"

// Finalizers, status patches and Events against a real kube-apiserver: the
// concurrency guarantees only mean something where the server enforces them.

const KubeLive = Layer.unwrap(
  Effect.map(ControlPlane, (plane) => KubeClient.layer({ _tag: "File", path: plane.kubeconfigPath }))
)
const Env = KubeLive.pipe(Layer.provideMerge(ControlPlane.layer({ controllerManager: false })))

const Widget = Resource.custom({
  group: "helpers.test.example.com",
  version: "v1",
  kind: "Widget",
  plural: "widgets",
  namespaced: true,
  spec: Schema.Struct({ size: Schema.Int }),
  status: Schema.Struct({
    observedGeneration: Schema.optionalKey(Schema.Int),
    phase: Schema.optionalKey(Schema.String),
    conditions: Schema.optionalKey(Schema.Array(Condition))
  })
})

const widgetCrd = {
  metadata: { name: "widgets.helpers.test.example.com" },
  spec: {
    group: "helpers.test.example.com",
    names: { kind: "Widget", plural: "widgets", singular: "widget", listKind: "WidgetList" },
    scope: "Namespaced",
    versions: [
      {
        name: "v1",
        served: true,
        storage: true,
        subresources: { status: {} },
        schema: {
          openAPIV3Schema: {
            type: "object",
            properties: {
              spec: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
              status: { type: "object", "x-kubernetes-preserve-unknown-fields": true }
            }
          }
        }
      }
    ]
  }
}

/** A fresh namespace per test. */
const freshNamespace = (prefix: string) =>
  Effect.gen(function* () {
    const kube = yield* KubeClient
    const suffix = (yield* Random.nextIntBetween(0, 1_000_000)).toString(36)
    const name = `${prefix}-${suffix}`
    yield* kube.create(Namespace, { metadata: { name } })
    return name
  })

// Raw requests: a just-created CRD reports `status.conditions: null`, which the kube
// package's CustomResourceDefinition schema does not accept (reported to the lead).
const crdPath = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
const installWidgetCrd = Effect.gen(function* () {
  const kube = yield* KubeClient
  yield* kube
    .request({
      method: "POST",
      path: crdPath,
      body: { apiVersion: "apiextensions.k8s.io/v1", kind: "CustomResourceDefinition", ...widgetCrd }
    })
    .pipe(Effect.catchTag("AlreadyExists", () => Effect.void))
  yield* kube.request({ method: "GET", path: `${crdPath}/${widgetCrd.metadata.name}` }).pipe(
    Effect.flatMap((crd) =>
      JSON.stringify(crd).includes('{"type":"Established","status":"True"')
        ? Effect.void
        : Effect.fail("not established")
    ),
    Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo({ times: 300 })))
  )
  // Discovery lags the Established condition a little: wait until the collection answers.
  yield* kube
    .list(Widget, { namespace: "default" })
    .pipe(Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo({ times: 100 }))))
})

/** A "controller" reconciling its finalizer in: read fresh, ensure, retry on Conflict, as the work queue would. */
const reconcileFinalizer = (namespace: string, name: string, finalizer: string, action: "ensure" | "remove") =>
  Effect.gen(function* () {
    const kube = yield* KubeClient
    const current = yield* kube.get(ConfigMap, name, { namespace })
    return action === "ensure"
      ? yield* Finalizers.ensureFinalizer(ConfigMap, current, finalizer)
      : yield* Finalizers.removeFinalizer(ConfigMap, current, finalizer)
  }).pipe(
    Effect.retry({
      while: (error: KubeError) => error._tag === "Conflict",
      schedule: Schedule.exponential("5 millis").pipe(Schedule.jittered, Schedule.upTo({ times: 50 }))
    })
  )

const patchRequests = Effect.gen(function* () {
  const kube = yield* KubeClient
  const host = new URL(kube.server).host
  const state = yield* Metric.value(
    Metric.withAttributes(KubeClient.requestsTotal, { code: "200", method: "PATCH", host })
  )
  return state.count
})

layer(Env, { timeout: "180 seconds", excludeTestServices: true })("helpers against kube-apiserver", (it) => {
  it.effect("concurrent controllers never lose each other's finalizers", () =>
    Effect.gen(function* () {
      const kube = yield* KubeClient
      const namespace = yield* freshNamespace("finalizers")
      const created = yield* kube.create(ConfigMap, { metadata: { name: "shared", namespace }, data: { a: "1" } })
      assert.isUndefined(created.metadata.finalizers)

      // Two controllers computed their patch from the same read: the second must not overwrite the first.
      const first = yield* Finalizers.ensureFinalizer(ConfigMap, created, "one.example.com/cleanup")
      const stale = yield* Effect.flip(Finalizers.ensureFinalizer(ConfigMap, created, "two.example.com/cleanup"))
      assert.strictEqual(stale._tag, "Conflict")
      assert.deepStrictEqual(first.metadata.finalizers, ["one.example.com/cleanup"])
      const staleList = yield* Effect.flip(Finalizers.ensureFinalizer(ConfigMap, created, "two.example.com/cleanup"))
      assert.strictEqual(staleList._tag, "Conflict")

      // Many controllers at once, each retrying on Conflict with fresh reads: all finalizers land.
      const finalizers = Array.from({ length: 6 }, (_, i) => `c${i}.example.com/cleanup`)
      yield* Effect.forEach(finalizers, (f) => reconcileFinalizer(namespace, "shared", f, "ensure"), {
        concurrency: "unbounded"
      })
      const all = yield* kube.get(ConfigMap, "shared", { namespace })
      assert.sameMembers([...(all.metadata.finalizers ?? [])], ["one.example.com/cleanup", ...finalizers])

      // Ensuring again is a no-op without a request.
      assert.strictEqual(yield* Finalizers.ensureFinalizer(ConfigMap, all, "c0.example.com/cleanup"), all)

      // A removal computed from a stale list must not remove someone else's entry.
      yield* reconcileFinalizer(namespace, "shared", "one.example.com/cleanup", "remove")
      const shifted = yield* Effect.flip(Finalizers.removeFinalizer(ConfigMap, all, "c0.example.com/cleanup"))
      assert.strictEqual(shifted._tag, "Conflict")
      const afterConflict = yield* kube.get(ConfigMap, "shared", { namespace })
      assert.sameMembers([...(afterConflict.metadata.finalizers ?? [])], finalizers)

      // Delete: the object waits for its finalizers; concurrent removals all land and it disappears.
      yield* kube.delete(ConfigMap, "shared", { namespace })
      const deleting = yield* kube.get(ConfigMap, "shared", { namespace })
      assert.isDefined(deleting.metadata.deletionTimestamp)
      yield* Effect.forEach(finalizers.slice(1), (f) => reconcileFinalizer(namespace, "shared", f, "remove"), {
        concurrency: "unbounded"
      })
      const last = yield* kube.get(ConfigMap, "shared", { namespace })
      assert.deepStrictEqual(last.metadata.finalizers, ["c0.example.com/cleanup"])
      yield* Finalizers.removeFinalizer(ConfigMap, last, "c0.example.com/cleanup")
      const gone = yield* Effect.flip(kube.get(ConfigMap, "shared", { namespace }))
      assert.strictEqual(gone._tag, "NotFound")
    })
  )

  it.effect("withFinalizer: the finalizer lands before apply; on deletion it goes only once cleanup is done", () =>
    Effect.gen(function* () {
      const kube = yield* KubeClient
      const namespace = yield* freshNamespace("with-finalizer")
      const finalizer = "with.example.com/cleanup"
      const calls: Array<string> = []
      let cleanup: Effect.Effect<Action.Action, string> = Effect.succeed(Action.done)
      const reconcile = Effect.gen(function* () {
        const current = yield* kube.get(ConfigMap, "guarded", { namespace })
        return yield* Finalizers.withFinalizer(ConfigMap, current, finalizer, {
          apply: (live) =>
            Effect.sync(() => calls.push(`apply ${live.metadata.finalizers?.join(",")}`)).pipe(Effect.as(Action.done)),
          cleanup: () =>
            Effect.andThen(
              Effect.sync(() => calls.push("cleanup")),
              cleanup
            )
        })
      })
      yield* kube.create(ConfigMap, {
        metadata: { name: "guarded", namespace, finalizers: ["other.example.com/keep"] }
      })
      yield* reconcile
      // apply saw the object as stored, with our finalizer beside the other one.
      assert.deepStrictEqual(calls, [`apply other.example.com/keep,${finalizer}`])

      yield* kube.delete(ConfigMap, "guarded", { namespace })
      const finalizersNow = Effect.map(kube.get(ConfigMap, "guarded", { namespace }), (cm) => cm.metadata.finalizers)
      // Cleanup not finished (children still going): asks to look again, finalizer kept.
      cleanup = Effect.succeed(Action.requeueAfter("5 seconds"))
      assert.isTrue(Action.isRequeueAfter(yield* reconcile))
      assert.deepStrictEqual(yield* finalizersNow, ["other.example.com/keep", finalizer])
      // Cleanup failed: the error reaches the queue, finalizer kept.
      cleanup = Effect.fail("storage unreachable")
      assert.strictEqual(yield* Effect.flip(reconcile), "storage unreachable")
      assert.deepStrictEqual(yield* finalizersNow, ["other.example.com/keep", finalizer])
      // Cleanup done: only our finalizer goes.
      cleanup = Effect.succeed(Action.done)
      assert.deepStrictEqual(yield* reconcile, Action.done)
      assert.deepStrictEqual(yield* finalizersNow, ["other.example.com/keep"])
      // Without our finalizer, a deleted object is left alone: no cleanup again.
      yield* reconcile
      assert.deepStrictEqual(calls.slice(1), ["cleanup", "cleanup", "cleanup"])
      yield* Finalizers.removeFinalizer(
        ConfigMap,
        yield* kube.get(ConfigMap, "guarded", { namespace }),
        "other.example.com/keep"
      )
    })
  )

  it.effect("a hand-built object without resourceVersion is read before the finalizer is added", () =>
    Effect.gen(function* () {
      const kube = yield* KubeClient
      const namespace = yield* freshNamespace("finalizers-rv")
      yield* kube.create(ConfigMap, { metadata: { name: "cm", namespace } })
      const stored = yield* Finalizers.ensureFinalizer(
        ConfigMap,
        { metadata: { name: "cm", namespace } },
        "x.example.com/f"
      )
      assert.deepStrictEqual(stored.metadata.finalizers, ["x.example.com/f"])
      yield* Finalizers.removeFinalizer(ConfigMap, stored, "x.example.com/f")
    })
  )

  it.effect("patchStatus writes observedGeneration and only what changed, and nothing when nothing did", () =>
    Effect.gen(function* () {
      const kube = yield* KubeClient
      yield* installWidgetCrd
      const namespace = yield* freshNamespace("status")
      const widget = yield* kube.create(Widget, { metadata: { name: "w", namespace }, spec: { size: 1 } })
      assert.strictEqual(widget.metadata.generation, 1)

      const conditions = Conditions.setCondition(
        undefined,
        { type: "Ready", status: "False", reason: "Provisioning", message: "starting" },
        Date.now()
      )
      const before = yield* patchRequests
      const written = yield* Status.patchStatus(Widget, widget, { phase: "Pending", conditions })
      assert.strictEqual((yield* patchRequests) - before, 1)
      assert.strictEqual(written.status?.observedGeneration, 1)
      assert.strictEqual(written.status?.phase, "Pending")
      assert.strictEqual(written.status?.conditions?.[0]?.reason, "Provisioning")

      // Same status again (a reconcile finding everything in place): no request at all.
      const same = yield* Status.patchStatus(Widget, written, {
        phase: "Pending",
        conditions: Conditions.setCondition(
          written.status?.conditions,
          { type: "Ready", status: "False", reason: "Provisioning", message: "starting" },
          Date.now()
        )
      })
      assert.strictEqual(same, written)
      assert.strictEqual((yield* patchRequests) - before, 1)

      // A new generation must be acknowledged even if the rest is unchanged.
      const resized = yield* kube.mergePatch(Widget, "w", { spec: { size: 2 } }, { namespace })
      assert.strictEqual(resized.metadata.generation, 2)
      const beforeAcknowledge = yield* patchRequests
      const acknowledged = yield* Status.patchStatus(Widget, resized, { phase: "Pending", conditions })
      assert.strictEqual(acknowledged.status?.observedGeneration, 2)
      assert.strictEqual((yield* patchRequests) - beforeAcknowledge, 1)

      // Fields left out are removed; the spec is untouched by a status write.
      const cleared = yield* Status.patchStatus(Widget, acknowledged, { conditions })
      assert.isUndefined(cleared.status?.phase)
      assert.strictEqual(cleared.spec.size, 2)
      const live = yield* kube.get(Widget, "w", { namespace })
      assert.isUndefined(live.status?.phase)
      assert.strictEqual(live.status?.observedGeneration, 2)

      // With optimisticLock, a write computed from a stale object is refused.
      const stale = yield* Effect.flip(Status.patchStatus(Widget, widget, { phase: "Stale" }, { optimisticLock: true }))
      assert.strictEqual(stale._tag, "Conflict")
    })
  )

  it.effect("repeated Events become one Event with a series", () =>
    Effect.gen(function* () {
      const kube = yield* KubeClient
      const namespace = yield* freshNamespace("events")
      const regarding = yield* kube.create(ConfigMap, { metadata: { name: "target", namespace } })
      const note = "pg_dump exited with status 1"
      yield* Effect.gen(function* () {
        const recorder = yield* EventRecorder
        for (let i = 0; i < 3; i++) {
          yield* recorder.warning(regarding, {
            reason: "BackupFailed",
            action: "RunJob",
            note,
            regardingKind: ConfigMap
          })
          yield* recorder.flush
        }
        yield* recorder.normal(regarding, { reason: "BackupSucceeded", action: "RunJob", regardingKind: ConfigMap })
        yield* recorder.flush
      }).pipe(
        Effect.provide(
          EventRecorder.layer({ reportingController: "helpers.test.example.com/widget", reportingInstance: "test-0" })
        )
      )
      const events = (yield* kube.list(Event, { namespace })).items
      assert.strictEqual(events.length, 2)
      const failed = events.find((e) => e.reason === "BackupFailed")
      assert.strictEqual(failed?.series?.count, 3)
      assert.strictEqual(failed?.type, "Warning")
      assert.strictEqual(failed?.note, note)
      assert.strictEqual(failed?.regarding?.uid, regarding.metadata.uid)
      assert.strictEqual(failed?.regarding?.kind, "ConfigMap")
      assert.strictEqual(failed?.reportingController, "helpers.test.example.com/widget")
      assert.match(failed?.eventTime ?? "", /\.\d{6}Z$/u)
      const succeeded = events.find((e) => e.reason === "BackupSucceeded")
      assert.isDefined(succeeded)
      assert.isUndefined(succeeded?.series)
    })
  )
})
