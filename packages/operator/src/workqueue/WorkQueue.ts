import { Cause, Clock, Duration, Effect, Exit, Fiber, Metric, Option, Scope } from "effect"
import * as Action from "../Action.ts"
import * as Backoff from "../backoff/Backoff.ts"
import { isTerminalError } from "../TerminalError.ts"
import * as Condition from "./Condition.ts"
import * as Deadlines from "./Deadlines.ts"
import * as WorkQueueMetrics from "./WorkQueueMetrics.ts"

/**
 * The controller work queue, with controller-runtime's semantics:
 *
 * - a key already waiting is not added twice;
 * - a key is never handed out twice at once: it is "processing" from `take`
 *   until `done`; adding it meanwhile marks it dirty and it is queued once more
 *   after `done`, however many adds happened;
 * - `requeueAfter` keeps one timer per key (the earliest deadline wins), served
 *   by a single scheduler fiber;
 * - `requeueWithBackoff` waits 5 ms, 10 ms, 20 ms, ... up to 1000 s per key,
 *   until `forget`;
 * - `shutdown` stops intake, lets in-flight work finish, then `take` ends.
 *
 * Keys are strings, normally `namespace/name`.
 */
export interface WorkQueue {
  /** The queue name: the `name` label of its metrics. */
  readonly name: string
  /** Queues `key` now unless it is already waiting. Ignored after shutdown. */
  readonly add: (key: string) => Effect.Effect<void>
  /**
   * Queues `key` after `delay`. A key has at most one pending timer: a new request
   * keeps the earlier deadline. A zero or negative delay adds now. An `add` in the
   * meantime does not cancel the timer; when it fires, dedupe decides.
   */
  readonly requeueAfter: (key: string, delay: Duration.Input) => Effect.Effect<void>
  /** Counts one more failure of `key` and queues it after its backoff delay. */
  readonly requeueWithBackoff: (key: string) => Effect.Effect<void>
  /** Resets the failure count of `key` (after a success). */
  readonly forget: (key: string) => Effect.Effect<void>
  /** Consecutive failures of `key` since it last succeeded. */
  readonly retries: (key: string) => Effect.Effect<number>
  /** Waits for the next key and marks it processing; `None` once the queue is shut down. */
  readonly take: Effect.Effect<Option.Option<string>>
  /** Ends the processing of `key`; if it was added meanwhile, queues it again. */
  readonly done: (key: string) => Effect.Effect<void>
  /** Keys waiting to be taken (including dirty keys still processing). */
  readonly depth: Effect.Effect<number>
  /** Keys with a pending `requeueAfter`/backoff timer. */
  readonly pendingTimers: Effect.Effect<number>
  /** Keys currently processing. */
  readonly processing: Effect.Effect<number>
  readonly isShutdown: Effect.Effect<boolean>
  /**
   * Stops intake (adds and timers are dropped; waiting keys are discarded, since a
   * level-triggered controller relists on start), wakes idle `take`s with `None`,
   * and waits until in-flight keys are `done`, at most `timeout`. Returns whether
   * everything finished in time. Idempotent.
   */
  readonly shutdown: (options?: { readonly timeout?: Duration.Input }) => Effect.Effect<boolean>
  /**
   * Runs `concurrency` workers that take keys and call `handler`, until the queue
   * shuts down. Outcome handling, as controller-runtime:
   *
   * - success `Action.done`: `forget` (backoff reset);
   * - success `Action.requeueAfter(d)`: `forget`, then `requeueAfter(key, d)`;
   * - failure with `TerminalError`: `forget`, no retry (the next change of
   *   the object adds the key again);
   * - interrupted (a drain timeout, the controller's hard stop): `forget`, no retry;
   * - any other failure or defect: `requeueWithBackoff`.
   *
   * If `run` is interrupted it drains gracefully: shutdown, in-flight handlers get
   * up to `drainTimeout` to finish, then they are interrupted.
   */
  readonly run: <E, R>(
    concurrency: number,
    handler: (key: string) => Effect.Effect<Action.Action, E, R>
  ) => Effect.Effect<void, never, R>
}

