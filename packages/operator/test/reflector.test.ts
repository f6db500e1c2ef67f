import { ConfigMap, type Kube, KubeClient, type KubeError, KubeErrors, type WatchEvent } from "@db-backup-operator/kube"
import { assert, describe, it } from "@effect/vitest"
import {
  type Cause,
  Deferred,
  Effect,
  Exit,
  Fiber,
  Logger,
  Metric,
  Option,
  Queue,
  References,
  Scope,
  Stream
} from "effect"
import { TestClock } from "effect/testing"
import { Caches, type Change, Reflector } from "../src/cache/index.ts"

// The reflector's loop against a scripted KubeClient, on the TestClock: the
// paths a real API server cannot be made to take on demand (a watch that stalls,
// a 410 at a chosen moment, a run of transient failures). The same behaviour
// against a real control plane is in reflector.integration.test.ts.

const cm = (name: string, resourceVersion: string, uid = `uid-${name}`): ConfigMap => ({
  apiVersion: "v1",
  kind: "ConfigMap",
  metadata: { name, namespace: "ns", resourceVersion, uid },
  data: {}
})

const summary = (change: Change<ConfigMap>) => {
  const key = `${change.object.metadata.namespace}/${change.object.metadata.name}`
  const version = change.object.metadata.resourceVersion
  if (change.type === "Modified") return `Modified ${key}@${change.old.metadata.resourceVersion}->${version}`
  if (change.type === "Deleted") return `Deleted ${key}@${version}${change.finalStateUnknown ? "?" : ""}`
  return `Added ${key}@${version}`
}

interface FakeWatch {
  readonly options: Kube.WatchOptions | undefined
  readonly events: Queue.Queue<WatchEvent<ConfigMap>, KubeError | Cause.Done>
}

interface Fake {
  readonly client: Kube.KubeClientShape
  /** What the next lists return (an Effect, so a test can make one wait or fail). */
  readonly setList: (list: Effect.Effect<Kube.ListResult<ConfigMap>, KubeError>) => void
  readonly listCalls: Array<Kube.ListOptions | undefined>
  /** Watches in the order the reflector started them. */
  readonly watches: Queue.Queue<FakeWatch>
}

const listed = (items: ReadonlyArray<ConfigMap>, resourceVersion: string) =>
  Effect.succeed<Kube.ListResult<ConfigMap>>({ items, resourceVersion, malformed: [] })

const transient = new KubeErrors.Transient({ message: "connection reset", request: "WATCH /api/v1/configmaps" })
const gone = new KubeErrors.Gone({ message: "too old resource version: 10 (30)", request: "WATCH /api/v1/configmaps" })

const makeFake = Effect.gen(function* () {
  const watches = yield* Queue.unbounded<FakeWatch>()
  let list: Effect.Effect<Kube.ListResult<ConfigMap>, KubeError> = listed([], "1")
  const listCalls: Array<Kube.ListOptions | undefined> = []
  const unused = Effect.die("not used by reflectors")
  const client: Kube.KubeClientShape = {
    server: "https://fake",
    // The fake serves ConfigMaps only; the casts restore the generic signatures.
    list: (_resource, options) => {
      listCalls.push(options)
      return list as unknown as Effect.Effect<Kube.ListResult<never>, KubeError>
    },
    watch: (_resource, options) =>
      Stream.unwrap(
        Effect.gen(function* () {
          const events = yield* Queue.unbounded<WatchEvent<ConfigMap>, KubeError | Cause.Done>()
          yield* Queue.offer(watches, { options, events })
          return Stream.fromQueue(events)
        })
      ) as unknown as Stream.Stream<WatchEvent<never>, KubeError>,
    get: () => unused,
    getMetadata: () => unused,
    create: () => unused,
    mergePatch: () => unused,
    jsonPatch: () => unused,
    apply: () => unused,
    delete: () => unused,
    request: () => unused
  }
  const fake: Fake = {
    client,
    setList: (next) => {
      list = next
    },
    listCalls,
    watches
  }
  return fake
})

// Lets forked fibers run up to their next suspension point.
const settle = Effect.forEach(Array.from({ length: 20 }), () => Effect.yieldNow, { discard: true })

