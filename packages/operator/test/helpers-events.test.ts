import {
  KubeClient,
  type KubeClientShape,
  type KubeError,
  KubeErrors,
  type KubeObject,
  type Resource
} from "@db-backup-operator/kube"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { TestClock } from "effect/testing"
import { EventRecorder, Events } from "../src/helpers/index.ts"

// A KubeClient that keeps Events in memory and records every call the recorder
// makes (`attempts`, whatever the outcome) besides the writes that landed
// (`writes`), so the recorder's aggregation, rate limiting and handling of
// rejected writes can be checked on the TestClock: counting only what landed
// would not see a recorder that retries a rejected Event in a loop, or one that
// never calls the API at all. The real API server path is in
// helpers.integration.test.ts.
interface Write {
  readonly verb: "create" | "patch"
  readonly name: string
  readonly body: unknown
}

const fakeKube = (options: { readonly failCreates?: boolean } = {}) => {
  const events = new Map<string, Record<string, unknown>>()
  const writes: Array<Write> = []
  const attempts: Array<Write["verb"]> = []
  const die = () => Effect.die("not used by the recorder")
  const decode = <A extends KubeObject, I>(resource: Resource.Resource<A, I>, raw: unknown) =>
    Schema.decodeUnknownEffect(resource.schema)(raw).pipe(
      Effect.mapError((error) => new KubeErrors.DecodeError({ kind: "Event", object: "", message: error.message }))
    )
  const client: KubeClientShape = {
    server: "memory",
    get: die,
    getMetadata: die,
    list: die,
    watch: () => die() as never,
    apply: die,
    delete: die,
    request: die,
    jsonPatch: die,
    create: (resource, object) =>
      Effect.gen(function* () {
        attempts.push("create")
        if (options.failCreates === true) {
          return yield* Effect.fail<KubeError>(new KubeErrors.Forbidden({ message: "denied", request: "POST events" }))
        }
        const encoded = (yield* Schema.encodeUnknownEffect(resource.schema)(object).pipe(Effect.orDie)) as Record<
          string,
          unknown
        >
        const name = object.metadata.name ?? ""
        events.set(name, encoded)
        writes.push({ verb: "create", name, body: encoded })
        return yield* decode(resource, encoded)
      }),
    mergePatch: (resource, name, patch) =>
      Effect.gen(function* () {
        attempts.push("patch")
        const existing = events.get(name)
        if (existing === undefined) {
          return yield* Effect.fail<KubeError>(new KubeErrors.NotFound({ message: "gone", request: "PATCH events" }))
        }
        const merged = { ...existing, ...(patch as Record<string, unknown>) }
        events.set(name, merged)
        writes.push({ verb: "patch", name, body: patch })
        return yield* decode(resource, merged)
      })
  }
  return { layer: Layer.succeed(KubeClient, client), events, writes, attempts }
}

const regarding: KubeObject = {
  apiVersion: "example.com/v1",
  kind: "Widget",
  metadata: { name: "w", namespace: "ns", uid: "uid-1" }
}
const failed = { reason: "BackupFailed", action: "RunJob", note: "pg_dump exited with 1" }
const options = { reportingController: "example.com/widget-controller", reportingInstance: "pod-0" }

const withRecorder = <A, E>(
  fake: ReturnType<typeof fakeKube>,
  body: (recorder: Events.EventRecorderShape) => Effect.Effect<A, E>,
  extra: Partial<Events.EventRecorderOptions> = {}
) =>
  Effect.scoped(
    Effect.gen(function* () {
      const recorder = yield* Events.make({ ...options, ...extra })
      return yield* body(recorder)
    })
  ).pipe(Effect.provide(fake.layer))

