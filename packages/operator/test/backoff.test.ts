import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Schedule } from "effect"
import * as Backoff from "../src/backoff/Backoff.ts"

const millis = (duration: Duration.Duration) => Duration.toMillis(duration)

/** The first `count` delays of a schedule, stepped by hand. */
const delays = (schedule: Schedule.Schedule<unknown>, count: number) =>
  Effect.gen(function* () {
    const step = yield* Schedule.toStep(schedule)
    const out: Array<number> = []
    for (let i = 0; i < count; i++) out.push(millis((yield* step(0, undefined))[1]))
    return out
  })

describe("Backoff.delay", () => {
  it("doubles from the initial delay up to the cap", () => {
    const reconnect = (attempt: number) => millis(Backoff.delay(attempt, Backoff.reconnectDefaults))
    assert.deepStrictEqual([1, 2, 3, 4].map(reconnect), [200, 400, 800, 1600])
    assert.strictEqual(reconnect(8), 25_600)
    assert.strictEqual(reconnect(9), 30_000)
    // 2 ** 5000 is Infinity: still capped.
    assert.strictEqual(reconnect(5000), 30_000)
    assert.strictEqual(millis(Backoff.delay(3, { initial: "1 second", max: "3 seconds" })), 3000)
  })

  it("defaults to controller-runtime's 5 ms doubling to 1000 s", () => {
    assert.deepStrictEqual(
      [1, 2, 3].map((n) => millis(Backoff.delay(n))),
      [5, 10, 20]
    )
    assert.strictEqual(millis(Backoff.delay(18)), 655_360)
    assert.strictEqual(millis(Backoff.delay(19)), 1_000_000)
  })
})

describe("Backoff.schedule", () => {
  it.effect("without jitter, steps through the delays exactly", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual(
        yield* delays(Backoff.schedule({ initial: "100 millis", max: "1 second" }), 6),
        [100, 200, 400, 800, 1000, 1000]
      )
    })
  )

  it.effect("with jitter, scales each delay into [0.8, 1.2), after the cap", () =>
    Effect.gen(function* () {
      const jittered = yield* delays(Backoff.schedule({ ...Backoff.reconnectDefaults, jitter: true }), 12)
      const exact = Array.from({ length: 12 }, (_, i) => millis(Backoff.delay(i + 1, Backoff.reconnectDefaults)))
      jittered.forEach((delay, i) => {
        const base = exact[i] ?? 0
        assert.isTrue(delay >= base * 0.8 && delay < base * 1.2, `attempt ${i + 1}: ${delay} vs ${base}`)
      })
      // Past the cap the delays still differ: clients restarted together do not return together.
      assert.isAbove(new Set(jittered.slice(8)).size, 1)
    })
  )
})

describe("Backoff.driver", () => {
  it.effect("counts attempts and starts over on reset", () =>
    Effect.gen(function* () {
      const driver = yield* Backoff.driver(Backoff.schedule({ initial: "100 millis", max: "1 second" }))
      assert.deepStrictEqual(
        [millis(yield* driver.next), millis(yield* driver.next), millis(yield* driver.next)],
        [100, 200, 400]
      )
      assert.strictEqual(yield* driver.attempts, 3)
      yield* driver.reset
      assert.strictEqual(yield* driver.attempts, 0)
      assert.strictEqual(millis(yield* driver.next), 100)
    })
  )

  it.effect("keeps the last delay once the schedule is done: a reconnect loop never gives up", () =>
    Effect.gen(function* () {
      const driver = yield* Backoff.driver(
        Backoff.schedule({ initial: "100 millis", max: "1 second" }).pipe(Schedule.upTo({ times: 2 }))
      )
      const seen = [yield* driver.next, yield* driver.next, yield* driver.next, yield* driver.next].map(millis)
      assert.deepStrictEqual(seen, [100, 200, 200, 200])
    })
  )
})

describe("Backoff.make (per key)", () => {
  it("backs off each key on its own, until forgotten", () => {
    const backoff = Backoff.make({ initial: "1 second", max: "1 minute" })
    assert.deepStrictEqual([backoff.next("a"), backoff.next("a"), backoff.next("b")].map(millis), [1000, 2000, 1000])
    assert.strictEqual(backoff.retries("a"), 2)
    backoff.forget("a")
    assert.strictEqual(backoff.retries("a"), 0)
    assert.strictEqual(millis(backoff.next("a")), 1000)
    assert.strictEqual(backoff.retries("b"), 1)
  })
})
