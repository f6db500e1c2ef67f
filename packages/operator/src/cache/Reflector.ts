import { KubeClient, type KubeError, type KubeObject, type Resource, type WatchEvent } from "@db-backup-operator/kube"
import {
  Cause,
  Clock,
  Data,
  Deferred,
  Duration,
  Effect,
  Metric,
  Option,
  PubSub,
  Random,
  Result,
  type Scope,
  Semaphore,
  Stream
} from "effect"
import type { Change } from "./Change.ts"
import * as Reconnect from "./Reconnect.ts"
import * as ReflectorMetrics from "./ReflectorMetrics.ts"
import * as Store from "./Store.ts"

/** Which objects of a kind a reflector caches. All fields optional: everything, cluster-wide. */
export interface Selector {
  /** Only this namespace (namespaced kinds); all namespaces when absent. */
  readonly namespace?: string
  /** A label selector, e.g. `app.kubernetes.io/managed-by=db-backup-operator`. */
  readonly labelSelector?: string
  /** A field selector, e.g. `status.phase=Running`. */
  readonly fieldSelector?: string
}

/** Timing of a reflector. Defaults suit production; tests shrink them. */
export interface Timing {
  /**
   * Server-side watch timeout, drawn uniformly per watch from [min, max] so that
   * many watches do not all reconnect together (client-go: 5–10 minutes).
   * Whole seconds; default 5 to 10 minutes.
   */
  readonly watchTimeout?: { readonly min: Duration.Input; readonly max: Duration.Input }
  /**
   * Restart a watch that delivered no event and no bookmark for this long (a
   * connection that stalled without closing). Default: the watch's own timeout
   * plus {@link watchdogMargin}.
   */
  readonly watchdog?: Duration.Input
  /** Slack added to the watch timeout for the default watchdog. Default 30 s. */
  readonly watchdogMargin?: Duration.Input
  /** Reconnect backoff after failed lists and watches. Default 200 ms doubling to 30 s, jittered. */
  readonly backoff?: Reconnect.Options
  /** List page size. Default 500. */
  readonly pageSize?: number
}

export interface Options<A extends KubeObject, I> extends Selector, Timing {
  readonly resource: Resource.Resource<A, I>
  /**
   * Start from a snapshot instead of a full list: the store is filled with
   * `objects` and the watch starts at `resourceVersion`, as though a list had
   * returned them. The reflector counts as synced at once. If the version has
   * expired, the usual relist repairs the store (emitting `Deleted` for objects
   * that vanished). Most callers omit this.
   */
  readonly resume?: { readonly resourceVersion: string; readonly objects: ReadonlyArray<A> }
}

/**
 * A watch cache of one kind: a {@link Store.Store} kept current by list + watch,
 * and the stream of changes applied to it.
 *
 * @example
 * ```ts
 * const program = Effect.gen(function* () {
 *   const configMaps = yield* Reflector.make({ resource: ConfigMap, namespace: "db" })
 *   yield* configMaps.synced
 *   const settings = yield* configMaps.store.get("db/settings")
 *   yield* configMaps.changes().pipe(
 *     Stream.runForEach((change) => Effect.log(change.type, Resource.keyOf(change.object))),
 *     Effect.forkScoped
 *   )
 * })
 * ```
 */
export interface Reflector<A extends KubeObject> {
  /** `ConfigMap namespace=db labels=app=x`: what this reflector caches (its log and metric label). */
  readonly description: string
  readonly store: Store.Store<A>
  /**
   * The changes applied to the store, as a stream per subscriber. With `replay`
   * (the default), it starts with `Added` for every object already cached, then
   * continues with live changes, with no gap and no duplicate in between, as
   * client-go's `AddEventHandler`. The stream never fails; it ends when the
   * reflector's scope closes. Subscribers do not slow the reflector down (each
   * has an unbounded buffer), so consume promptly, e.g. into a work queue.
   */
  readonly changes: (options?: { readonly replay?: boolean }) => Stream.Stream<Change<A>>
  /** Completes once the first full list is in the store. */
  readonly synced: Effect.Effect<void>
  readonly isSynced: Effect.Effect<boolean>
  /** The resourceVersion the next watch resumes from; `None` while a (re)list is due. */
  readonly resourceVersion: Effect.Effect<Option.Option<string>>
}