const noNewWatch = (fake: Fake) =>
  Effect.gen(function* () {
    yield* settle
    assert.isTrue(Option.isNone(yield* Queue.poll(fake.watches)), "no watch should have started yet")
  })

/** Collects a reflector's change stream into an array, in the background. */
const collect = (reflector: Reflector.Reflector<ConfigMap>, options?: { readonly replay?: boolean }) =>
  Effect.gen(function* () {
    const seen: Array<string> = []
    const fiber = yield* reflector.changes(options).pipe(
      Stream.runForEach((change) => Effect.sync(() => seen.push(summary(change)))),
      Effect.forkScoped
    )
    yield* settle
    return { seen, fiber }
  })

const offer = (watch: FakeWatch, ...events: ReadonlyArray<WatchEvent<ConfigMap>>) =>
  Effect.andThen(Queue.offerAll(watch.events, events), settle)

// Private metric registry and captured logs per test.
const observed = <A, E, R>(body: (logs: Array<string>) => Effect.Effect<A, E, R>) => {
  const logs: Array<string> = []
  const capture = Logger.make((options) => {
    const annotations = options.fiber.getRef(References.CurrentLogAnnotations)
    const message = Array.isArray(options.message) ? options.message.map(String).join(" ") : String(options.message)
    logs.push(`${options.logLevel} [${String(annotations.kind)}] ${message}`)
  })
  return body(logs).pipe(
    Effect.provideService(Metric.MetricRegistry, new Map()),
    Effect.provideService(References.CurrentLoggers, new Set([capture])),
    Effect.provideService(References.MinimumLogLevel, "Debug")
  )
}

// Reads a counter from the registry by name and attributes.
const counter = (name: string, attributes: Record<string, string>) =>
  Effect.map(Metric.snapshot, (metrics) => {
    const found = metrics.find(
      (metric) =>
        metric.id === name &&
        Object.entries(attributes).every(([key, value]) => metric.attributes?.[key] === value) &&
        Object.keys(metric.attributes ?? {}).length === Object.keys(attributes).length
    )
    return found !== undefined && "count" in found.state ? Number(found.state.count) : 0
  })

const cacheLabel = { kind: "ConfigMap", cache: "ConfigMap namespace=ns" }

