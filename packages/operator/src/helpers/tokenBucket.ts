import { RateLimiter } from "@db-backup-operator/kube"
import { Lru } from "./lru.ts"

/**
 * One token bucket ({@link RateLimiter.tryTake}) per key, at most `capacity`
 * keys remembered (the least recently used are forgotten, i.e. start full
 * again): `burst` tokens, refilled one per `refillMillis`. Time is passed in,
 * so callers use the Effect `Clock` and tests the `TestClock`.
 *
 * @example
 * ```ts
 * import { KeyedTokenBucket } from "./tokenBucket.ts"
 *
 * const limiter = new KeyedTokenBucket({ burst: 25, refillMillis: 300_000, capacity: 4096 })
 * const allowed = limiter.take("uid-1", Date.now()) // false once uid-1 spent its 25 tokens
 * ```
 */
export class KeyedTokenBucket {
  readonly #options: RateLimiter.BucketOptions
  readonly #buckets: Lru<string, RateLimiter.TokenBucket>

  constructor(options: { readonly burst: number; readonly refillMillis: number; readonly capacity: number }) {
    this.#options = { burst: options.burst, refillMillis: options.refillMillis }
    this.#buckets = new Lru(options.capacity)
  }

  /** Takes a token for `key` at time `now` (millis); false when the bucket is empty. */
  take(key: string, now: number): boolean {
    const bucket = this.#buckets.get(key) ?? RateLimiter.full(this.#options, now)
    const [taken, next] = RateLimiter.tryTake(bucket, now, this.#options)
    this.#buckets.set(key, next)
    return taken
  }
}
