import { Clock, Duration, Effect } from "effect"

/**
 * The token bucket, pure: `burst` tokens at most, one more every `refillMillis`.
 * Two policies use it: {@link reserve} (client-go's client limiter, {@link make}:
 * wait for a token) and {@link tryTake} (drop what exceeds the rate, e.g. the
 * operator's per-object Event spam filter). Time is passed in, so callers use
 * the Effect `Clock` and tests the `TestClock`.
 */
export interface TokenBucket {
  /** Tokens saved up at `at`; negative when reservations are waiting for future tokens. */
  readonly tokens: number
  /** When `tokens` was computed (epoch millis). */
  readonly at: number
}

export interface BucketOptions {
  /** Tokens a full bucket holds: how many requests may go at once after a quiet period. */
  readonly burst: number
  /** Millis to earn one token. */
  readonly refillMillis: number
}

/**
 * A full bucket at time `now`.
 *
 * @example
 * ```ts
 * import { RateLimiter } from "@db-backup-operator/kube"
 *
 * const bucket = RateLimiter.full({ burst: 3, refillMillis: 1000 }, Date.now()) // { tokens: 3, at: now }
 * ```
 */
export const full = (options: BucketOptions, now: number): TokenBucket => ({ tokens: options.burst, at: now })

/**
 * The bucket at time `now`: refilled for the time elapsed, never beyond `burst`.
 *
 * @example
 * ```ts
 * import { RateLimiter } from "@db-backup-operator/kube"
 *
 * RateLimiter.refill({ tokens: 0, at: 0 }, 2500, { burst: 3, refillMillis: 1000 }) // { tokens: 2.5, at: 2500 }
 * ```
 */
export const refill = (bucket: TokenBucket, now: number, options: BucketOptions): TokenBucket => ({
  tokens: Math.min(options.burst, bucket.tokens + Math.max(0, now - bucket.at) / options.refillMillis),
  at: Math.max(now, bucket.at)
})

/**
 * Reserves a token at `now`: the millis to wait for it (0 if one was saved up)
 * and the new bucket. Tokens may go negative: a reservation for the future,
 * paid for by waiting, so requests are spread out instead of rejected.
 *
 * @example
 * ```ts
 * import { RateLimiter } from "@db-backup-operator/kube"
 *
 * const options = { burst: 1, refillMillis: 100 }
 * const [wait, bucket] = RateLimiter.reserve(RateLimiter.full(options, 0), 0, options) // wait 0
 * const [next] = RateLimiter.reserve(bucket, 0, options) // wait 100
 * ```
 */
export const reserve = (
  bucket: TokenBucket,
  now: number,
  options: BucketOptions
): readonly [waitMillis: number, bucket: TokenBucket] => {
  const current = refill(bucket, now, options)
  const tokens = current.tokens - 1
  return [tokens >= 0 ? 0 : -tokens * options.refillMillis, { tokens, at: current.at }]
}

/**
 * Takes a token at `now` if one is available: whether it was taken, and the new bucket.
 *
 * @example
 * ```ts
 * import { RateLimiter } from "@db-backup-operator/kube"
 *
 * const options = { burst: 1, refillMillis: 1000 }
 * const [first, bucket] = RateLimiter.tryTake(RateLimiter.full(options, 0), 0, options) // true
 * const [second] = RateLimiter.tryTake(bucket, 500, options) // false: half a token
 * ```
 */
export const tryTake = (
  bucket: TokenBucket,
  now: number,
  options: BucketOptions
): readonly [taken: boolean, bucket: TokenBucket] => {
  const current = refill(bucket, now, options)
  return current.tokens >= 1 ? [true, { tokens: current.tokens - 1, at: current.at }] : [false, current]
}

/**
 * A client-side rate limiter (client-go's default): `qps` tokens a second, at
 * most `burst` saved up. Callers reserve a token and wait for it.
 */
export interface RateLimiter {
  readonly take: Effect.Effect<void>
}

export interface Options {
  readonly qps: number
  readonly burst: number
}

/**
 * A rate limiter over one {@link TokenBucket}, reading time from the `Clock`.
 *
 * @example
 * ```ts
 * import { RateLimiter } from "@db-backup-operator/kube"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const limiter = yield* RateLimiter.make({ qps: 50, burst: 100 })
 *   yield* limiter.take // waits when the bucket is empty
 * })
 * ```
 */
export const make = (options: Options): Effect.Effect<RateLimiter> =>
  Effect.gen(function* () {
    const bucketOptions: BucketOptions = { burst: options.burst, refillMillis: 1000 / options.qps }
    // Held in a variable, not a Ref: a reservation reads the clock and updates the bucket in one
    // synchronous step, so no other fiber can come between (JavaScript runs one at a time).
    let bucket = full(bucketOptions, yield* Clock.currentTimeMillis)
    const take = Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const [waitMillis, next] = reserve(bucket, now, bucketOptions)
      bucket = next
      return waitMillis > 0 ? Effect.sleep(Duration.millis(waitMillis)) : Effect.void
    })
    return { take }
  })
