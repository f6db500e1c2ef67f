import { ConfigMap, KubeClient, KubeErrors } from "@db-backup-operator/kube"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Queue, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as Watcher from "../src/cache/Watcher.ts"
import {
  cacheLabel,
  cm,
  counter,
  type Fake,
  gone,
  listed,
  makeFake,
  noNewWatch,
  observed,
  offer,
  settle,
  transient
} from "./fixtures/scriptedKube.ts"

// The watcher's list/watch loop against a scripted KubeClient, on the TestClock:
// the paths a real API server cannot be made to take on demand (a watch that
// stalls, a 410 at a chosen moment, a run of transient failures).

const line = (event: Watcher.Event<ConfigMap>): string => {
  const name = (object: ConfigMap) =>
    `${object.metadata.namespace}/${object.metadata.name}@${object.metadata.resourceVersion}`
  switch (event._tag) {
    case "Listed":
      return `Listed(${event.reason}) [${event.objects.map(name).join(",")}] at ${event.resourceVersion}`
    case "Watched":
      return `${event.event.type} ${name(event.event.object)}`
    case "Malformed":
      return `Malformed ${event.error.object} at ${event.resourceVersion ?? "-"}`
  }
}

/** Runs a watcher in the background, collecting its events as lines. */
const start = (fake: Fake, options: Omit<Watcher.Options<ConfigMap, unknown>, "resource"> = {}) =>
  Effect.gen(function* () {
    const seen: Array<string> = []
    const fiber = yield* Watcher.make({ resource: ConfigMap, namespace: "ns", ...options }).pipe(
      Stream.runForEach((event) => Effect.sync(() => seen.push(line(event)))),
      Effect.provideService(KubeClient, fake.client),
      Effect.forkScoped
    )
    yield* settle
    return { seen, fiber }
  })

const malformed = (name: string) =>
  new KubeErrors.DecodeError({
    kind: "ConfigMap",
    object: `ns/${name}`,
    message: `ConfigMap ns/${name}: Expected string, got 42\n  at ["data"]["x"]`
  })

