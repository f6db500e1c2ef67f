import { Clock, Duration, Effect, Pull, Schedule } from "effect"

/**
 * Exponential backoff, the one used everywhere in the operator: the n-th
 * consecutive failure waits `initial * 2^(n-1)`, capped at `max`. Two forms share
 * the computation ({@link delay}):
 *
 * - {@link make}: per key, as controller-runtime's `ItemExponentialFailureRateLimiter`
 *   (the work queue: 5 ms doubling to 1000 s, no jitter);
 * - {@link schedule}: a `Schedule`, optionally jittered (a reflector's reconnect
 *   loop: 200 ms doubling to 30 s), stepped by hand with {@link driver} when the
 *   loop must reset it (after a healthy watch).
 *
 * @module
 */

export interface Options {
  /** Delay after the first failure. Default 5 ms. */
  readonly initial?: Duration.Input
  /** Upper bound of the delay (before jitter). Default 1000 s. */
  readonly max?: Duration.Input
}

/** controller-runtime's per-key defaults: 5 ms doubling to 1000 s. */
export const defaults = { initial: Duration.millis(5), max: Duration.seconds(1000) } as const

/** client-go's reflector reconnect defaults: 200 ms doubling to 30 s. */
export const reconnectDefaults = { initial: Duration.millis(200), max: Duration.seconds(30) } as const

/**
 * The delay after `attempt` consecutive failures (`attempt >= 1`):
 * `initial * 2^(attempt-1)` capped at `max`. Missing options take {@link defaults}.
 *
 * @example
 * ```ts
 * import * as Backoff from "./Backoff.ts"
 *
 * Backoff.delay(1) // 5 millis
 * Backoff.delay(3, { initial: "200 millis", max: "30 seconds" }) // 800 millis
 * Backoff.delay(20, { initial: "200 millis", max: "30 seconds" }) // 30 seconds
 * ```
 */
export const delay = (attempt: number, options: Options = {}): Duration.Duration => {
  const initial = Duration.toMillis(Duration.fromInputUnsafe(options.initial ?? defaults.initial))
  const max = Duration.toMillis(Duration.fromInputUnsafe(options.max ?? defaults.max))
  // 2 ** n overflows to Infinity for huge n; min() still caps it.
  return Duration.millis(Math.min(initial * 2 ** Math.max(0, attempt - 1), max))
}

/**
 * {@link delay} as a `Schedule` that recurs forever, outputting each delay. With
 * `jitter`, every delay is scaled by a random factor in [0.8, 1.2) (Effect's
 * `Schedule.jittered`), after the cap on purpose: when an API server restarts,
 * every client's watch fails at once, and a fixed cap would bring them all back
 * in the same instant (client-node #1933).
 *
 * @example
 * ```ts
 * import * as Backoff from "./Backoff.ts"
 * import { Effect } from "effect"
 *
 * const flaky: Effect.Effect<string, Error> = Effect.fail(new Error("connection reset"))
 * const patient = flaky.pipe(Effect.retry(Backoff.schedule({ initial: "200 millis", max: "30 seconds", jitter: true })))
 * ```
 */
export const schedule = (
  options: Options & { readonly jitter?: boolean } = {}
): Schedule.Schedule<Duration.Duration> => {
  const exponential = Schedule.fromStepWithMetadata(
    Effect.succeed((meta: Schedule.InputMetadata<unknown>) => {
      const wait = delay(meta.attempt, options)
      return Effect.succeed<[Duration.Duration, Duration.Duration]>([wait, wait])
    })
  )
  return options.jitter === true ? Schedule.jittered(exponential) : exponential
}

/**
 * A schedule stepped by hand, for a loop that is not a plain `Effect.retry`
 * (a reflector keeps state across attempts and decides itself when the
 * connection is healthy again).
 */
export interface Driver {
  /**
   * Counts one more attempt and returns how long to wait before it. A loop
   * driven this way never gives up: once the schedule is done, every further
   * attempt waits the last delay again.
   */
  readonly next: Effect.Effect<Duration.Duration>
  /** Attempts counted since the last reset. */
  readonly attempts: Effect.Effect<number>
  /** Starts the schedule over, e.g. after a watch that delivered events. */
  readonly reset: Effect.Effect<void>
}

/**
 * @example
 * ```ts
 * import * as Backoff from "./Backoff.ts"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const reconnect = yield* Backoff.driver(Backoff.schedule(Backoff.reconnectDefaults))
 *   yield* Effect.sleep(yield* reconnect.next) // 200 millis
 *   yield* Effect.sleep(yield* reconnect.next) // 400 millis
 *   yield* reconnect.reset // back to 200 millis
 * })
 * ```
 */
export const driver = (schedule: Schedule.Schedule<unknown>): Effect.Effect<Driver> =>
  Effect.gen(function* () {
    const state = { step: yield* Schedule.toStep(schedule), attempts: 0, last: Duration.zero }
    const next = Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      const wait = yield* state.step(now, undefined).pipe(
        Effect.map(([, wait]) => wait),
        Pull.catchDone(() => Effect.succeed(state.last))
      )
      state.attempts++
      state.last = wait
      return wait
    })
    const reset = Effect.map(Schedule.toStep(schedule), (step) => {
      state.step = step
      state.attempts = 0
      state.last = Duration.zero
    })
    return { next, attempts: Effect.sync(() => state.attempts), reset }
  })

/**
 * Per-key failure backoff, as controller-runtime's
 * `ItemExponentialFailureRateLimiter`: keys are independent, so one broken
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

/**
 * @example
 * ```ts
 * import * as Backoff from "./Backoff.ts"
 *
 * const backoff = Backoff.make()
 * backoff.next("ns/a") // 5 millis
 * backoff.next("ns/a") // 10 millis
 * backoff.forget("ns/a")
 * ```
 */
export const make = (options: Options = {}): Backoff => {
  const failures = new Map<string, number>()
  return {
    next: (key) => {
      const attempt = (failures.get(key) ?? 0) + 1
      failures.set(key, attempt)
      return delay(attempt, options)
    },
    retries: (key) => failures.get(key) ?? 0,
    forget: (key) => {
      failures.delete(key)
    }
  }
}
