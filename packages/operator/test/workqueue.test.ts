import { Action, TerminalError } from "@db-backup-operator/operator"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Duration, Effect, Fiber, Metric, Option } from "effect"
import { TestClock } from "effect/testing"
import * as Backoff from "../src/backoff/Backoff.ts"
import * as WorkQueue from "../src/workqueue/WorkQueue.ts"
import * as WorkQueueMetrics from "../src/workqueue/WorkQueueMetrics.ts"

// Lets forked fibers run up to their next suspension point.
const settle = Effect.forEach(Array.from({ length: 10 }), () => Effect.yieldNow, { discard: true })

const takeNow = (queue: WorkQueue.WorkQueue) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.forkChild(queue.take)
    yield* settle
    const exit = fiber.pollUnsafe()
    // A take still waiting would steal the next key: stop it.
    if (exit === undefined) yield* Fiber.interrupt(fiber)
    return exit === undefined ? Option.none() : Option.some(exit)
  })

// A private metric registry, so counts do not leak between tests.
const freshMetrics = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.provideService(effect, Metric.MetricRegistry, new Map())

describe("WorkQueue", () => {
  it.effect("deduplicates a key that is already waiting", () =>
    freshMetrics(
      Effect.gen(function* () {
        const queue = yield* WorkQueue.make({ name: "dedupe" })
        yield* queue.add("ns/a")
        yield* queue.add("ns/a")
        yield* queue.add("ns/b")
        yield* queue.add("ns/a")
        assert.strictEqual(yield* queue.depth, 2)
        assert.deepStrictEqual(yield* queue.take, Option.some("ns/a"))
        assert.deepStrictEqual(yield* queue.take, Option.some("ns/b"))
        assert.strictEqual(yield* queue.depth, 0)
        const adds = yield* Metric.value(WorkQueueMetrics.forQueue("dedupe").adds)
        assert.strictEqual(adds.count, 2)
      })
    )
  )

  it.effect("re-queues a key added while processing exactly once, after done", () =>
    Effect.gen(function* () {
      const queue = yield* WorkQueue.make({ name: "dirty" })
      yield* queue.add("ns/a")
      assert.deepStrictEqual(yield* queue.take, Option.some("ns/a"))
      yield* queue.add("ns/a")
      yield* queue.add("ns/a")
      yield* queue.add("ns/a")
      // Waiting (dirty) but not takeable while still processing.
      assert.strictEqual(yield* queue.depth, 1)
      const blocked = yield* takeNow(queue)
      assert.isTrue(Option.isNone(blocked))
      yield* queue.done("ns/a")
      assert.deepStrictEqual(yield* queue.take, Option.some("ns/a"))
      yield* queue.done("ns/a")
      assert.strictEqual(yield* queue.depth, 0)
      assert.isTrue(Option.isNone(yield* takeNow(queue)))
    })
  )

  it.effect("never processes one key on two workers at once", () =>
    Effect.gen(function* () {
      const queue = yield* WorkQueue.make({ name: "exclusive" })
      const active = new Map<string, number>()
      let maxActivePerKey = 0
      let maxActiveTotal = 0
      const runs = new Map<string, number>()
      const handler = (key: string) =>
        Effect.gen(function* () {
          const now = (active.get(key) ?? 0) + 1
          active.set(key, now)
          runs.set(key, (runs.get(key) ?? 0) + 1)
          maxActivePerKey = Math.max(maxActivePerKey, now)
          maxActiveTotal = Math.max(
            maxActiveTotal,
            [...active.values()].reduce((a, b) => a + b, 0)
          )
          yield* Effect.sleep("1 second")
          active.set(key, (active.get(key) ?? 1) - 1)
          return Action.done
        })
      yield* Effect.forkChild(queue.run(4, handler))
      for (const key of ["a", "b", "c"]) yield* queue.add(key)
      yield* settle
      // Every key is processing; hammer them with adds.
      for (let i = 0; i < 10; i++) for (const key of ["a", "b", "c"]) yield* queue.add(key)
      yield* TestClock.adjust("1 second")
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* settle
      yield* TestClock.adjust("1 second")
      assert.strictEqual(maxActivePerKey, 1)
      assert.strictEqual(maxActiveTotal, 3)
      // Once for the first add, once more for all the adds made while processing.
      assert.deepStrictEqual(Object.fromEntries(runs), { a: 2, b: 2, c: 2 })
      assert.strictEqual(yield* queue.processing, 0)
    })
  )

  it.effect("backs off 5ms, 10ms, 20ms ... per key on failure, and resets on success", () =>
    Effect.gen(function* () {
      const queue = yield* WorkQueue.make({ name: "backoff" })
      const attempts: Array<number> = []
      const handler = (_key: string) =>
        Effect.gen(function* () {
          attempts.push(yield* Clock.currentTimeMillis)
          if (attempts.length <= 5) return yield* Effect.fail("boom" as const)
          return Action.done
        })
      yield* Effect.forkChild(queue.run(2, handler))
      yield* queue.add("ns/a")
      yield* settle
      for (const step of [5, 10, 20, 40, 80]) {
        yield* TestClock.adjust(step - 1)
        yield* settle
        const before = attempts.length
        yield* TestClock.adjust(1)
        yield* settle
        assert.strictEqual(attempts.length, before + 1, `retry after ${step} ms`)
      }
      const delays = attempts.slice(1).map((t, i) => t - (attempts[i] ?? 0))
      assert.deepStrictEqual(delays, [5, 10, 20, 40, 80])
      // The sixth attempt succeeded: the failure count is reset.
      assert.strictEqual(yield* queue.retries("ns/a"), 0)
    })
  )

  it.effect("counts retries per key and forgets them", () =>
    Effect.gen(function* () {
      const queue = yield* WorkQueue.make({ name: "retries" })
      yield* queue.requeueWithBackoff("ns/a")
      yield* queue.requeueWithBackoff("ns/a")
      yield* queue.requeueWithBackoff("ns/b")
      assert.strictEqual(yield* queue.retries("ns/a"), 2)
      assert.strictEqual(yield* queue.retries("ns/b"), 1)
      yield* queue.forget("ns/a")
      assert.strictEqual(yield* queue.retries("ns/a"), 0)
      assert.strictEqual(yield* queue.retries("ns/b"), 1)
    })
  )

  it("caps the backoff at 1000 s", () => {
    const backoff = Backoff.make()
    const delays = Array.from({ length: 40 }, () => Duration.toMillis(backoff.next("k")))
    assert.deepStrictEqual(delays.slice(0, 4), [5, 10, 20, 40])
    // 5 ms * 2^17 = 655.36 s is the last step below the cap.
    assert.strictEqual(delays[17], 655_360)
    assert.strictEqual(delays[18], 1_000_000)
    assert.isTrue(delays.every((d) => d <= 1_000_000))
    assert.strictEqual(Duration.toMillis(backoff.next("other")), 5)
    assert.strictEqual(backoff.retries("k"), 40)
  })

  it.effect("does not retry a terminal error", () =>
    Effect.gen(function* () {
      const queue = yield* WorkQueue.make({ name: "terminal" })
      let calls = 0
      const handler = (_key: string) =>
        Effect.suspend(() => {
          calls++
          return Effect.fail(new TerminalError({ reason: "InvalidSpec", message: "spec.size: too big" }))
        })
      yield* Effect.forkChild(queue.run(1, handler))
      yield* queue.add("ns/a")
      yield* settle
      yield* TestClock.adjust("1 hour")
      assert.strictEqual(calls, 1)
      assert.strictEqual(yield* queue.retries("ns/a"), 0)
      assert.strictEqual(yield* queue.pendingTimers, 0)
      // A change of the object adds the key again.
      yield* queue.add("ns/a")
      yield* settle
      assert.strictEqual(calls, 2)
    })
  )

  it.effect("does not retry a handler that was interrupted", () =>
    Effect.gen(function* () {
      const queue = yield* WorkQueue.make({ name: "interrupted" })
      let calls = 0
      const handler = (_key: string) =>
        Effect.suspend(() => {
          calls++
          return Effect.interrupt
        })
      yield* Effect.forkChild(queue.run(1, handler))
      yield* queue.add("ns/a")
      yield* settle
      yield* TestClock.adjust("1 hour")
      assert.strictEqual(calls, 1)
      assert.strictEqual(yield* queue.retries("ns/a"), 0)
      assert.strictEqual(yield* queue.pendingTimers, 0)
      assert.strictEqual(yield* queue.depth, 0)
    })
  )

  it.effect("requeueAfter keeps one timer per key and the earliest deadline", () =>
    Effect.gen(function* () {
      const queue = yield* WorkQueue.make({ name: "timers" })
      yield* queue.requeueAfter("ns/a", "10 seconds")
      yield* queue.requeueAfter("ns/a", "5 seconds")
      yield* queue.requeueAfter("ns/a", "20 seconds")
      assert.strictEqual(yield* queue.pendingTimers, 1)
      yield* TestClock.adjust(4_999)
      assert.strictEqual(yield* queue.depth, 0)
      yield* TestClock.adjust(1)
      assert.strictEqual(yield* queue.depth, 1)
      assert.strictEqual(yield* queue.pendingTimers, 0)
      assert.deepStrictEqual(yield* queue.take, Option.some("ns/a"))
      yield* queue.done("ns/a")
      // The later requests were folded into the 5 s one: nothing fires at 10 s or 20 s.
      yield* TestClock.adjust("30 seconds")
      assert.strictEqual(yield* queue.depth, 0)
      const adds = yield* Metric.value(WorkQueueMetrics.forQueue("timers").adds)
      assert.strictEqual(adds.count, 1)
    })
  )

  it.effect("an immediate add of a key with a pending timer adds it now; the timer then dedupes", () =>
    Effect.gen(function* () {
      const queue = yield* WorkQueue.make({ name: "timer-add" })
      yield* queue.requeueAfter("ns/a", "10 seconds")
      yield* queue.requeueAfter("ns/b", "10 seconds")
      yield* queue.add("ns/a")
      assert.strictEqual(yield* queue.depth, 1)
      assert.strictEqual(yield* queue.pendingTimers, 2)
      yield* TestClock.adjust("10 seconds")
      // a was still waiting, so its timer changed nothing; b arrived.
      assert.strictEqual(yield* queue.depth, 2)
      assert.deepStrictEqual(yield* queue.take, Option.some("ns/a"))
      assert.deepStrictEqual(yield* queue.take, Option.some("ns/b"))
      // A requeue with no delay is an immediate add.
      yield* queue.requeueAfter("ns/c", Duration.zero)
      assert.strictEqual(yield* queue.depth, 1)
      assert.strictEqual(yield* queue.pendingTimers, 0)
    })
  )

  it.effect("a handler's requeueAfter result schedules the key again", () =>
    Effect.gen(function* () {
      const queue = yield* WorkQueue.make({ name: "result-requeue" })
      const seen: Array<number> = []
      yield* Effect.forkChild(
        queue.run(1, () =>
          Effect.map(Clock.currentTimeMillis, (t) => {
            seen.push(t)
            return Action.requeueAfter("1 minute")
          })
        )
      )
      yield* queue.add("ns/a")
      yield* settle
      yield* TestClock.adjust("1 minute")
      yield* settle
      yield* TestClock.adjust("1 minute")
      yield* settle
      assert.deepStrictEqual(seen, [0, 60_000, 120_000])
    })
  )

  it.effect("shutdown stops intake, lets in-flight work finish, then take ends", () =>
    Effect.gen(function* () {
      const queue = yield* WorkQueue.make({ name: "drain" })
      const finished: Array<string> = []
      const runFiber = yield* Effect.forkChild(
        queue.run(2, (key) =>
          Effect.sleep("10 seconds").pipe(
            Effect.tap(() => Effect.sync(() => finished.push(key))),
            Effect.as(Action.done)
          )
        )
      )
      yield* queue.add("ns/a")
      yield* settle
      assert.strictEqual(yield* queue.processing, 1)
      const shutdown = yield* Effect.forkChild(queue.shutdown())
      yield* settle
      assert.isTrue(yield* queue.isShutdown)
      yield* queue.add("ns/b")
      yield* queue.requeueAfter("ns/c", "1 second")
      assert.strictEqual(yield* queue.depth, 0)
      assert.strictEqual(yield* queue.pendingTimers, 0)
      yield* TestClock.adjust("10 seconds")
      assert.isTrue(yield* Fiber.join(shutdown))
      assert.deepStrictEqual(finished, ["ns/a"])
      yield* Fiber.join(runFiber)
      assert.deepStrictEqual(yield* queue.take, Option.none())
    })
  )

  it.effect("shutdown reports a drain that runs out of time", () =>
    Effect.gen(function* () {
      // drainTimeout 0: the test's own teardown must not wait for the stuck handler.
      const queue = yield* WorkQueue.make({ name: "drain-timeout", drainTimeout: 0 })
      yield* Effect.forkChild(queue.run(1, () => Effect.never))
      yield* queue.add("ns/a")
      yield* settle
      const shutdown = yield* Effect.forkChild(queue.shutdown({ timeout: "1 second" }))
      yield* TestClock.adjust("1 second")
      assert.isFalse(yield* Fiber.join(shutdown))
    })
  )

  it.effect("interrupting run drains: the in-flight handler finishes first", () =>
    Effect.gen(function* () {
      const queue = yield* WorkQueue.make({ name: "drain-interrupt", drainTimeout: "1 minute" })
      const events: Array<string> = []
      const runFiber = yield* Effect.forkChild(
        queue.run(1, (key) =>
          Effect.sleep("5 seconds").pipe(
            Effect.tap(() => Effect.sync(() => events.push(`finished ${key}`))),
            Effect.onInterrupt(() => Effect.sync(() => events.push(`interrupted ${key}`))),
            Effect.as(Action.done)
          )
        )
      )
      yield* queue.add("ns/a")
      yield* settle
      const interrupting = yield* Effect.forkChild(Fiber.interrupt(runFiber))
      yield* settle
      yield* queue.add("ns/b")
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.join(interrupting)
      assert.deepStrictEqual(events, ["finished ns/a"])
    })
  )

  it.effect("interrupting run interrupts handlers that outlive the drain timeout", () =>
    Effect.gen(function* () {
      const queue = yield* WorkQueue.make({ name: "drain-interrupt-timeout", drainTimeout: "1 second" })
      const events: Array<string> = []
      const runFiber = yield* Effect.forkChild(
        queue.run(1, (key) =>
          Effect.never.pipe(
            Effect.onInterrupt(() => Effect.sync(() => events.push(`interrupted ${key}`))),
            Effect.as(Action.done)
          )
        )
      )
      yield* queue.add("ns/a")
      yield* settle
      const interrupting = yield* Effect.forkChild(Fiber.interrupt(runFiber))
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(interrupting)
      assert.deepStrictEqual(events, ["interrupted ns/a"])
      assert.strictEqual(yield* queue.processing, 0)
    })
  )

  it.effect("records controller-runtime's metrics under the queue name", () =>
    freshMetrics(
      Effect.gen(function* () {
        const queue = yield* WorkQueue.make({ name: "metrics" })
        const metrics = WorkQueueMetrics.forQueue("metrics")
        yield* queue.add("ns/a")
        yield* queue.add("ns/b")
        assert.strictEqual((yield* Metric.value(metrics.depth)).value, 2)
        yield* TestClock.adjust("2 seconds")
        assert.deepStrictEqual(yield* queue.take, Option.some("ns/a"))
        assert.strictEqual((yield* Metric.value(metrics.depth)).value, 1)
        yield* TestClock.adjust("3 seconds")
        assert.strictEqual((yield* Metric.value(metrics.unfinishedWork)).value, 3)
        assert.strictEqual((yield* Metric.value(metrics.longestRunningProcessor)).value, 3)
        yield* queue.done("ns/a")
        yield* queue.requeueWithBackoff("ns/a")
        assert.deepInclude(yield* Metric.value(metrics.queueDuration), { count: 1, sum: 2 })
        assert.deepInclude(yield* Metric.value(metrics.workDuration), { count: 1, sum: 3 })
        assert.strictEqual((yield* Metric.value(metrics.adds)).count, 2)
        assert.strictEqual((yield* Metric.value(metrics.retries)).count, 1)
        // Exposed under controller-runtime's names with the queue name as label.
        const ids = (yield* Metric.snapshot)
          .filter((m) => m.attributes?.name === "metrics")
          .map((m) => m.id)
          .sort()
        assert.deepStrictEqual(ids, [
          "workqueue_adds_total",
          "workqueue_depth",
          "workqueue_longest_running_processor_seconds",
          "workqueue_queue_duration_seconds",
          "workqueue_retries_total",
          "workqueue_unfinished_work_seconds",
          "workqueue_work_duration_seconds"
        ])
      })
    )
  )
})