describe("Reflector", () => {
  it.effect("lists, syncs, then watches from the list's resourceVersion and applies events", () =>
    Effect.gen(function* () {
      const fake = yield* makeFake
      fake.setList(listed([cm("a", "1"), cm("b", "2")], "10"))
      const reflector = yield* Reflector.make({ resource: ConfigMap, namespace: "ns", labelSelector: "app=x" }).pipe(
        Effect.provideService(KubeClient, fake.client)
      )
      yield* reflector.synced
      assert.strictEqual(yield* reflector.store.size, 2)
      assert.deepStrictEqual(fake.listCalls[0], { namespace: "ns", labelSelector: "app=x", limit: 500 })
      const { seen } = yield* collect(reflector)
      const watch = yield* Queue.take(fake.watches)
      assert.strictEqual(watch.options?.resourceVersion, "10")
      assert.strictEqual(watch.options?.allowWatchBookmarks, true)
      assert.strictEqual(watch.options?.namespace, "ns")
      assert.strictEqual(watch.options?.labelSelector, "app=x")
      const timeout = watch.options?.timeoutSeconds ?? 0
      assert.isTrue(timeout >= 300 && timeout <= 600, `timeoutSeconds ${timeout} should be within 5-10 minutes`)
      yield* offer(
        watch,
        { type: "MODIFIED", object: cm("a", "11") },
        { type: "DELETED", object: cm("b", "12") },
        { type: "ADDED", object: cm("c", "13") }
      )
      assert.deepStrictEqual(seen, [
        "Added ns/a@1",
        "Added ns/b@2",
        "Modified ns/a@1->11",
        "Deleted ns/b@12",
        "Added ns/c@13"
      ])
      assert.deepStrictEqual((yield* reflector.store.keys).toSorted(), ["ns/a", "ns/c"])
      assert.deepStrictEqual(yield* reflector.resourceVersion, Option.some("13"))
    })
  )

  it.effect(
    "advances the resourceVersion on bookmarks and malformed objects, and resumes from it after a timeout",
    () =>
      observed((logs) =>
        Effect.gen(function* () {
          const fake = yield* makeFake
          fake.setList(listed([cm("a", "1")], "10"))
          const reflector = yield* Reflector.make({ resource: ConfigMap, namespace: "ns" }).pipe(
            Effect.provideService(KubeClient, fake.client)
          )
          const first = yield* Queue.take(fake.watches)
          const malformed = new KubeErrors.DecodeError({
            kind: "ConfigMap",
            object: "ns/broken",
            message: 'ConfigMap ns/broken: Expected string, got 42\n  at ["data"]["x"]'
          })
          yield* offer(
            first,
            { type: "BOOKMARK", resourceVersion: "20" },
            { type: "MALFORMED", error: malformed, resourceVersion: "21" }
          )
          assert.deepStrictEqual(yield* reflector.resourceVersion, Option.some("21"))
          assert.strictEqual(yield* reflector.store.size, 1)
          assert.isTrue(
            logs.some(
              (line) =>
                line.startsWith("Warn [ConfigMap]") && line.includes("ns/broken") && line.includes('["data"]["x"]')
            )
          )
          assert.strictEqual(yield* counter("reflector_malformed_objects_total", cacheLabel), 1)
          // The server ends the watch at its timeout: the next one resumes at once, without a relist.
          yield* Queue.end(first.events)
          const second = yield* Queue.take(fake.watches)
          assert.strictEqual(second.options?.resourceVersion, "21")
          assert.strictEqual(fake.listCalls.length, 1)
          assert.strictEqual(yield* counter("reflector_watch_restarts_total", { ...cacheLabel, reason: "timeout" }), 1)
        })
      )
  )

  it.effect("relists on 410 Gone, replacing the store and emitting Deleted for objects that vanished", () =>
    observed(() =>
      Effect.gen(function* () {
        const fake = yield* makeFake
        fake.setList(listed([cm("a", "1"), cm("b", "2"), cm("c", "3", "old-c")], "10"))
        const reflector = yield* Reflector.make({ resource: ConfigMap, namespace: "ns" }).pipe(
          Effect.provideService(KubeClient, fake.client)
        )
        const { seen } = yield* collect(reflector, { replay: false })
        const watch = yield* Queue.take(fake.watches)
        // Meanwhile: b deleted, a changed, c deleted and recreated, d created.
        fake.setList(listed([cm("a", "5"), cm("c", "6", "new-c"), cm("d", "7")], "30"))
        yield* Queue.fail(watch.events, gone)
        const next = yield* Queue.take(fake.watches)
        assert.strictEqual(next.options?.resourceVersion, "30")
        assert.strictEqual(fake.listCalls.length, 2)
        assert.deepStrictEqual(seen, [
          "Deleted ns/b@2?",
          "Modified ns/a@1->5",
          "Deleted ns/c@3?",
          "Added ns/c@6",
          "Added ns/d@7"
        ])
        assert.deepStrictEqual((yield* reflector.store.keys).toSorted(), ["ns/a", "ns/c", "ns/d"])
        assert.strictEqual(yield* counter("reflector_relists_total", cacheLabel), 1)
        assert.strictEqual(yield* counter("reflector_lists_total", cacheLabel), 2)
      })
    )
  )

  it.effect("reconnects after transient failures with doubling backoff, reset by a healthy watch", () =>
    observed(() =>
      Effect.gen(function* () {
        const fake = yield* makeFake
        fake.setList(listed([], "10"))
        yield* Reflector.make({ resource: ConfigMap, namespace: "ns" }).pipe(
          Effect.provideService(KubeClient, fake.client)
        )
        const w1 = yield* Queue.take(fake.watches)
        yield* Queue.fail(w1.events, transient)
        // 1st failure: 200 ms ± 20%.
        yield* TestClock.adjust("150 millis")
        yield* noNewWatch(fake)
        yield* TestClock.adjust("100 millis")
        const w2 = yield* Queue.take(fake.watches)
        assert.strictEqual(w2.options?.resourceVersion, "10")
        yield* Queue.fail(w2.events, transient)
        // 2nd: 400 ms ± 20%.
        yield* TestClock.adjust("300 millis")
        yield* noNewWatch(fake)
        yield* TestClock.adjust("200 millis")
        const w3 = yield* Queue.take(fake.watches)
        // A watch that delivers an event is healthy: the next failure waits 200 ms again.
        yield* offer(w3, { type: "ADDED", object: cm("a", "11") })
        yield* Queue.fail(w3.events, transient)
        yield* TestClock.adjust("250 millis")
        const w4 = yield* Queue.take(fake.watches)
        assert.strictEqual(w4.options?.resourceVersion, "11")
        assert.strictEqual(fake.listCalls.length, 1)
        assert.strictEqual(yield* counter("reflector_watch_restarts_total", { ...cacheLabel, reason: "error" }), 3)
      })
    )
  )

  it.effect("retries a failed list with backoff; synced waits for the first list", () =>
    Effect.gen(function* () {
      const fake = yield* makeFake
      fake.setList(Effect.fail(new KubeErrors.Forbidden({ message: "configmaps is forbidden", request: "GET" })))
      const reflector = yield* Reflector.make({ resource: ConfigMap, namespace: "ns" }).pipe(
        Effect.provideService(KubeClient, fake.client)
      )
      yield* settle
      assert.isFalse(yield* reflector.isSynced)
      assert.isTrue(Option.isNone(yield* reflector.resourceVersion))
      fake.setList(listed([cm("a", "1")], "10"))
      yield* TestClock.adjust("250 millis")
      yield* reflector.synced
      assert.strictEqual(fake.listCalls.length, 2)
      assert.strictEqual(yield* reflector.store.size, 1)
    })
  )

  it.effect("backs off when the server closes a watch at once without an event", () =>
    Effect.gen(function* () {
      const fake = yield* makeFake
      fake.setList(listed([], "10"))
      yield* Reflector.make({ resource: ConfigMap, namespace: "ns" }).pipe(
        Effect.provideService(KubeClient, fake.client)
      )
      const w1 = yield* Queue.take(fake.watches)
      yield* Queue.end(w1.events)
      yield* noNewWatch(fake)
      yield* TestClock.adjust("250 millis")
      const w2 = yield* Queue.take(fake.watches)
      assert.strictEqual(w2.options?.resourceVersion, "10")
    })
  )

  it.effect("restarts a watch that stalls past the watchdog (default: the watch timeout plus 30 s)", () =>
    observed(() =>
      Effect.gen(function* () {
        const fake = yield* makeFake
        fake.setList(listed([], "10"))
        yield* Reflector.make({
          resource: ConfigMap,
          namespace: "ns",
          watchTimeout: { min: "60 seconds", max: "60 seconds" }
        }).pipe(Effect.provideService(KubeClient, fake.client))
        const w1 = yield* Queue.take(fake.watches)
        assert.strictEqual(w1.options?.timeoutSeconds, 60)
        yield* offer(w1, { type: "BOOKMARK", resourceVersion: "15" })
        yield* TestClock.adjust("89 seconds")
        yield* noNewWatch(fake)
        yield* TestClock.adjust("2 seconds")
        const w2 = yield* Queue.take(fake.watches)
        assert.strictEqual(w2.options?.resourceVersion, "15")
        assert.strictEqual(yield* counter("reflector_watch_restarts_total", { ...cacheLabel, reason: "watchdog" }), 1)
      })
    )
  )

  it.effect("honours an explicit watchdog", () =>
    Effect.gen(function* () {
      const fake = yield* makeFake
      fake.setList(listed([], "10"))
      yield* Reflector.make({ resource: ConfigMap, namespace: "ns", watchdog: "2 seconds" }).pipe(
        Effect.provideService(KubeClient, fake.client)
      )
      const w1 = yield* Queue.take(fake.watches)
      // Events keep it alive...
      yield* TestClock.adjust("1500 millis")
      yield* offer(w1, { type: "ADDED", object: cm("a", "11") })
      yield* TestClock.adjust("1500 millis")
      yield* noNewWatch(fake)
      // ...silence does not.
      yield* TestClock.adjust("600 millis")
      const w2 = yield* Queue.take(fake.watches)
      assert.strictEqual(w2.options?.resourceVersion, "11")
    })
  )

  it.effect("resumes from a snapshot without listing, and repairs it by a relist if the version expired", () =>
    Effect.gen(function* () {
      const fake = yield* makeFake
      const reflector = yield* Reflector.make({
        resource: ConfigMap,
        namespace: "ns",
        resume: { resourceVersion: "5", objects: [cm("a", "1"), cm("b", "2")] }
      }).pipe(Effect.provideService(KubeClient, fake.client))
      assert.isTrue(yield* reflector.isSynced)
      const { seen } = yield* collect(reflector)
      const watch = yield* Queue.take(fake.watches)
      assert.strictEqual(watch.options?.resourceVersion, "5")
      assert.strictEqual(fake.listCalls.length, 0)
      fake.setList(listed([cm("b", "2")], "40"))
      yield* Queue.fail(watch.events, gone)
      yield* Queue.take(fake.watches)
      assert.deepStrictEqual(seen, ["Added ns/a@1", "Added ns/b@2", "Deleted ns/a@1?"])
    })
  )

  it.effect("gives a late subscriber the current objects, then live changes, with no gap", () =>
    Effect.gen(function* () {
      const fake = yield* makeFake
      fake.setList(listed([cm("a", "1")], "10"))
      const reflector = yield* Reflector.make({ resource: ConfigMap, namespace: "ns" }).pipe(
        Effect.provideService(KubeClient, fake.client)
      )
      const watch = yield* Queue.take(fake.watches)
      yield* offer(watch, { type: "ADDED", object: cm("b", "11") })
      const late = yield* collect(reflector)
      const live = yield* collect(reflector, { replay: false })
      yield* offer(watch, { type: "DELETED", object: cm("a", "12") })
      assert.deepStrictEqual(late.seen, ["Added ns/a@1", "Added ns/b@11", "Deleted ns/a@12"])
      assert.deepStrictEqual(live.seen, ["Deleted ns/a@12"])
    })
  )

  it.effect("stops watching and ends change streams when its scope closes", () =>
    Effect.gen(function* () {
      const fake = yield* makeFake
      fake.setList(listed([], "10"))
      const scope = yield* Scope.make()
      const reflector = yield* Reflector.make({ resource: ConfigMap, namespace: "ns" }).pipe(
        Effect.provideService(KubeClient, fake.client),
        Scope.provide(scope)
      )
      const watch = yield* Queue.take(fake.watches)
      const { fiber } = yield* collect(reflector)
      yield* Scope.close(scope, Exit.void)
      yield* settle
      assert.isTrue(Exit.isSuccess(yield* Fiber.await(fiber)))
      // The loop is gone: ending the old watch starts no new one.
      yield* Queue.end(watch.events)
      yield* TestClock.adjust("1 minute")
      yield* noNewWatch(fake)
    })
  )
})