describe("Watcher", () => {
  it.effect("lists (paginated, with the selector), then watches from the list's resourceVersion", () =>
    Effect.gen(function* () {
      const fake = yield* makeFake
      fake.setList(listed([cm("a", "1"), cm("b", "2")], "10"))
      const { seen } = yield* start(fake, { labelSelector: "app=x", fieldSelector: "metadata.name!=z", pageSize: 50 })
      assert.deepStrictEqual(fake.listCalls, [
        { namespace: "ns", labelSelector: "app=x", fieldSelector: "metadata.name!=z", limit: 50 }
      ])
      const watch = yield* Queue.take(fake.watches)
      const { timeoutSeconds, ...rest } = watch.options ?? {}
      assert.deepStrictEqual(rest, {
        namespace: "ns",
        labelSelector: "app=x",
        fieldSelector: "metadata.name!=z",
        resourceVersion: "10",
        allowWatchBookmarks: true
      })
      assert.isTrue(
        timeoutSeconds !== undefined && timeoutSeconds >= 300 && timeoutSeconds <= 600,
        `timeoutSeconds ${timeoutSeconds} should be within 5-10 minutes`
      )
      yield* offer(
        watch,
        { type: "MODIFIED", object: cm("a", "11") },
        { type: "BOOKMARK", resourceVersion: "12" },
        { type: "DELETED", object: cm("b", "13") }
      )
      assert.deepStrictEqual(seen, ["Listed(initial) [ns/a@1,ns/b@2] at 10", "MODIFIED ns/a@11", "DELETED ns/b@13"])
    })
  )

  it.effect("reports malformed objects from lists and watches, and moves on past them", () =>
    Effect.gen(function* () {
      const fake = yield* makeFake
      fake.setList(Effect.succeed({ items: [cm("a", "1")], resourceVersion: "10", malformed: [malformed("early")] }))
      const { seen } = yield* start(fake)
      const first = yield* Queue.take(fake.watches)
      yield* offer(first, { type: "MALFORMED", error: malformed("late"), resourceVersion: "21" })
      yield* Queue.end(first.events)
      const second = yield* Queue.take(fake.watches)
      assert.strictEqual(second.options?.resourceVersion, "21")
      assert.deepStrictEqual(seen, [
        "Malformed ns/early at -",
        "Listed(initial) [ns/a@1] at 10",
        "Malformed ns/late at 21"
      ])
    })
  )

  it.effect("resumes after a server-side timeout from the last event or bookmark, without relisting", () =>
    observed(() =>
      Effect.gen(function* () {
        const fake = yield* makeFake
        fake.setList(listed([], "10"))
        yield* start(fake)
        const first = yield* Queue.take(fake.watches)
        yield* offer(first, { type: "ADDED", object: cm("a", "11") }, { type: "BOOKMARK", resourceVersion: "20" })
        yield* Queue.end(first.events)
        const second = yield* Queue.take(fake.watches)
        assert.strictEqual(second.options?.resourceVersion, "20")
        yield* offer(second, { type: "BOOKMARK", resourceVersion: "" })
        yield* Queue.end(second.events)
        const third = yield* Queue.take(fake.watches)
        assert.strictEqual(third.options?.resourceVersion, "20", "an empty bookmark keeps the version")
        assert.strictEqual(fake.listCalls.length, 1)
        assert.strictEqual(yield* counter("reflector_watches_total", cacheLabel), 3)
        assert.strictEqual(yield* counter("reflector_watch_restarts_total", { ...cacheLabel, reason: "timeout" }), 2)
      })
    )
  )

  it.effect("relists at once on 410 Gone, then watches from the new list", () =>
    observed((logs) =>
      Effect.gen(function* () {
        const fake = yield* makeFake
        fake.setList(listed([cm("a", "1"), cm("b", "2")], "10"))
        const { seen } = yield* start(fake)
        const watch = yield* Queue.take(fake.watches)
        fake.setList(listed([cm("a", "5")], "30"))
        yield* Queue.fail(watch.events, gone)
        const next = yield* Queue.take(fake.watches)
        assert.strictEqual(next.options?.resourceVersion, "30")
        assert.deepStrictEqual(seen, ["Listed(initial) [ns/a@1,ns/b@2] at 10", "Listed(relist) [ns/a@5] at 30"])
        assert.isTrue(
          logs.includes("Info [ConfigMap] watch from resourceVersion 10: resourceVersion expired (410 Gone), relisting")
        )
        assert.strictEqual(yield* counter("reflector_relists_total", cacheLabel), 1)
        assert.strictEqual(yield* counter("reflector_lists_total", cacheLabel), 2)
        assert.strictEqual(yield* counter("reflector_watch_restarts_total", { ...cacheLabel, reason: "gone" }), 1)
        // A second 410 in a row is no longer retried at once.
        yield* Queue.fail(next.events, gone)
        yield* settle
        assert.strictEqual(fake.listCalls.length, 2)
        yield* TestClock.adjust("500 millis")
        assert.strictEqual(fake.listCalls.length, 3)
      })
    )
  )

  it.effect("reconnects after transient failures with doubling backoff, reset by a healthy watch", () =>
    observed((logs) =>
      Effect.gen(function* () {
        const fake = yield* makeFake
        fake.setList(listed([], "10"))
        yield* start(fake)
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
        assert.isTrue(
          logs.some((log) => log.startsWith("Warn [ConfigMap] watch failed (Transient): connection reset; retrying in"))
        )
      })
    )
  )

  it.effect("retries a failed list with backoff, logging what needs a human as an error", () =>
    observed((logs) =>
      Effect.gen(function* () {
        const fake = yield* makeFake
        fake.setList(Effect.fail(new KubeErrors.Forbidden({ message: "configmaps is forbidden", request: "GET" })))
        const { seen } = yield* start(fake)
        assert.strictEqual(fake.listCalls.length, 1)
        assert.isTrue(logs.some((log) => log.startsWith("Error [ConfigMap] list failed (Forbidden)")))
        fake.setList(listed([cm("a", "1")], "10"))
        yield* TestClock.adjust("250 millis")
        yield* Queue.take(fake.watches)
        assert.strictEqual(fake.listCalls.length, 2)
        assert.deepStrictEqual(seen, ["Listed(initial) [ns/a@1] at 10"])
      })
    )
  )

  it.effect("backs off when the server closes a watch at once without an event", () =>
    Effect.gen(function* () {
      const fake = yield* makeFake
      fake.setList(listed([], "10"))
      yield* start(fake)
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
        yield* start(fake, { watchTimeout: { min: "60 seconds", max: "60 seconds" } })
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
      yield* start(fake, { watchdog: "2 seconds" })
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

  it.effect("resumes from a snapshot without listing, and relists if its version has expired", () =>
    Effect.gen(function* () {
      const fake = yield* makeFake
      const { seen } = yield* start(fake, { resume: { resourceVersion: "5", objects: [cm("a", "1")] } })
      const watch = yield* Queue.take(fake.watches)
      assert.strictEqual(watch.options?.resourceVersion, "5")
      assert.strictEqual(fake.listCalls.length, 0)
      fake.setList(listed([], "40"))
      yield* Queue.fail(watch.events, gone)
      yield* Queue.take(fake.watches)
      assert.deepStrictEqual(seen, ["Listed(resume) [ns/a@1] at 5", "Listed(relist) [] at 40"])
    })
  )

  it.effect("stops watching when interrupted", () =>
    Effect.gen(function* () {
      const fake = yield* makeFake
      fake.setList(listed([], "10"))
      const { fiber } = yield* start(fake)
      const watch = yield* Queue.take(fake.watches)
      yield* Fiber.interrupt(fiber)
      yield* Queue.end(watch.events)
      yield* TestClock.adjust("1 minute")
      yield* noNewWatch(fake)
    })
  )
})