describe("EventRecorder", () => {
  it("keys series by regarding uid, type, reason, action and note", () => {
    const ref = Events.referenceOf(regarding)
    const key = Events.aggregationKey(ref, { type: "Warning", ...failed })
    assert.strictEqual(key, Events.aggregationKey({ ...ref, name: "renamed" }, { type: "Warning", ...failed }))
    for (const other of [
      Events.aggregationKey({ ...ref, uid: "uid-2" }, { type: "Warning", ...failed }),
      Events.aggregationKey(ref, { type: "Normal", ...failed }),
      Events.aggregationKey(ref, { type: "Warning", ...failed, reason: "Other" }),
      Events.aggregationKey(ref, { type: "Warning", ...failed, action: "Other" }),
      Events.aggregationKey(ref, { type: "Warning", ...failed, note: "different" })
    ]) {
      assert.notStrictEqual(other, key)
    }
    // Without a uid, the object's kind, namespace and name identify it.
    const unsaved = Events.referenceOf({ metadata: { name: "w", namespace: "ns" } }, { apiVersion: "v1", kind: "Pod" })
    assert.include(Events.aggregationKey(unsaved, { type: "Normal", ...failed }), "v1/Pod/ns/w")
  })

  it.effect("writes a complete events.k8s.io/v1 Event", () =>
    Effect.gen(function* () {
      const fake = fakeKube()
      yield* TestClock.setTime(Date.parse("2025-01-01T00:00:00.250Z"))
      yield* withRecorder(fake, (recorder) =>
        Effect.andThen(recorder.warning(regarding, { ...failed, note: "x".repeat(3000) }), recorder.flush)
      )
      assert.strictEqual(fake.writes.length, 1)
      const body = fake.writes[0]?.body as Record<string, unknown>
      assert.strictEqual(body.eventTime, "2025-01-01T00:00:00.250000Z")
      assert.strictEqual(body.reportingController, options.reportingController)
      assert.strictEqual(body.reportingInstance, "pod-0")
      assert.strictEqual(body.type, "Warning")
      assert.strictEqual(body.reason, "BackupFailed")
      assert.strictEqual(body.action, "RunJob")
      assert.strictEqual(new TextEncoder().encode(String(body.note)).length, 1024)
      assert.deepStrictEqual(body.regarding, {
        apiVersion: "example.com/v1",
        kind: "Widget",
        name: "w",
        namespace: "ns",
        uid: "uid-1"
      })
      assert.deepStrictEqual(body.metadata, { name: fake.writes[0]?.name, namespace: "ns" })
      assert.match(fake.writes[0]?.name ?? "", /^w\.[0-9a-f]+$/u)
    })
  )

  it.effect("aggregates repeats into one Event's series and starts over after the window", () =>
    Effect.gen(function* () {
      const fake = fakeKube()
      yield* withRecorder(fake, (recorder) =>
        Effect.gen(function* () {
          yield* recorder.warning(regarding, failed)
          yield* recorder.flush
          yield* TestClock.adjust("1 minute")
          yield* recorder.warning(regarding, failed)
          yield* recorder.flush
          yield* TestClock.adjust("1 minute")
          yield* recorder.warning(regarding, failed)
          yield* recorder.warning(regarding, { ...failed, note: "another failure" })
          yield* recorder.flush
          // More than 10 minutes after the last occurrence: a new Event.
          yield* TestClock.adjust("11 minutes")
          yield* recorder.warning(regarding, failed)
          yield* recorder.flush
        })
      )
      // One call per occurrence: a repeat within the window patches the series, never creates a new Event.
      assert.deepStrictEqual(fake.attempts, ["create", "patch", "patch", "create", "create"])
      assert.deepStrictEqual(
        fake.writes.map((w) => w.verb),
        ["create", "patch", "patch", "create", "create"]
      )
      const first = fake.writes[0]?.name
      assert.strictEqual(fake.writes[1]?.name, first)
      assert.strictEqual(fake.writes[2]?.name, first)
      assert.deepStrictEqual(fake.writes[2]?.body, {
        series: { count: 3, lastObservedTime: "1970-01-01T00:02:00.000000Z" }
      })
      assert.notStrictEqual(fake.writes[4]?.name, first)
      assert.deepStrictEqual((fake.events.get(first ?? "") as { series?: unknown }).series, {
        count: 3,
        lastObservedTime: "1970-01-01T00:02:00.000000Z"
      })
    })
  )

  it.effect("starts a new Event when the one being extended is gone", () =>
    Effect.gen(function* () {
      const fake = fakeKube()
      yield* withRecorder(fake, (recorder) =>
        Effect.gen(function* () {
          yield* recorder.normal(regarding, failed)
          yield* recorder.flush
          fake.events.clear()
          yield* recorder.normal(regarding, failed)
          yield* recorder.normal(regarding, failed)
          yield* recorder.flush
        })
      )
      assert.deepStrictEqual(
        fake.writes.map((w) => w.verb),
        ["create", "create", "patch"]
      )
      // The patch of the vanished Event was tried once, then a new Event was created in its place.
      assert.deepStrictEqual(fake.attempts, ["create", "patch", "create", "patch"])
      assert.deepStrictEqual(fake.writes[2]?.body, {
        series: { count: 2, lastObservedTime: "1970-01-01T00:00:00.000000Z" }
      })
    })
  )

  it.effect("rate-limits each object: a burst, then one per refill interval", () =>
    Effect.gen(function* () {
      const fake = fakeKube()
      const other: KubeObject = { ...regarding, metadata: { ...regarding.metadata, name: "v", uid: "uid-2" } }
      yield* withRecorder(
        fake,
        (recorder) =>
          Effect.gen(function* () {
            for (let i = 0; i < 8; i++) yield* recorder.normal(regarding, { ...failed, note: `n${i}` })
            yield* recorder.normal(other, failed)
            yield* recorder.flush
            // Dropped events never reach the API: 5 for `regarding` (its burst), 1 for `other`.
            assert.deepStrictEqual(fake.attempts, ["create", "create", "create", "create", "create", "create"])
            yield* TestClock.adjust("1 minute")
            yield* recorder.normal(regarding, { ...failed, note: "after refill" })
            yield* recorder.normal(regarding, { ...failed, note: "too soon" })
            yield* recorder.flush
          }),
        { burst: 5, refillInterval: "1 minute" }
      )
      const notes = fake.writes.map((w) => (w.body as { note: string }).note)
      assert.deepStrictEqual(notes, ["n0", "n1", "n2", "n3", "n4", failed.note, "after refill"])
      // One token came back after a minute: one more call, and "too soon" never left the process.
      assert.strictEqual(fake.attempts.length, 7)
    })
  )

  it.effect("never fails the caller when the API rejects the Event", () =>
    Effect.gen(function* () {
      const fake = fakeKube({ failCreates: true })
      yield* withRecorder(fake, (recorder) =>
        Effect.gen(function* () {
          yield* recorder.warning(regarding, failed)
          yield* recorder.flush
          yield* recorder.warning(regarding, failed)
          yield* recorder.flush
        })
      )
      assert.strictEqual(fake.writes.length, 0)
      // Each Event was tried exactly once: a rejected Event is logged and given up on, not retried
      // (a reconcile loop would otherwise multiply its own API traffic), and it leaves no series
      // behind, so the second occurrence is a create, not a patch of an Event that does not exist.
      assert.deepStrictEqual(fake.attempts, ["create", "create"])
    })
  )

  it.effect("the layer provides the service and flushes on close", () =>
    Effect.gen(function* () {
      const fake = fakeKube()
      yield* EventRecorder.use((recorder) => recorder.normal(regarding, failed)).pipe(
        Effect.provide(EventRecorder.layer(options).pipe(Layer.provide(fake.layer)))
      )
      assert.strictEqual(fake.writes.length, 1)
      assert.strictEqual(fake.attempts.length, 1)
      yield* EventRecorder.use((recorder) => recorder.normal(regarding, failed)).pipe(
        Effect.provide(EventRecorder.noop)
      )
    })
  )
})