describe("Caches", () => {
  it.effect("shares one reflector per kind and selector, and waits for all of them to sync", () =>
    Effect.gen(function* () {
      const fake = yield* makeFake
      const release = yield* Deferred.make<void>()
      fake.setList(Effect.andThen(Deferred.await(release), listed([cm("a", "1")], "10")))
      const caches = yield* Caches.make({ namespaces: ["ns"] }).pipe(Effect.provideService(KubeClient, fake.client))
      const [first, second] = yield* Effect.all([caches.get(ConfigMap), caches.get(ConfigMap, { labelSelector: "" })], {
        concurrency: "unbounded"
      })
      assert.strictEqual(first, second)
      const labelled = yield* caches.get(ConfigMap, { labelSelector: "app=x" })
      assert.notStrictEqual(first, labelled)
      assert.deepStrictEqual(yield* caches.descriptions, [
        "ConfigMap namespace=ns",
        "ConfigMap namespace=ns labels=app=x"
      ])
      yield* settle
      assert.isFalse(yield* caches.isSynced)
      assert.deepStrictEqual((yield* caches.unsynced).length, 2)
      const waiting = yield* Effect.forkChild(caches.waitForSync({ timeout: "10 seconds" }))
      yield* TestClock.adjust("11 seconds")
      assert.isFalse(yield* Fiber.join(waiting))
      yield* Deferred.succeed(release, undefined)
      assert.isTrue(yield* caches.waitForSync())
      assert.isTrue(yield* caches.isSynced)
      assert.strictEqual(fake.listCalls.length, 2)
    })
  )
})
