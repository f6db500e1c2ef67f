import { randomUUID } from "node:crypto"
import { type KubeObject, Resource } from "@db-backup-operator/kube"
import { Cause, Clock, Context, Effect, Exit, Metric, Option, type Scope, Stream } from "effect"
import * as Action from "../Action.ts"
import type { Cache } from "../cache/Cache.ts"
import { Caches } from "../cache/Caches.ts"
import { isTerminalError } from "../TerminalError.ts"
import * as WorkQueue from "../workqueue/WorkQueue.ts"
import * as ControllerMetrics from "./ControllerMetrics.ts"
import type { Predicate } from "./Predicates.ts"
import { owns, type Source } from "./Source.ts"

/** What a reconcile is asked to do: bring the object named by `key` to its desired state. */
export interface Request<A> {
  /** `namespace/name` (just `name` for cluster-scoped kinds). */
  readonly key: string
  readonly namespace: string | undefined
  readonly name: string
  /** The object as the cache holds it now; `undefined` once it is gone. Level-triggered: never "what changed". */
  readonly object: A | undefined
  /**
   * The cache behind one of this controller's watches: the primary kind (`for`),
   * a Source of `owns` or `watches`, or the Resource of one (when only one
   * watch has that kind). Every cache was synced before the first reconcile.
   * Asking for a kind the controller does not watch is a defect: reading
   * through an undeclared cache would start a second, silent watch.
   */
  readonly cache: <B extends KubeObject>(of: Source<B> | Resource.Resource<B, unknown>) => Cache<B>
}

export interface Options<A extends KubeObject, I, E, R> {
  /** Names the controller in logs, metrics (`controller` label) and spans. */
  readonly name: string
  /** The primary kind: each of its objects is one key. */
  readonly for: Resource.Resource<A, I>
  /** Only primaries with these labels. */
  readonly labelSelector?: string
  /** Filters for changes of the primary (default: every change enqueues). */
  readonly predicates?: ReadonlyArray<Predicate<A>>
  /**
   * Child kinds, mapped to their owner by controller owner reference: `[Job]`
   * (short for `Source.owns(Job)`), or `[Source.owns(Job, { labelSelector })]` to
   * cache only the labelled children.
   */
  readonly owns?: ReadonlyArray<Source | Resource.Resource<KubeObject, unknown>>
  /** Other watches mapped to primary keys: `[Source.watches(Job, mapper)]`. */
  readonly watches?: ReadonlyArray<Source>
  /** Reconciles running at once, never two for one key (default 1). */
  readonly concurrency?: number
  /** Work-queue tuning (backoff, drain timeout). */
  readonly queue?: Omit<WorkQueue.Options, "name">
  /**
   * How a failed reconcile is retried, decided per error: `"backoff"` (the
   * default: the queue's per-key exponential backoff), or an Action in place of
   * the failure: `Action.requeueAfter(d)` to look again after a fixed delay
   * (an external system with its own rate limit), `Action.done` to wait for the
   * next change. The failure is logged and counted either way. Not consulted
   * for `TerminalError` (never retried) or interruptions.
   */
  readonly errorPolicy?: (error: E, request: Request<A>) => Action.Action | "backoff"
  /**
   * Brings one object to its desired state. Succeed with `Action.done` or
   * `Action.requeueAfter(d)`; fail to retry with per-key backoff; fail with
   * `TerminalError` to stop retrying until the object changes.
   */
  readonly reconcile: (request: Request<A>) => Effect.Effect<Action.Action, E, R>
}

/**
 * Completes when in-flight reconciles must stop at once instead of being drained.
 * The Manager sets it to "leadership lost": from then on another replica may
 * already be reconciling, so finishing a reconcile could race it. Reconciles
 * interrupted this way are not retried here; the new leader relists. Default:
 * none (interrupting a controller drains it gracefully).
 *
 * @example
 * ```ts
 * declare const controller: Controller.Controller<never>
 * declare const lost: Deferred.Deferred<void>
 * controller.run.pipe(Effect.provideService(Controller.HardStop, Deferred.await(lost)))
 * ```
 */
export const HardStop = Context.Reference<Effect.Effect<void> | undefined>(
  "@db-backup-operator/operator/Controller/HardStop",
  { defaultValue: () => undefined }
)

/**
 * A controller ready to run. The Manager runs it (after leader election, with
 * shared caches); `run` is also usable directly in tests.
 */
export interface Controller<R> {
  readonly name: string
  /** Starts caches, sources and workers; runs until interrupted, then drains the queue. */
  readonly run: Effect.Effect<void, never, R | Caches | Scope.Scope>
}

