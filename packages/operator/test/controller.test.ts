import { ConfigMap, type KubeObject, Resource, Secret } from "@db-backup-operator/kube"
import {
  Action,
  Caches,
  type CachesShape,
  type Change,
  Controller,
  type ObjectEvent,
  Predicates,
  type Reflector,
  Source,
  Store,
  TerminalError
} from "@db-backup-operator/operator"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Metric, Option, PubSub, Queue, Schema, Scope, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as Cache from "../src/cache/Cache.ts"
import * as ControllerMetrics from "../src/controller/ControllerMetrics.ts"

// Controller behaviour without a cluster: the shared caches are replaced by
// in-memory reflectors the test feeds with watch events, and time is the TestClock.

const Gadget = Resource.custom({
  group: "controller.test.example.com",
  version: "v1",
  kind: "Gadget",
  plural: "gadgets",
  namespaced: true,
  spec: Schema.Struct({ size: Schema.Int }),
  status: Schema.Struct({ seen: Schema.optionalKey(Schema.Int) })
})
type Gadget = Resource.Type<typeof Gadget>

interface FakeCache<A extends KubeObject> {
  readonly reflector: Reflector.Reflector<A>
  readonly emit: (event: ObjectEvent<A>) => Effect.Effect<void>
  /** Completes the first list (for a cache made unsynced). */
  readonly sync: Effect.Effect<void>
}

const makeFakeCache = <A extends KubeObject>(
  kind: string,
  unsynced: boolean
): Effect.Effect<FakeCache<A>, never, Scope.Scope> =>
  Effect.gen(function* () {
    const store = yield* Store.make<A>()
    const pubsub = yield* PubSub.unbounded<Change<A>>()
    const synced = yield* Deferred.make<void>()
    if (!unsynced) yield* Deferred.succeed(synced, undefined)
    const reflector: Reflector.Reflector<A> = {
      description: `${kind} fake`,
      store: store.reader,
      changes: () =>
        Stream.unwrap(
          Effect.gen(function* () {
            const subscription = yield* PubSub.subscribe(pubsub)
            const replay = (yield* store.list()).map((object): Change<A> => ({ type: "Added", object }))
            return Stream.concat(Stream.fromIterable(replay), Stream.fromSubscription(subscription))
          })
        ),
      synced: Deferred.await(synced),
      isSynced: Deferred.isDone(synced),
      resourceVersion: Effect.succeed(Option.none())
    }
    const emit = (event: ObjectEvent<A>) =>
      Effect.flatMap(store.apply(event), (changes) => PubSub.publishAll(pubsub, changes))
    return { reflector, emit, sync: Deferred.succeed(synced, undefined) }
  })

/** In-memory Caches: one fake reflector per kind, whatever the selector; the `unsynced` kinds wait for `sync`. */
const fakeCaches = (unsynced: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const scope = yield* Effect.scope
    const byKind = new Map<string, FakeCache<KubeObject>>()
    const cacheOf = (kind: string) =>
      Effect.gen(function* () {
        const existing = byKind.get(kind)
        if (existing !== undefined) return existing
        const created = yield* makeFakeCache<KubeObject>(kind, unsynced.includes(kind)).pipe(Scope.provide(scope))
        byKind.set(kind, created)
        return created
      })
    const shape: CachesShape = {
      // Sound for these tests: each kind is only ever fed objects of that kind.
      namespaces: undefined,
      get: <A extends KubeObject, I>(resource: Resource.Resource<A, I>) =>
        Effect.map(cacheOf(resource.kind), (cache) =>
          Cache.fromParts(resource.kind, [
            { namespace: undefined, reflector: cache.reflector as unknown as Reflector.Reflector<A> }
          ])
        ),
      descriptions: Effect.sync(() => [...byKind.keys()]),
      unsynced: Effect.succeed([]),
      isSynced: Effect.succeed(true),
      waitForSync: () => Effect.succeed(true)
    }
    const emit = (kind: string, event: ObjectEvent<KubeObject>) =>
      Effect.flatMap(cacheOf(kind), (cache) => cache.emit(event))
    const sync = (kind: string) => Effect.flatMap(cacheOf(kind), (cache) => cache.sync)
    return { shape, emit, sync }
  })

let version = 0
const gadget = (
  name: string,
  options: { size?: number; generation?: number; extra?: Partial<Gadget["metadata"]> } = {}
) =>
  ({
    metadata: {
      name,
      namespace: "ns",
      uid: `uid-${name}`,
      resourceVersion: String(++version),
      generation: options.generation ?? 1,
      ...options.extra
    },
    spec: { size: options.size ?? 1 }
  }) satisfies Gadget