/** A watch delivered nothing, not even a bookmark, for longer than allowed. */
export class WatchdogTimeout extends Data.TaggedError("WatchdogTimeout")<{ readonly message: string }> {}

/** A watch that the server closed at once without any event. */
export class ShortWatch extends Data.TaggedError("ShortWatch")<{ readonly message: string }> {}

type WatchFailure = KubeError | WatchdogTimeout | ShortWatch

// client-go's threshold for a "very short watch".
const shortWatchMillis = 1000

/** Human-readable description of a kind and selector, used in logs and as the `cache` metric label. */
export const describe = (kind: string, selector: Selector): string =>
  describeScope(kind, selector.namespace === undefined ? "all-namespaces" : `namespace=${selector.namespace}`, selector)

/** {@link describe} with the namespace part given, e.g. `namespaces=a,b` for a Cache over several reflectors. */
export const describeScope = (kind: string, scope: string, selector: Omit<Selector, "namespace">): string => {
  const parts = [kind, scope]
  if (selector.labelSelector !== undefined && selector.labelSelector !== "")
    parts.push(`labels=${selector.labelSelector}`)
  if (selector.fieldSelector !== undefined && selector.fieldSelector !== "")
    parts.push(`fields=${selector.fieldSelector}`)
  return parts.join(" ")
}

const defaultWatchTimeout = { min: Duration.minutes(5), max: Duration.minutes(10) } as const
const defaultWatchdogMargin = Duration.seconds(30)

/** Permanent-looking errors are logged louder: they need a human (RBAC, a missing CRD). */
const needsAttention = (error: WatchFailure): boolean =>
  error._tag === "Forbidden" ||
  error._tag === "Unauthorized" ||
  error._tag === "NotFound" ||
  error._tag === "BadRequest"

const logFailure = (what: string, error: WatchFailure, retryIn: Duration.Duration) => {
  const message = `${what} failed (${error._tag}): ${error.message}; retrying in ${Duration.format(retryIn)}`
  // An expired resourceVersion is routine (compaction, API server restarts).
  if (error._tag === "Gone") return Effect.logInfo(`${what}: resourceVersion expired (410 Gone), relisting`)
  return needsAttention(error) ? Effect.logError(message) : Effect.logWarning(message)
}

/**
 * Starts a reflector in the current Scope: lists the kind (paginated), then
 * watches from the list's resourceVersion with bookmarks, applying every event
 * to the store and publishing the resulting changes. It owns its loop:
 *
 * - a server-side timeout (5–10 min) ends each watch cleanly; the next one
 *   resumes from the last resourceVersion seen (events and bookmarks);
 * - a watchdog restarts a watch that went silent for longer than its timeout;
 * - `410 Gone` (expired resourceVersion) triggers a relist that replaces the
 *   store and emits `Deleted` for objects that vanished meanwhile;
 * - other failures reconnect with jittered exponential backoff (200 ms doubling
 *   to 30 s), reset once a watch is healthy again;
 * - objects that do not match the Schema are logged (object and field named)
 *   and skipped; the resourceVersion still advances.
 *
 * Everything stops when the Scope closes.
 *
 * @example
 * ```ts
 * const jobs = yield* Reflector.make({ resource: Job, namespace: "db", labelSelector: "app=backup" })
 * yield* jobs.synced
 * ```
 */
