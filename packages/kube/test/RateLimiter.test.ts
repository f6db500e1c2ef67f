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
