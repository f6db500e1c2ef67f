import { Lru } from "./lru.ts"

interface Bucket {
  readonly tokens: number
  readonly updatedAt: number
}

/**
 * One token bucket per key (at most `capacity` keys remembered): `burst` tokens,
 * refilled one per `refillMillis`. Time is passed in, so callers use the Effect
 * `Clock` and tests the `TestClock`.
 *
 * @example
 * ```ts
 * const limiter = new KeyedTokenBucket({ burst: 25, refillMillis: 300_000, capacity: 4096 })
 * if (limiter.take("uid-1", now)) write()
 * ```
 */
export class KeyedTokenBucket {
  readonly #burst: number
  readonly #refillMillis: number
  readonly #buckets: Lru<string, Bucket>

  constructor(options: { readonly burst: number; readonly refillMillis: number; readonly capacity: number }) {
    this.#burst = options.burst
    this.#refillMillis = options.refillMillis
    this.#buckets = new Lru(options.capacity)
  }

  /** Takes a token for `key` at time `now` (millis); false when the bucket is empty. */
  take(key: string, now: number): boolean {
    const bucket = this.#buckets.get(key) ?? { tokens: this.#burst, updatedAt: now }
    const refilled = Math.min(this.#burst, bucket.tokens + Math.max(0, now - bucket.updatedAt) / this.#refillMillis)
    const allowed = refilled >= 1
    this.#buckets.set(key, { tokens: allowed ? refilled - 1 : refilled, updatedAt: now })
    return allowed
  }
}
