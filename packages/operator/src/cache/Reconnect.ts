import { Duration } from "effect"

/**
 * Reconnect backoff of a reflector: after the n-th consecutive failed list or
 * watch, wait `initial * 2^(n-1)` capped at `max`, times a jitter factor in
 * [0.8, 1.2). The jitter applies after the cap on purpose: when an API server
 * restarts, every client's watch fails at once, and a fixed 30 s cap would bring
 * them all back in the same instant (client-node #1933).
 */
export interface Options {
  /** Delay after the first failure. Default 200 ms. */
  readonly initial?: Duration.Input
  /** Upper bound before jitter. Default 30 s. */
  readonly max?: Duration.Input
}

export const defaults = { initial: Duration.millis(200), max: Duration.seconds(30) } as const

/**
 * The delay before the next attempt after `failures` consecutive failures
 * (`failures >= 1`); `random` is a number in [0, 1).
 *
 * @example
 * ```ts
 * Reconnect.delay(1, {}, 0.5) // 200 millis
 * Reconnect.delay(20, {}, 0.5) // 30 seconds
 * ```
 */
export const delay = (failures: number, options: Options, random: number): Duration.Duration => {
  const initial = Duration.toMillis(options.initial ?? defaults.initial)
  const max = Duration.toMillis(options.max ?? defaults.max)
  // 2 ** n overflows to Infinity for huge n; min() still caps it.
  const capped = Math.min(initial * 2 ** Math.max(0, failures - 1), max)
  return Duration.millis(Math.floor(capped * (0.8 + 0.4 * random)))
}
