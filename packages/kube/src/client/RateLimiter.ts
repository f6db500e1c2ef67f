import { Clock, Duration, Effect, SynchronizedRef } from "effect"

/**
 * A client-side token bucket (client-go's default limiter): `qps` tokens a second,
 * at most `burst` saved up. Callers reserve a token and wait for it, so requests
 * are spread out instead of rejected.
 *
 * @example
 * ```ts
 * const limiter = yield* RateLimiter.make({ qps: 50, burst: 100 })
 * yield* limiter.take // waits when the bucket is empty
 * ```
 */
export interface RateLimiter {
  readonly take: Effect.Effect<void>
}

export interface Options {
  readonly qps: number
  readonly burst: number
}

export const make = (options: Options): Effect.Effect<RateLimiter> =>
  Effect.gen(function* () {
    const start = yield* Clock.currentTimeMillis
    const state = yield* SynchronizedRef.make({ tokens: options.burst, at: start })
    const reserve = SynchronizedRef.modifyEffect(state, (current) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const refilled = Math.min(options.burst, current.tokens + ((now - current.at) / 1000) * options.qps)
        // Tokens may go negative: a reservation for the future, paid for by waiting.
        const tokens = refilled - 1
        const waitMillis = tokens >= 0 ? 0 : (-tokens / options.qps) * 1000
        return [waitMillis, { tokens, at: now }] as const
      })
    )
    const take = Effect.flatMap(reserve, (waitMillis) =>
      waitMillis > 0 ? Effect.sleep(Duration.millis(waitMillis)) : Effect.void
    )
    return { take }
  })