const outcomeOf = <E>(exit: Exit.Exit<Action.Action, E>): "success" | "requeue_after" | "error" => {
  if (Exit.isSuccess(exit)) return Action.isRequeueAfter(exit.value) ? "requeue_after" : "success"
  return "error"
}

/** Waits for every cache to sync, saying which ones it still waits for every 30 s (e.g. a watch RBAC forbids). */
const awaitSynced = (caches: ReadonlyArray<Cache<KubeObject>>): Effect.Effect<void> =>
  Effect.gen(function* () {
    const all = Effect.forEach(caches, (cache) => cache.synced, { discard: true, concurrency: "unbounded" })
    while (Option.isNone(yield* Effect.timeoutOption(all, "30 seconds"))) {
      const pending = yield* Effect.filter(caches, (cache) => Effect.map(cache.isSynced, (synced) => !synced))
      yield* Effect.logWarning(
        `waiting for caches to sync before starting workers: ${pending.map((cache) => cache.description).join("; ")}`
      )
    }
  })

/** `request.cache`: the primary's or a declared Source's cache, found by Source or by Resource. */
const cacheLookup =
  <A extends KubeObject, I, E, R>(
    options: Options<A, I, E, R>,
    primary: Cache<A>,
    followed: ReadonlyArray<{ readonly source: Source; readonly cache: Cache<KubeObject> }>
  ): Request<A>["cache"] =>
  <B extends KubeObject>(of: Source<B> | Resource.Resource<B, unknown>): Cache<B> => {
    // Sound: a Source<B>'s cache, or the primary's when `of` is the primary Resource, holds B.
    if (of === (options.for as unknown)) return primary as unknown as Cache<B>
    const matches = followed.filter(({ source }) => source === (of as unknown) || source.resource === (of as unknown))
    const only = matches.length === 1 ? matches[0] : undefined
    if (only !== undefined) return only.cache as unknown as Cache<B>
    const what = "kind" in of ? of.kind : of.description
    throw new Error(
      matches.length === 0
        ? `controller ${options.name} does not watch ${what}: add it to owns or watches to read its cache`
        : `controller ${options.name} watches ${what} more than once: pass the Source to request.cache`
    )
  }

/**
 * Defines a controller: a primary kind, the watches that enqueue its keys, and a
 * reconcile Effect. Each reconcile runs with a logger annotated with controller,
 * namespace, name and a reconcile id, inside a tracing span, and is measured with
 * controller-runtime's metrics.
 *
 * @example
 * ```ts
 * const widgets = Controller.make({
 *   name: "widgets",
 *   for: Widget,
 *   owns: [ConfigMap],                    // short for Source.owns(ConfigMap)
 *   predicates: [Predicates.generationChanged],
 *   reconcile: ({ object }) =>
 *     object === undefined ? Effect.succeed(Action.done) : ensureConfigMap(object).pipe(Effect.as(Action.requeueAfter("10 minutes")))
 * })
 * ```
 */