// Lets forked fibers run up to their next suspension point.
const settle = Effect.forEach(Array.from({ length: 20 }), () => Effect.yieldNow, { discard: true })

/** Runs a controller against fake caches; reconciles are reported on `seen` as `key:size|gone`. */
const harness = <E>(
  options: Omit<Controller.Options<Gadget, Resource.Encoded<typeof Gadget>, E, never>, "for" | "reconcile"> & {
    readonly reconcile?: (request: Controller.Request<Gadget>, attempt: number) => Effect.Effect<Action.Action, E>
    /** Kinds whose cache has not synced when the controller starts. */
    readonly unsynced?: ReadonlyArray<string>
  }
) =>
  Effect.gen(function* () {
    const caches = yield* fakeCaches(options.unsynced ?? [])
    const seen = yield* Queue.unbounded<string>()
    const attempts = new Map<string, number>()
    const controller = Controller.make({
      ...options,
      for: Gadget,
      reconcile: (request) =>
        Effect.gen(function* () {
          const attempt = (attempts.get(request.key) ?? 0) + 1
          attempts.set(request.key, attempt)
          yield* Queue.offer(seen, `${request.key}:${request.object?.spec.size ?? "gone"}`)
          return yield* options.reconcile === undefined
            ? Effect.succeed(Action.done)
            : options.reconcile(request, attempt)
        })
    })
    const fiber = yield* controller.run.pipe(
      Effect.scoped,
      Effect.provide(Layer.succeed(Caches, caches.shape)),
      Effect.forkScoped
    )
    yield* settle
    const emit = (event: ObjectEvent<Gadget>) => Effect.andThen(caches.emit("Gadget", event), settle)
    const emitChild = (event: ObjectEvent<ConfigMap>) => Effect.andThen(caches.emit("ConfigMap", event), settle)
    /** Everything reconciled so far, in order. */
    const drain = Effect.andThen(settle, Queue.clear(seen))
    const sync = (kind: string) => Effect.andThen(caches.sync(kind), settle)
    return { emit, emitChild, seen, drain, fiber, sync }
  })

// A private metric registry, so counts do not leak between tests.
const freshMetrics = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.provideService(effect, Metric.MetricRegistry, new Map())