export interface Options {
  /** Queue name, used as the `name` label of the `workqueue_*` metrics. */
  readonly name: string
  /** Per-key failure backoff. Default: 5 ms doubling to 1000 s. */
  readonly backoff?: Backoff.Options
  /** How long a shutdown waits for in-flight handlers. Default 30 s (controller-runtime's default). */
  readonly drainTimeout?: Duration.Input
  /** How often the unfinished-work gauges are refreshed. Default 500 ms (client-go's period). */
  readonly metricsInterval?: Duration.Input
}

/**
 * Builds a work queue whose timers and metric updater live in the current Scope.
 * Closing the Scope stops intake; draining is `run`'s job (see {@link WorkQueue.run}).
 *
 * @example
 * ```ts
 * const program = Effect.gen(function* () {
 *   const queue = yield* make({ name: "backup" })
 *   yield* queue.add("default/nightly")
 *   yield* queue.run(4, (key: string) => Effect.log(`reconcile ${key}`).pipe(Effect.as(Action.requeueAfter("5 minutes"))))
 * }).pipe(Effect.scoped)
 * ```
 */
export const make = (options: Options): Effect.Effect<WorkQueue, never, Scope.Scope> =>
  Effect.gen(function* () {
    const clock = yield* Clock.Clock
    const now = () => clock.currentTimeMillisUnsafe()
    const metrics = WorkQueueMetrics.forQueue(options.name)
    const backoff = Backoff.make(options.backoff)
    const drainTimeout = options.drainTimeout ?? Duration.seconds(30)

    // All state is plain and mutated only inside Effect.sync blocks: JavaScript runs
    // each block to completion, so every transition below is atomic.
    /** Keys ready to be taken, in FIFO order (a Set keeps insertion order; keys are unique). */
    const ready = new Set<string>()
    /** Keys that need processing: the ready ones plus those added while processing. */
    const dirty = new Set<string>()
    /** Keys being processed, with the time `take` handed them out. */
    const processing = new Map<string, number>()
    /** When each dirty key was first added, for `workqueue_queue_duration_seconds`. */
    const addedAt = new Map<string, number>()
    const timers = Deadlines.make()
    /** Bumped whenever the earliest deadline may have moved, to wake the scheduler. */
    let timersVersion = 0
    let shuttingDown = false
    const changed = Condition.make()

    const setDepth = Effect.suspend(() => Metric.update(metrics.depth, dirty.size))

    /** Returns true if the key was added (not deduplicated, not shut down). */
    const addSync = (key: string): boolean => {
      if (shuttingDown || dirty.has(key)) return false
      dirty.add(key)
      if (!addedAt.has(key)) addedAt.set(key, now())
      // A key still processing waits in `dirty` and is queued by `done`.
      if (!processing.has(key)) {
        ready.add(key)
        changed.notify()
      }
      return true
    }

    const recordAdds = (count: number) =>
      count === 0 ? Effect.void : Effect.andThen(Metric.update(metrics.adds, count), setDepth)

    const add = (key: string) => Effect.suspend(() => recordAdds(addSync(key) ? 1 : 0))

    const requeueAfter = (key: string, delay: Duration.Input) =>
      Effect.suspend(() => {
        const millis = Duration.toMillis(delay)
        if (millis <= 0) return add(key)
        if (!shuttingDown && timers.schedule(key, now() + millis)) {
          timersVersion++
          changed.notify()
        }
        return Effect.void
      })

    const requeueWithBackoff = (key: string) =>
      Effect.suspend(() =>
        shuttingDown
          ? Effect.void
          : Effect.andThen(Metric.update(metrics.retries, 1), requeueAfter(key, backoff.next(key)))
      )

    const takeSync = (): { readonly key: string; readonly waitedMillis: number } | undefined => {
      const first = ready.values().next()
      if (first.done === true) return undefined
      const key = first.value
      const at = now()
      ready.delete(key)
      dirty.delete(key)
      processing.set(key, at)
      changed.notify()
      const waitedMillis = at - (addedAt.get(key) ?? at)
      addedAt.delete(key)
      return { key, waitedMillis }
    }

    type Restore = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
    // Only the wait is interruptible (`restore`): once a key is marked processing
    // the caller must get it, or it would stay processing forever.
    const takeWith = (restore: Restore): Effect.Effect<Option.Option<string>> =>
      Effect.suspend(() => {
        const taken = takeSync()
        if (taken !== undefined) {
          return Metric.update(metrics.queueDuration, taken.waitedMillis / 1000).pipe(
            Effect.andThen(setDepth),
            Effect.as(Option.some(taken.key))
          )
        }
        if (shuttingDown) return Effect.succeed(Option.none())
        // Another worker may win the key we were woken for; then we wait again.
        return Effect.andThen(restore(changed.await(() => ready.size > 0 || shuttingDown)), takeWith(restore))
      })
    const take: Effect.Effect<Option.Option<string>> = Effect.uninterruptibleMask(takeWith)

    const done = (key: string) =>
      Effect.suspend(() => {
        const startedAt = processing.get(key)
        if (startedAt === undefined) return Effect.void
        processing.delete(key)
        if (!shuttingDown && dirty.has(key)) ready.add(key)
        changed.notify()
        return Metric.update(metrics.workDuration, (now() - startedAt) / 1000).pipe(
          Effect.andThen(setDepth),
          Effect.andThen(refreshUnfinished)
        )
      })

    const stopIntake = () => {
      if (shuttingDown) return
      shuttingDown = true
      ready.clear()
      dirty.clear()
      addedAt.clear()
      timers.clear()
      changed.notify()
    }

    const shutdown = (shutdownOptions?: { readonly timeout?: Duration.Input }) =>
      Effect.suspend(() => {
        stopIntake()
        const drained = changed.await(() => processing.size === 0)
        const timeout = shutdownOptions?.timeout
        const wait =
          timeout === undefined
            ? Effect.as(drained, true)
            : Duration.toMillis(timeout) <= 0
              ? Effect.sync(() => processing.size === 0)
              : Effect.map(Effect.timeoutOption(drained, timeout), Option.isSome)
        return Effect.andThen(setDepth, wait)
      })

    // The one timer fiber: sleeps until the earliest deadline, or until a new
    // earlier deadline (or shutdown) wakes it, then adds every due key.
    const scheduler = Effect.gen(function* () {
      while (!shuttingDown) {
        const version = timersVersion
        const next = timers.next()
        const woken = changed.await(() => timersVersion !== version || shuttingDown)
        yield* next === undefined
          ? woken
          : Effect.raceFirst(Effect.sleep(Duration.millis(Math.max(0, next - now()))), woken)
        const due = timers.due(now())
        yield* recordAdds(due.filter(addSync).length)
      }
    })

    const refreshUnfinished = Effect.suspend(() => {
      const at = now()
      let total = 0
      let longest = 0
      for (const startedAt of processing.values()) {
        total += at - startedAt
        longest = Math.max(longest, at - startedAt)
      }
      return Effect.andThen(
        Metric.update(metrics.unfinishedWork, total / 1000),
        Metric.update(metrics.longestRunningProcessor, longest / 1000)
      )
    })
    // Ticks only while something is processing: an idle queue costs nothing, and
    // `done` refreshes the gauges so they drop to 0 when the last key finishes.
    const metricsInterval = options.metricsInterval ?? Duration.millis(500)
    const metricsUpdater = Effect.forever(
      changed
        .await(() => processing.size > 0)
        .pipe(Effect.andThen(Effect.sleep(metricsInterval)), Effect.andThen(refreshUnfinished))
    )

    yield* Effect.forkScoped(scheduler)
    yield* Effect.forkScoped(metricsUpdater)
    yield* setDepth
    // Only stops intake: `run` drains its own workers when it is interrupted, and a
    // key taken by hand and never marked done must not hold up the Scope.
    yield* Effect.addFinalizer(() => Effect.andThen(Effect.sync(stopIntake), setDepth))

    const settle = <E>(key: string, exit: Exit.Exit<Action.Action, E>): Effect.Effect<void> => {
      if (Exit.isSuccess(exit)) {
        backoff.forget(key)
        return Action.isRequeueAfter(exit.value) ? requeueAfter(key, exit.value.delay) : Effect.void
      }
      const cause = exit.cause
      // Interrupted (a drain that ran out of time, a hard stop on lost leadership): whoever
      // interrupted it decides what comes next, and the next leader relists anyway. Retrying
      // would only be interrupted again, over and over, while the interrupter holds.
      if (Cause.hasInterruptsOnly(cause)) {
        backoff.forget(key)
        return Effect.void
      }
      if (Option.exists(Cause.findErrorOption(cause), isTerminalError)) {
        backoff.forget(key)
        return Effect.void
      }
      // A defect is a bug in the handler; the queue is the last place that sees it.
      const logDefect = Cause.hasDies(cause)
        ? Effect.logError("work queue handler died", cause).pipe(Effect.annotateLogs({ queue: options.name, key }))
        : Effect.void
      return Effect.andThen(logDefect, requeueWithBackoff(key))
    }

    const run = <E, R>(
      concurrency: number,
      handler: (key: string) => Effect.Effect<Action.Action, E, R>
    ): Effect.Effect<void, never, R> =>
      Effect.gen(function* () {
        // One iteration: take a key, handle it, settle the outcome, mark it done.
        // `done` must run whatever happens once a key is taken, or the key would stay
        // "processing" forever and never be reconciled again.
        const step: Effect.Effect<boolean, never, R> = Effect.uninterruptibleMask((restore) =>
          Effect.flatMap(takeWith(restore), (next) =>
            Option.match(next, {
              onNone: () => Effect.succeed(false),
              onSome: (key) =>
                restore(Effect.suspend(() => handler(key))).pipe(
                  Effect.exit,
                  Effect.flatMap((exit) => settle(key, exit)),
                  Effect.ensuring(done(key)),
                  Effect.as(true)
                )
            })
          )
        )
        const loop: Effect.Effect<void, never, R> = Effect.flatMap(step, (more) => (more ? loop : Effect.void))
        // Workers live in their own scope, not as children of this fiber, so that an
        // interruption of `run` can let them finish their current key first. Only the
        // wait is interruptible, so the worker scope is always closed.
        yield* Effect.uninterruptibleMask((restore) =>
          Effect.gen(function* () {
            const workers = yield* Scope.make()
            const fibers = yield* Effect.forEach(Array.from({ length: Math.max(1, concurrency) }), () =>
              Effect.forkIn(loop, workers)
            )
            yield* restore(Fiber.joinAll(fibers)).pipe(
              Effect.onInterrupt(() =>
                shutdown({ timeout: drainTimeout }).pipe(Effect.andThen(Scope.close(workers, Exit.void)))
              )
            )
            yield* Scope.close(workers, Exit.void)
          })
        )
      })

    const queue: WorkQueue = {
      name: options.name,
      add,
      requeueAfter,
      requeueWithBackoff,
      forget: (key) =>
        Effect.sync(() => {
          backoff.forget(key)
        }),
      retries: (key) => Effect.sync(() => backoff.retries(key)),
      take,
      done,
      depth: Effect.sync(() => dirty.size),
      pendingTimers: Effect.sync(() => timers.size()),
      processing: Effect.sync(() => processing.size),
      isShutdown: Effect.sync(() => shuttingDown),
      shutdown,
      run
    }
    return queue
  })