export const make = <A extends KubeObject, I, E, R>(options: Options<A, I, E, R>): Controller<R> => {
  const labels = { controller: options.name }
  const concurrency = options.concurrency ?? 1

  // Labelled once: a reconcile should not rebuild its metric handles.
  const activeWorkers = Metric.withAttributes(ControllerMetrics.activeWorkers, labels)
  const reconcileTime = Metric.withAttributes(ControllerMetrics.reconcileTime, labels)
  const reconcileErrors = Metric.withAttributes(ControllerMetrics.reconcileErrors, labels)
  const terminalReconcileErrors = Metric.withAttributes(ControllerMetrics.terminalReconcileErrors, labels)
  const reconcileTotal = {
    success: Metric.withAttributes(ControllerMetrics.reconcileTotal, { ...labels, result: "success" }),
    requeue_after: Metric.withAttributes(ControllerMetrics.reconcileTotal, { ...labels, result: "requeue_after" }),
    error: Metric.withAttributes(ControllerMetrics.reconcileTotal, { ...labels, result: "error" })
  }

  /** Records the outcome of one reconcile, as controller-runtime's `reconcileHandler`. */
  const record = (exit: Exit.Exit<Action.Action, E>, seconds: number) =>
    Effect.gen(function* () {
      // Interrupted (shutdown ran out of drain time, or leadership was lost): no outcome to count.
      if (Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)) {
        yield* Effect.logWarning(`reconcile interrupted after ${seconds.toFixed(3)}s`)
        return
      }
      yield* Metric.update(reconcileTime, seconds)
      yield* Metric.update(reconcileTotal[outcomeOf(exit)], 1)
      if (Exit.isSuccess(exit)) {
        yield* Effect.logDebug(`reconciled in ${seconds.toFixed(3)}s`)
        return
      }
      // controller-runtime counts terminal errors as errors too, and separately.
      yield* Metric.update(reconcileErrors, 1)
      const terminal = Cause.findErrorOption(exit.cause).pipe(Option.filter(isTerminalError))
      if (Option.isSome(terminal)) {
        yield* Metric.update(terminalReconcileErrors, 1)
        yield* Effect.logWarning(
          `reconcile failed terminally (${terminal.value.reason}): ${terminal.value.message}; waiting for the object to change`
        )
      } else {
        yield* Effect.logError("reconcile failed; retrying with backoff", exit.cause)
      }
    })

  /** The error policy's Action for a failure it decides, if any ("backoff" leaves the failure to the queue). */
  const policyDecision = (exit: Exit.Exit<Action.Action, E>, request: Request<A>): Option.Option<Action.Action> => {
    if (options.errorPolicy === undefined || Exit.isSuccess(exit)) return Option.none()
    const error = Cause.findErrorOption(exit.cause)
    if (Option.isNone(error) || isTerminalError(error.value)) return Option.none()
    const decision = options.errorPolicy(error.value, request)
    return decision === "backoff" ? Option.none() : Option.some(decision)
  }

  const handler =
    (primary: Cache<A>, cache: Request<A>["cache"], hardStop: Effect.Effect<void> | undefined) =>
    (key: string): Effect.Effect<Action.Action, E, R> => {
      const { namespace, name } = Resource.splitKey(key)
      return Effect.gen(function* () {
        const object = Option.getOrUndefined(yield* primary.get(key))
        const started = yield* Clock.currentTimeMillis
        const request: Request<A> = { key, namespace, name, object, cache }
        const traced = options.reconcile(request).pipe(
          Effect.withSpan(
            `reconcile ${options.name}`,
            { attributes: { controller: options.name, namespace: namespace ?? "", name } },
            // Always this line: not worth an Error per reconcile.
            { captureStackTrace: false }
          )
        )
        // A hard stop interrupts the reconcile; the queue does not retry interruptions.
        const reconcile =
          hardStop === undefined ? traced : Effect.raceFirst(traced, Effect.andThen(hardStop, Effect.interrupt))
        // The gauge stays balanced even when a drain timeout interrupts this fiber.
        const exit = yield* Effect.exit(
          Effect.acquireUseRelease(
            Metric.modify(activeWorkers, 1),
            () => reconcile,
            () => Metric.modify(activeWorkers, -1)
          )
        )
        const seconds = ((yield* Clock.currentTimeMillis) - started) / 1000
        yield* record(exit, seconds)
        return yield* Option.match(policyDecision(exit, request), {
          onNone: () => exit,
          onSome: (result) => Effect.succeed(result)
        })
      }).pipe(
        Effect.annotateLogs({ controller: options.name, namespace: namespace ?? "", name, reconcileID: randomUUID() })
      )
    }

  const run = Effect.gen(function* () {
    const caches = yield* Caches
    const hardStop = yield* HardStop
    const queue = yield* WorkQueue.make({ name: options.name, ...options.queue })
    const primary = yield* caches.get(
      options.for,
      options.labelSelector === undefined ? {} : { labelSelector: options.labelSelector }
    )
    const predicates = options.predicates ?? []
    yield* primary.changes().pipe(
      Stream.filter((change) => predicates.every((predicate) => predicate(change))),
      Stream.runForEach((change) => queue.add(Resource.keyOf(change.object))),
      Effect.forkScoped
    )
    const context = { primary: options.for, primaryCache: primary, enqueue: queue.add }
    const owned = (options.owns ?? []).map((owned) => ("start" in owned ? owned : owns(owned)))
    const followed = yield* Effect.forEach([...owned, ...(options.watches ?? [])], (source) =>
      Effect.map(source.start(context), (cache) => ({ source, cache }))
    )
    // Workers start once every cache they read holds a full list: an empty child cache right
    // after a restart would look like "no children yet" and make a reconcile create them again.
    yield* awaitSynced([primary, ...followed.map(({ cache }) => cache)])
    yield* Metric.update(Metric.withAttributes(ControllerMetrics.maxConcurrentReconciles, labels), concurrency)
    yield* Effect.logInfo(`controller ${options.name} started with ${concurrency} worker(s)`)
    yield* queue.run(concurrency, handler(primary, cacheLookup(options, primary, followed), hardStop))
  }).pipe(Effect.annotateLogs({ controller: options.name }))

  return { name: options.name, run }
}