describe("Controller", () => {
  it.effect("reconciles each object once it is cached, and a deleted one with object undefined", () =>
    freshMetrics(
      Effect.gen(function* () {
        const h = yield* harness({ name: "basic" })
        const a = gadget("a", { size: 3 })
        yield* h.emit({ type: "ADDED", object: a })
        yield* h.emit({ type: "ADDED", object: gadget("b", { size: 4 }) })
        assert.deepStrictEqual(yield* h.drain, ["ns/a:3", "ns/b:4"])
        yield* h.emit({ type: "DELETED", object: a })
        assert.deepStrictEqual(yield* h.drain, ["ns/a:gone"])
        const total = yield* Metric.value(
          Metric.withAttributes(ControllerMetrics.reconcileTotal, { controller: "basic", result: "success" })
        )
        assert.strictEqual(total.count, 3)
      })
    )
  )

  it.effect("generationChanged ignores status-only updates, passes spec, finalizer and deletion changes", () =>
    Effect.gen(function* () {
      const h = yield* harness({ name: "predicates", predicates: [Predicates.generationChanged] })
      const v1 = gadget("a", { size: 1 })
      yield* h.emit({ type: "ADDED", object: v1 })
      assert.deepStrictEqual(yield* h.drain, ["ns/a:1"])
      // Status-only: a new resourceVersion, same generation.
      const statusOnly = { ...gadget("a", { size: 1 }), status: { seen: 1 } }
      yield* h.emit({ type: "MODIFIED", object: statusOnly })
      assert.deepStrictEqual(yield* h.drain, [])
      yield* h.emit({ type: "MODIFIED", object: gadget("a", { size: 2, generation: 2 }) })
      assert.deepStrictEqual(yield* h.drain, ["ns/a:2"])
      const finalized = gadget("a", { size: 2, generation: 2, extra: { finalizers: ["example.com/cleanup"] } })
      yield* h.emit({ type: "MODIFIED", object: finalized })
      assert.deepStrictEqual(yield* h.drain, ["ns/a:2"])
      const deleting = gadget("a", {
        size: 2,
        generation: 2,
        extra: { finalizers: ["example.com/cleanup"], deletionTimestamp: "2025-01-01T00:00:00Z" }
      })
      yield* h.emit({ type: "MODIFIED", object: deleting })
      assert.deepStrictEqual(yield* h.drain, ["ns/a:2"])
      // Deletions always pass.
      yield* h.emit({ type: "DELETED", object: deleting })
      assert.deepStrictEqual(yield* h.drain, ["ns/a:gone"])
    })
  )

  it.effect("retries a failed reconcile with per-key backoff: 5 ms, 10 ms, 20 ms, then done", () =>
    freshMetrics(
      Effect.gen(function* () {
        const h = yield* harness({
          name: "backoff",
          reconcile: (_, attempt) => (attempt <= 3 ? Effect.fail("boom") : Effect.succeed(Action.done))
        })
        yield* h.emit({ type: "ADDED", object: gadget("a") })
        assert.deepStrictEqual(yield* h.drain, ["ns/a:1"])
        yield* TestClock.adjust("4 millis")
        assert.deepStrictEqual(yield* h.drain, [])
        yield* TestClock.adjust("1 millis")
        assert.deepStrictEqual(yield* h.drain, ["ns/a:1"])
        yield* TestClock.adjust("9 millis")
        assert.deepStrictEqual(yield* h.drain, [])
        yield* TestClock.adjust("1 millis")
        assert.deepStrictEqual(yield* h.drain, ["ns/a:1"])
        yield* TestClock.adjust("20 millis")
        assert.deepStrictEqual(yield* h.drain, ["ns/a:1"])
        // Succeeded: no further attempts, however long we wait.
        yield* TestClock.adjust("1 hour")
        assert.deepStrictEqual(yield* h.drain, [])
        const labels = { controller: "backoff" }
        assert.strictEqual(
          (yield* Metric.value(Metric.withAttributes(ControllerMetrics.reconcileErrors, labels))).count,
          3
        )
        assert.strictEqual(
          (yield* Metric.value(Metric.withAttributes(ControllerMetrics.reconcileTotal, { ...labels, result: "error" })))
            .count,
          3
        )
      })
    )
  )

  it.effect("an error policy replaces the backoff for the errors it decides; others keep the backoff", () =>
    freshMetrics(
      Effect.gen(function* () {
        const h = yield* harness({
          name: "policy",
          reconcile: (_, attempt) => Effect.fail(attempt === 1 ? "rate limited" : "boom"),
          errorPolicy: (error) => (error === "rate limited" ? Action.requeueAfter("1 minute") : "backoff")
        })
        yield* h.emit({ type: "ADDED", object: gadget("a") })
        assert.deepStrictEqual(yield* h.drain, ["ns/a:1"])
        // Not the 5 ms backoff: the policy asked for a minute.
        yield* TestClock.adjust("59 seconds")
        assert.deepStrictEqual(yield* h.drain, [])
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(yield* h.drain, ["ns/a:1"])
        // "boom" is left to the queue: 5 ms backoff (the requeue reset the failure count).
        yield* TestClock.adjust("5 millis")
        assert.deepStrictEqual(yield* h.drain, ["ns/a:1"])
        const errors = yield* Metric.value(
          Metric.withAttributes(ControllerMetrics.reconcileErrors, { controller: "policy" })
        )
        assert.strictEqual(errors.count, 3, "every failure is counted, whatever the policy decides")
      })
    )
  )

  it.effect("does not retry a terminal error until the object changes", () =>
    freshMetrics(
      Effect.gen(function* () {
        const h = yield* harness({
          name: "terminal",
          reconcile: ({ object }) =>
            (object?.spec.size ?? 0) < 0
              ? Effect.fail(new TerminalError({ reason: "InvalidSize", message: "size must not be negative" }))
              : Effect.succeed(Action.done)
        })
        yield* h.emit({ type: "ADDED", object: gadget("a", { size: -1 }) })
        assert.deepStrictEqual(yield* h.drain, ["ns/a:-1"])
        yield* TestClock.adjust("1 hour")
        assert.deepStrictEqual(yield* h.drain, [])
        yield* h.emit({ type: "MODIFIED", object: gadget("a", { size: 2, generation: 2 }) })
        assert.deepStrictEqual(yield* h.drain, ["ns/a:2"])
        const labels = { controller: "terminal" }
        const terminal = yield* Metric.value(Metric.withAttributes(ControllerMetrics.terminalReconcileErrors, labels))
        assert.strictEqual(terminal.count, 1)
      })
    )
  )

  it.effect("requeueAfter reconciles again after the delay, with one timer per key", () =>
    freshMetrics(
      Effect.gen(function* () {
        const h = yield* harness({
          name: "requeue",
          reconcile: () => Effect.succeed(Action.requeueAfter("1 minute"))
        })
        yield* h.emit({ type: "ADDED", object: gadget("a") })
        assert.deepStrictEqual(yield* h.drain, ["ns/a:1"])
        // A change meanwhile reconciles at once; it does not add a second timer.
        yield* TestClock.adjust("30 seconds")
        yield* h.emit({ type: "MODIFIED", object: gadget("a", { size: 2, generation: 2 }) })
        assert.deepStrictEqual(yield* h.drain, ["ns/a:2"])
        // The first timer (t=60 s) wins over the second one's (t=90 s).
        yield* TestClock.adjust("29 seconds")
        assert.deepStrictEqual(yield* h.drain, [])
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(yield* h.drain, ["ns/a:2"])
        yield* TestClock.adjust("59 seconds")
        assert.deepStrictEqual(yield* h.drain, [])
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(yield* h.drain, ["ns/a:2"])
        const total = yield* Metric.value(
          Metric.withAttributes(ControllerMetrics.reconcileTotal, { controller: "requeue", result: "requeue_after" })
        )
        assert.strictEqual(total.count, 4)
      })
    )
  )

  it.effect("an owned child's change or deletion enqueues its controller owner, and only that", () =>
    Effect.gen(function* () {
      const h = yield* harness({ name: "owns", owns: [ConfigMap] })
      yield* h.emit({ type: "ADDED", object: gadget("a") })
      assert.deepStrictEqual(yield* h.drain, ["ns/a:1"])
      const owner = (name: string, controller: boolean, kind = "Gadget") => ({
        apiVersion: Gadget.apiVersion,
        kind,
        name,
        uid: `uid-${name}`,
        controller
      })
      const child = (name: string, owners: ReadonlyArray<ReturnType<typeof owner>>): ConfigMap => ({
        metadata: {
          name,
          namespace: "ns",
          uid: `cm-${name}`,
          resourceVersion: String(++version),
          ownerReferences: owners
        },
        data: {}
      })
      yield* h.emitChild({ type: "ADDED", object: child("a-0", [owner("a", true)]) })
      assert.deepStrictEqual(yield* h.drain, ["ns/a:1"])
      yield* h.emitChild({ type: "DELETED", object: child("a-0", [owner("a", true)]) })
      assert.deepStrictEqual(yield* h.drain, ["ns/a:1"])
      // Not a controller reference, or another kind: nothing to do for us.
      yield* h.emitChild({ type: "ADDED", object: child("b-0", [owner("b", false)]) })
      yield* h.emitChild({ type: "ADDED", object: child("c-0", [owner("c", true, "Other")]) })
      assert.deepStrictEqual(yield* h.drain, [])
    })
  )

  it.effect("starts workers only once every cache it reads has synced, owned ones included", () =>
    Effect.gen(function* () {
      const h = yield* harness({ name: "sync", owns: [ConfigMap], unsynced: ["ConfigMap"] })
      yield* h.emit({ type: "ADDED", object: gadget("a") })
      // The primary is listed, but its children are not yet: reconciling now would see none.
      assert.deepStrictEqual(yield* h.drain, [])
      yield* h.sync("ConfigMap")
      assert.deepStrictEqual(yield* h.drain, ["ns/a:1"])
    })
  )

  it.effect("request.cache reads the caches the controller declared, and refuses any other kind", () =>
    Effect.gen(function* () {
      const children = Source.owns(ConfigMap)
      const read = yield* Deferred.make<ReadonlyArray<string>>()
      const h = yield* harness({
        name: "readers",
        owns: [children],
        reconcile: ({ cache, key }) =>
          Effect.gen(function* () {
            const cached = Option.getOrUndefined(yield* cache(Gadget).get(key))
            const viaSource = yield* cache(children).list()
            const viaResource = yield* cache(ConfigMap).list()
            const undeclared = yield* Effect.sync(() => cache(Secret)).pipe(
              Effect.as("no error"),
              Effect.catchDefect((defect) => Effect.succeed(String(defect)))
            )
            yield* Deferred.succeed(read, [
              cached?.metadata.name ?? "none",
              ...viaSource.map((cm) => cm.metadata.name ?? ""),
              ...viaResource.map((cm) => cm.metadata.name ?? ""),
              undeclared
            ])
            return Action.done
          })
      })
      yield* h.emitChild({
        type: "ADDED",
        object: { metadata: { name: "a-0", namespace: "ns", uid: "cm-a-0", resourceVersion: "1" }, data: {} }
      })
      yield* h.emit({ type: "ADDED", object: gadget("a") })
      assert.deepStrictEqual(yield* Deferred.await(read), [
        "a",
        "a-0",
        "a-0",
        "Error: controller readers does not watch Secret: add it to owns or watches to read its cache"
      ])
    })
  )

  it.effect("Source.watches maps any object to the primary keys it names", () =>
    Effect.gen(function* () {
      const gadgetOf = (cm: ConfigMap) => {
        const name = cm.metadata.labels?.["example.com/gadget"]
        return name === undefined ? [] : [`ns/${name}`]
      }
      const h = yield* harness({ name: "watches", watches: [Source.watches(ConfigMap, gadgetOf)] })
      const labelled = (name: string, gadget: string): ConfigMap => ({
        metadata: {
          name,
          namespace: "ns",
          uid: `cm-${name}`,
          resourceVersion: String(++version),
          labels: { "example.com/gadget": gadget }
        }
      })
      yield* h.emitChild({ type: "ADDED", object: labelled("settings", "a") })
      assert.deepStrictEqual(yield* h.drain, ["ns/a:gone"])
      // Relabelled: both the old and the new primary hear of it.
      yield* h.emitChild({ type: "MODIFIED", object: labelled("settings", "b") })
      assert.deepStrictEqual((yield* h.drain).sort(), ["ns/a:gone", "ns/b:gone"])
    })
  )

  it.effect(
    "Source.references wakes every primary object that names the changed object, found in the primary cache",
    () =>
      Effect.gen(function* () {
        const settingsOf = (g: Gadget) => {
          const name = g.metadata.annotations?.["example.com/settings"]
          return name === undefined ? [] : [`${g.metadata.namespace}/${name}`]
        }
        const h = yield* harness({ name: "references", watches: [Source.references(ConfigMap, settingsOf)] })
        const using = (name: string, settings: string) =>
          gadget(name, { extra: { annotations: { "example.com/settings": settings } } })
        yield* h.emit({ type: "ADDED", object: using("a", "shared") })
        yield* h.emit({ type: "ADDED", object: using("b", "shared") })
        yield* h.emit({ type: "ADDED", object: using("c", "other") })
        yield* h.emit({ type: "ADDED", object: gadget("d") })
        yield* h.drain
        const settings: ConfigMap = {
          metadata: { name: "shared", namespace: "ns", uid: "cm-shared", resourceVersion: String(++version) }
        }
        // Created after the gadgets that need it: each of them, and only them, is reconciled.
        yield* h.emitChild({ type: "ADDED", object: settings })
        assert.deepStrictEqual((yield* h.drain).sort(), ["ns/a:1", "ns/b:1"])
        yield* h.emitChild({ type: "DELETED", object: settings })
        assert.deepStrictEqual((yield* h.drain).sort(), ["ns/a:1", "ns/b:1"])
      })
  )

  it.effect("interrupting a controller lets the in-flight reconcile finish (drain)", () =>
    Effect.gen(function* () {
      const finished = yield* Deferred.make<void>()
      const h = yield* harness({
        name: "drain",
        reconcile: () =>
          Effect.sleep("10 seconds").pipe(Effect.andThen(Deferred.succeed(finished, undefined)), Effect.as(Action.done))
      })
      yield* h.emit({ type: "ADDED", object: gadget("a") })
      assert.deepStrictEqual(yield* h.drain, ["ns/a:1"])
      const stopping = yield* Effect.forkChild(Fiber.interrupt(h.fiber))
      yield* settle
      assert.isUndefined(stopping.pollUnsafe(), "the interruption waits for the reconcile")
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(stopping)
      assert.isTrue(yield* Deferred.isDone(finished))
    })
  )

  it.effect("a hard stop interrupts in-flight reconciles at once", () =>
    Effect.gen(function* () {
      const stop = yield* Deferred.make<void>()
      const interrupted = yield* Deferred.make<void>()
      const h = yield* harness({
        name: "hard-stop",
        reconcile: () =>
          Effect.sleep("10 seconds").pipe(
            Effect.as(Action.done),
            Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined))
          )
      }).pipe(Effect.provideService(Controller.HardStop, Deferred.await(stop)))
      yield* h.emit({ type: "ADDED", object: gadget("a") })
      assert.deepStrictEqual(yield* h.drain, ["ns/a:1"])
      yield* Deferred.succeed(stop, undefined)
      yield* settle
      assert.isTrue(yield* Deferred.isDone(interrupted))
      // Not retried: the stop still holds, and the next leader relists.
      yield* TestClock.adjust("1 hour")
      assert.deepStrictEqual(yield* h.drain, [])
    })
  )
})
