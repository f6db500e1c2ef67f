import { Data, Duration, Effect, Ref, Schedule } from "effect"

/** A readiness probe's "not yet": retried until the deadline. */
export class NotReady extends Data.TaggedError("NotReady")<{ readonly reason: string }> {}

/** Options of {@link waitUntilReady}. */
export interface WaitOptions<E> {
  /** Time between probes (default 100 ms). */
  readonly interval?: Duration.Input | undefined
  /** Give up after this long. */
  readonly timeout: Duration.Input
  /** The error to fail with at the deadline, given the last "not yet" reason. */
  readonly onTimeout: (lastReason: string) => E
}

/**
 * Runs `probe` every `interval` while it fails with {@link NotReady}; any other
 * failure stops at once (a crashed server should not be waited for).
 *
 * @example
 * ```ts
 * class Stuck extends Data.TaggedError("Stuck")<{ readonly message: string }> {}
 * declare const probe: Effect.Effect<void, NotReady>
 * yield* waitUntilReady(probe, { timeout: "30 seconds", onTimeout: (why) => new Stuck({ message: why }) })
 * ```
 */
export const waitUntilReady = <A, E, R, E2>(
  probe: Effect.Effect<A, E | NotReady, R>,
  options: WaitOptions<E2>
): Effect.Effect<A, Exclude<E, NotReady> | E2, R> =>
  Effect.gen(function* () {
    const last = yield* Ref.make("no probe finished")
    const attempt = probe.pipe(Effect.tapError((e) => (e instanceof NotReady ? Ref.set(last, e.reason) : Effect.void)))
    return yield* attempt.pipe(
      Effect.retry({
        schedule: Schedule.spaced(options.interval ?? Duration.millis(100)),
        while: (e) => e instanceof NotReady
      }),
      Effect.timeoutOrElse({
        duration: options.timeout,
        orElse: () => Effect.flatMap(Ref.get(last), (reason) => Effect.fail(options.onTimeout(reason)))
      }),
      // NotReady cannot get here (the retry only stops on other errors); this narrows the type,
      // which TypeScript cannot do for a generic E on its own.
      Effect.catch(
        (e): Effect.Effect<never, Exclude<E, NotReady> | E2> =>
          e instanceof NotReady ? Effect.fail(options.onTimeout(e.reason)) : Effect.fail(e as Exclude<E, NotReady>)
      )
    )
  })

/**
 * Polls `probe` until it yields a value other than `undefined`; after `timeout`
 * fails with an Error naming `what`. For tests that wait on a cluster to converge.
 *
 * @example
 * ```ts
 * const kube = yield* KubeClient
 * const job = yield* eventually("the Job", Effect.map(kube.list(Job, { namespace: "db" }), (list) => list.items[0]))
 * ```
 */
export const eventually = <A, E, R>(
  what: string,
  probe: Effect.Effect<A | undefined, E, R>,
  options: { readonly timeout?: Duration.Input; readonly interval?: Duration.Input } = {}
): Effect.Effect<A, Error | E, R> =>
  waitUntilReady(
    Effect.flatMap(probe, (value) =>
      value === undefined ? Effect.fail(new NotReady({ reason: `waiting for ${what}` })) : Effect.succeed(value)
    ),
    {
      interval: options.interval ?? Duration.millis(100),
      timeout: options.timeout ?? Duration.seconds(30),
      onTimeout: (reason) => new Error(`timed out: ${reason}`)
    }
  )
