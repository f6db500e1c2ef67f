import { ConfigMap, KubeClient, KubeErrors } from "@db-backup-operator/kube"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Option, Queue, Scope, Stream } from "effect"
import { TestClock } from "effect/testing"
import { Caches, Reflector } from "../src/cache/index.ts"
import {
  cacheLabel,
  cm,
  counter,
  gone,
  listed,
  makeFake,
  noNewWatch,
  observed,
  offer,
  settle,
  summary
} from "./fixtures/scriptedKube.ts"

// The reflector as the composition of its parts (Watcher -> Reflection into the
// Store -> FanOut), against a scripted KubeClient on the TestClock. The parts'
// own behaviour is tested in watcher.test.ts, reflection.test.ts and
// fanout.test.ts; the same behaviour against a real control plane is in
// reflector.integration.test.ts.

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

describe("Reflector", () => {
  it.effect("syncs with the first list, then applies watch events to the store and publishes their changes", () =>
    Effect.gen(function* () {
      const fake = yield* makeFake
      fake.setList(listed([cm("a", "1"), cm("b", "2")], "10"))
      const reflector = yield* Reflector.make({ resource: ConfigMap, namespace: "ns", labelSelector: "app=x" }).pipe(
        Effect.provideService(KubeClient, fake.client)
      )
      yield* reflector.synced
      assert.strictEqual(yield* reflector.store.size, 2)
      assert.strictEqual(reflector.description, "ConfigMap namespace=ns labels=app=x")
      assert.deepStrictEqual(fake.listCalls[0], { namespace: "ns", labelSelector: "app=x", limit: 500 })
      const { seen } = yield* collect(reflector)
      const watch = yield* Queue.take(fake.watches)
      assert.strictEqual(watch.options?.resourceVersion, "10")
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

  it.effect("logs, counts and skips malformed objects; its resourceVersion moves past them", () =>
    observed((logs) =>
      Effect.gen(function* () {
        const fake = yield* makeFake
        fake.setList(listed([cm("a", "1")], "10"))
        const reflector = yield* Reflector.make({ resource: ConfigMap, namespace: "ns" }).pipe(
          Effect.provideService(KubeClient, fake.client)
        )
        const watch = yield* Queue.take(fake.watches)
        const malformed = new KubeErrors.DecodeError({
          kind: "ConfigMap",
          object: "ns/broken",
          message: 'ConfigMap ns/broken: Expected string, got 42\n  at ["data"]["x"]'
        })
        yield* offer(watch, { type: "MALFORMED", error: malformed, resourceVersion: "21" })
        assert.deepStrictEqual(yield* reflector.resourceVersion, Option.some("21"))
        assert.strictEqual(yield* reflector.store.size, 1)
        assert.isTrue(
          logs.some(
            (line) =>
              line.startsWith("Warn [ConfigMap] skipping malformed object") &&
              line.includes("ns/broken") &&
              line.includes('["data"]["x"]')
          )
        )
        assert.isTrue(logs.includes("Info [ConfigMap] listed 1 objects at resourceVersion 10"))
        assert.strictEqual(yield* counter("reflector_malformed_objects_total", cacheLabel), 1)
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
