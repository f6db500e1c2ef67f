import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import * as RateLimiter from "../src/client/RateLimiter.ts"

// Lets forked fibers run up to their next suspension point.
const settle = Effect.forEach(Array.from({ length: 10 }), () => Effect.yieldNow, { discard: true })

/** Whether `take` completes without the clock moving. */
const takesAtOnce = (limiter: RateLimiter.RateLimiter) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.forkChild(limiter.take)
    yield* settle
    const done = fiber.pollUnsafe() !== undefined
    return { done, fiber }
  })

describe("token bucket", () => {
  const options = { burst: 2, refillMillis: 100 }

  it("refills one token per interval, never beyond the burst", () => {
    assert.deepStrictEqual(RateLimiter.refill({ tokens: 0, at: 0 }, 150, options), { tokens: 1.5, at: 150 })
    assert.deepStrictEqual(RateLimiter.refill({ tokens: 1, at: 0 }, 10_000, options), { tokens: 2, at: 10_000 })
    // A clock that went backwards earns nothing and does not rewind the bucket.
    assert.deepStrictEqual(RateLimiter.refill({ tokens: 1, at: 500 }, 400, options), { tokens: 1, at: 500 })
  })

  it("tryTake takes whole tokens only and never goes negative", () => {
    const [first, one] = RateLimiter.tryTake(RateLimiter.full(options, 0), 0, options)
    const [second, none] = RateLimiter.tryTake(one, 0, options)
    const [third, stillNone] = RateLimiter.tryTake(none, 99, options)
    assert.deepStrictEqual([first, second, third], [true, true, false])
    assert.strictEqual(stillNone.tokens, 0.99)
    const [fourth] = RateLimiter.tryTake(stillNone, 100, options)
    assert.isTrue(fourth)
  })

  it("reserve goes into debt and returns the wait that pays it off", () => {
    const [w1, b1] = RateLimiter.reserve(RateLimiter.full(options, 0), 0, options)
    const [w2, b2] = RateLimiter.reserve(b1, 0, options)
    const [w3, b3] = RateLimiter.reserve(b2, 0, options)
    const [w4, b4] = RateLimiter.reserve(b3, 0, options)
    assert.deepStrictEqual([w1, w2, w3, w4], [0, 0, 100, 200])
    assert.strictEqual(b4.tokens, -2)
  })
})

describe("RateLimiter", () => {
  it.effect("lets a burst through at once, then spaces requests 1/qps apart", () =>
    Effect.gen(function* () {
      const limiter = yield* RateLimiter.make({ qps: 10, burst: 3 })
      for (const _ of [1, 2, 3]) assert.isTrue((yield* takesAtOnce(limiter)).done)
      const fourth = yield* takesAtOnce(limiter)
      assert.isFalse(fourth.done, "the fourth waits for a token")
      yield* TestClock.adjust("99 millis")
      assert.isUndefined(fourth.fiber.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(fourth.fiber)
      // The fifth reserved behind the fourth: another 100 ms.
      const fifth = yield* takesAtOnce(limiter)
      assert.isFalse(fifth.done)
      yield* TestClock.adjust("100 millis")
      yield* Fiber.join(fifth.fiber)
    })
  )

  it.effect("refills while idle, never beyond the burst", () =>
    Effect.gen(function* () {
      const limiter = yield* RateLimiter.make({ qps: 10, burst: 2 })
      for (const _ of [1, 2]) assert.isTrue((yield* takesAtOnce(limiter)).done)
      yield* TestClock.adjust("1 hour")
      // An hour idle saves up two tokens, not 36000.
      for (const _ of [1, 2]) assert.isTrue((yield* takesAtOnce(limiter)).done)
      const third = yield* takesAtOnce(limiter)
      assert.isFalse(third.done)
      yield* TestClock.adjust("100 millis")
      yield* Fiber.join(third.fiber)
    })
  )
})
