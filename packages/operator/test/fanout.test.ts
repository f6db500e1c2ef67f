import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Scope, Stream } from "effect"
import * as FanOut from "../src/cache/FanOut.ts"

// Lets forked fibers run up to their next suspension point.
const settle = Effect.forEach(Array.from({ length: 20 }), () => Effect.yieldNow, { discard: true })

/** A FanOut over a list of numbers; `add` appends one and publishes it. */
const numbers = Effect.gen(function* () {
  const state: Array<number> = []
  // Snapshot and update both yield in the middle, so that without the FanOut's
  // lock a subscriber could interleave with a publication.
  const fanOut = yield* FanOut.make<number>(
    Effect.andThen(
      Effect.yieldNow,
      Effect.sync(() => [...state])
    )
  )
  const add = (n: number) =>
    fanOut.publish(Effect.sync(() => state.push(n)).pipe(Effect.andThen(Effect.yieldNow), Effect.as([n])))
  return { fanOut, add }
})

const collect = (stream: Stream.Stream<number>) =>
  Effect.gen(function* () {
    const seen: Array<number> = []
    const fiber = yield* stream.pipe(
      Stream.runForEach((n) => Effect.sync(() => seen.push(n))),
      Effect.forkScoped
    )
    yield* settle
    return { seen, fiber }
  })

describe("FanOut", () => {
  it.effect("replays the snapshot to a new subscriber, then live items; without replay only live ones", () =>
    Effect.gen(function* () {
      const { fanOut, add } = yield* numbers
      assert.deepStrictEqual(yield* add(1), [1])
      yield* add(2)
      const replayed = yield* collect(fanOut.subscribe())
      const live = yield* collect(fanOut.subscribe({ replay: false }))
      yield* add(3)
      yield* settle
      assert.deepStrictEqual(replayed.seen, [1, 2, 3])
      assert.deepStrictEqual(live.seen, [3])
    })
  )

  it.effect("gives every subscriber each item exactly once, in order, under concurrent publishing", () =>
    Effect.gen(function* () {
      const { fanOut, add } = yield* numbers
      const count = 200
      const expected = Array.from({ length: count }, (_, i) => i + 1)
      const publisher = yield* Effect.forkChild(Effect.forEach(expected, add, { discard: true }))
      // Subscribers join at staggered moments while the publisher runs.
      const subscribers = yield* Effect.forEach(
        Array.from({ length: 25 }, (_, i) => i),
        (i) =>
          Effect.forkChild(
            Effect.forEach(Array.from({ length: i * 13 }), () => Effect.yieldNow, { discard: true }).pipe(
              Effect.andThen(Stream.runCollect(fanOut.subscribe().pipe(Stream.take(count))))
            )
          )
      )
      yield* Fiber.join(publisher)
      for (const subscriber of subscribers) {
        assert.deepStrictEqual(Array.from(yield* Fiber.join(subscriber)), expected)
      }
    })
  )

  it.effect("ends every subscriber's stream when its Scope closes", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const { fanOut, add } = yield* Scope.provide(numbers, scope)
      yield* add(1)
      const { seen, fiber } = yield* collect(fanOut.subscribe())
      yield* Scope.close(scope, Exit.void)
      assert.isTrue(Exit.isSuccess(yield* Fiber.await(fiber)))
      assert.deepStrictEqual(seen, [1])
    })
  )
})