export const make = <A extends KubeObject, I>(
  options: Options<A, I>
): Effect.Effect<Reflector<A>, never, KubeClient | Scope.Scope> =>
  Effect.gen(function* () {
    const kube = yield* KubeClient
    const { resource } = options
    const selector: Selector = {
      ...(options.namespace === undefined ? {} : { namespace: options.namespace }),
      ...(options.labelSelector === undefined ? {} : { labelSelector: options.labelSelector }),
      ...(options.fieldSelector === undefined ? {} : { fieldSelector: options.fieldSelector })
    }
    const description = describe(resource.kind, selector)
    const metrics = ReflectorMetrics.forCache(resource.kind, description)
    const store = yield* Store.make<A>()
    const pubsub = yield* PubSub.unbounded<Change<A>>()
    yield* Effect.addFinalizer(() => PubSub.shutdown(pubsub))
    // Serializes "apply + publish" against "subscribe + snapshot", so a new
    // subscriber's replay and its live changes neither overlap nor leave a gap.
    const lock = yield* Semaphore.make(1)
    const synced = yield* Deferred.make<void>()

    // The loop is the only writer of this state; readers go through Effect.sync.
    const state: { resourceVersion: string | undefined; failures: number } = {
      resourceVersion: undefined,
      failures: 0
    }

    /** Applies changes to the store and publishes them, atomically for subscribers; returns them. */
    const commit = (changes: Effect.Effect<ReadonlyArray<Change<A>>>) =>
      Semaphore.withPermit(
        lock,
        Effect.tap(changes, (applied) =>
          Effect.sync(() => {
            for (const change of applied) PubSub.publishUnsafe(pubsub, change)
          })
        )
      ).pipe(Effect.tap(() => Effect.flatMap(store.size, (size) => Metric.update(metrics.objects, size))))

    if (options.resume !== undefined) {
      yield* commit(store.replace(options.resume.objects))
      state.resourceVersion = options.resume.resourceVersion
      yield* Deferred.succeed(synced, undefined)
    }

    const timeout = options.watchTimeout ?? defaultWatchTimeout
    const minTimeoutSeconds = Math.max(1, Math.round(Duration.toSeconds(timeout.min)))
    const maxTimeoutSeconds = Math.max(minTimeoutSeconds, Math.round(Duration.toSeconds(timeout.max)))
    const margin = Duration.fromInputUnsafe(options.watchdogMargin ?? defaultWatchdogMargin)
    const backoff = options.backoff ?? {}

    const relist = Effect.gen(function* () {
      const first = !(yield* Deferred.isDone(synced))
      yield* Metric.update(metrics.lists, 1)
      const listed = yield* kube.list(resource, { ...selector, limit: options.pageSize ?? 500 })
      for (const error of listed.malformed) {
        yield* Metric.update(metrics.malformed, 1)
        yield* Effect.logWarning(`skipping malformed object: ${error.message}`)
      }
      const changes = yield* commit(store.replace(listed.items))
      state.resourceVersion = listed.resourceVersion
      yield* Deferred.succeed(synced, undefined)
      const count = (type: Change<A>["type"]) => changes.filter((change) => change.type === type).length
      yield* Effect.logInfo(
        first
          ? `listed ${listed.items.length} objects at resourceVersion ${listed.resourceVersion}`
          : `relisted ${listed.items.length} objects at resourceVersion ${listed.resourceVersion}: ` +
              `${count("Added")} added, ${count("Modified")} modified, ${count("Deleted")} deleted meanwhile`
      )
    })

    const handle = (event: WatchEvent<A>): Effect.Effect<void> => {
      switch (event.type) {
        case "BOOKMARK":
          return Effect.sync(() => {
            if (event.resourceVersion !== "") state.resourceVersion = event.resourceVersion
          })
        case "MALFORMED":
          return Effect.gen(function* () {
            yield* Metric.update(metrics.malformed, 1)
            yield* Effect.logWarning(`skipping malformed object: ${event.error.message}`)
            if (event.resourceVersion !== undefined) state.resourceVersion = event.resourceVersion
          })
        default:
          return commit(store.apply(event)).pipe(
            Effect.andThen(
              Effect.sync(() => {
                const version = event.object.metadata.resourceVersion
                if (version !== undefined && version !== "") state.resourceVersion = version
              })
            )
          )
      }
    }

    /** One watch from the current resourceVersion, until it ends or fails. */
    const watchOnce = (from: string) =>
      Effect.gen(function* () {
        const timeoutSeconds = yield* Random.nextIntBetween(minTimeoutSeconds, maxTimeoutSeconds)
        const idle =
          options.watchdog === undefined
            ? Duration.sum(Duration.seconds(timeoutSeconds), margin)
            : Duration.fromInputUnsafe(options.watchdog)
        let received = 0
        const started = yield* Clock.currentTimeMillis
        yield* Metric.update(metrics.watches, 1)
        yield* Effect.logDebug(`watching from resourceVersion ${from} (timeout ${timeoutSeconds}s)`)
        const result = yield* kube
          .watch(resource, { ...selector, resourceVersion: from, timeoutSeconds, allowWatchBookmarks: true })
          .pipe(
            Stream.timeoutOrElse({
              duration: idle,
              orElse: () =>
                Stream.fail(new WatchdogTimeout({ message: `no event or bookmark for ${Duration.format(idle)}` }))
            }),
            Stream.runForEach((event) => {
              received++
              return handle(event)
            }),
            Effect.result
          )
        const lasted = (yield* Clock.currentTimeMillis) - started
        return { result, received, lasted }
      })

    const sleepAfterFailure = (what: string, error: WatchFailure, immediateFirst: boolean) =>
      Effect.gen(function* () {
        state.failures++
        const wait =
          immediateFirst && state.failures === 1
            ? Duration.zero
            : Reconnect.delay(state.failures, backoff, yield* Random.next)
        yield* logFailure(what, error, wait)
        yield* Effect.sleep(wait)
      })

    const step = Effect.gen(function* () {
      const from = state.resourceVersion
      if (from === undefined) {
        const listed = yield* Effect.result(relist)
        if (Result.isFailure(listed)) yield* sleepAfterFailure("list", listed.failure, false)
        return
      }
      const { result, received, lasted } = yield* watchOnce(from)
      // A watch that delivered anything proves the connection works again.
      if (received > 0) state.failures = 0
      if (Result.isSuccess(result)) {
        yield* Metric.update(metrics.watchRestarts("timeout"), 1)
        // The server ended the watch at its timeout (or closed it gracefully): resume.
        // One that closes at once with nothing in it is not healthy (an API server
        // shutting down, a proxy): back off as client-go does with "very short watches".
        if (received === 0 && lasted < shortWatchMillis) {
          yield* sleepAfterFailure("watch", new ShortWatch({ message: `watch closed after ${lasted} ms` }), false)
        } else state.failures = 0
        return
      }
      const error = result.failure
      if (error._tag === "Gone") {
        state.resourceVersion = undefined
        yield* Metric.update(metrics.watchRestarts("gone"), 1)
        yield* Metric.update(metrics.relists, 1)
        yield* sleepAfterFailure(`watch from resourceVersion ${from}`, error, true)
        return
      }
      if (error._tag === "WatchdogTimeout") {
        yield* Metric.update(metrics.watchRestarts("watchdog"), 1)
        yield* sleepAfterFailure("watch", error, true)
        return
      }
      yield* Metric.update(metrics.watchRestarts("error"), 1)
      yield* sleepAfterFailure("watch", error, false)
    })

    // Every failure is handled in `step`; a defect (a bug) is logged and the loop
    // restarts after a pause rather than leaving a cache silently frozen.
    const loop = step.pipe(
      Effect.forever,
      Effect.catchCause((cause) =>
        Cause.hasInterruptsOnly(cause)
          ? Effect.failCause(cause)
          : Effect.logError("reflector loop crashed; restarting", cause).pipe(
              Effect.andThen(Effect.sleep(Reconnect.delay(10, backoff, 0.5)))
            )
      ),
      Effect.forever,
      Effect.annotateLogs({ kind: resource.kind, cache: description })
    )
    yield* Effect.forkScoped(loop)

    const changes = (changeOptions?: { readonly replay?: boolean }): Stream.Stream<Change<A>> =>
      Stream.unwrap(
        Semaphore.withPermit(
          lock,
          Effect.gen(function* () {
            const subscription = yield* PubSub.subscribe(pubsub)
            const snapshot = changeOptions?.replay === false ? [] : yield* store.list()
            const replayed = snapshot.map((object): Change<A> => ({ type: "Added", object }))
            return Stream.concat(Stream.fromIterable(replayed), Stream.fromSubscription(subscription))
          })
        )
      )

    const reflector: Reflector<A> = {
      description,
      store: store.reader,
      changes,
      synced: Deferred.await(synced),
      isSynced: Deferred.isDone(synced),
      resourceVersion: Effect.sync(() => Option.fromUndefinedOr(state.resourceVersion))
    }
    return reflector
  })
