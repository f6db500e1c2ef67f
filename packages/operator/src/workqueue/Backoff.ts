import { Duration } from "effect"

/**
 * Per-key exponential failure backoff, as controller-runtime's
 * `ItemExponentialFailureRateLimiter`: the n-th consecutive failure of a key
 * waits `base * 2^(n-1)`, capped at `max`. Keys are independent, so one broken
 * object does not slow down the others.
 *
 * Plain mutable state: the work queue only touches it inside `Effect.sync`, and
 * JavaScript runs those blocks one at a time.
 */
export interface Backoff {
  /** Records one more failure of `key` and returns how long to wait before retrying it. */
  readonly next: (key: string) => Duration.Duration
  /** Consecutive failures recorded for `key` since it last succeeded. */
  readonly retries: (key: string) => number
  /** Clears the failure count of `key` (after a success, or a terminal error). */
  readonly forget: (key: string) => void
}

export interface Options {
  /** Delay after the first failure. Default 5 ms. */
  readonly base?: Duration.Input
  /** Upper bound of the delay. Default 1000 s. */
  readonly max?: Duration.Input
}

/** controller-runtime's defaults: 5 ms doubling to 1000 s. */
export const defaults = { base: Duration.millis(5), max: Duration.seconds(1000) } as const

/**
 * @example
 * ```ts
 * const backoff = Backoff.make()
 * backoff.next("ns/a") // 5 millis
 * backoff.next("ns/a") // 10 millis
 * backoff.forget("ns/a")
 * ```
 */
export const make = (options: Options = {}): Backoff => {
  const baseMillis = Duration.toMillis(options.base ?? defaults.base)
  const maxMillis = Duration.toMillis(options.max ?? defaults.max)
  const failures = new Map<string, number>()
  return {
    next: (key) => {
      const exponent = failures.get(key) ?? 0
      failures.set(key, exponent + 1)
      // 2 ** exponent overflows to Infinity after ~1000 failures; min() still caps it.
      return Duration.millis(Math.min(baseMillis * 2 ** exponent, maxMillis))
    },
    retries: (key) => failures.get(key) ?? 0,
    forget: (key) => {
      failures.delete(key)
    }
  }
}
