import type { KubeClient, KubeObject } from "@db-backup-operator/kube"
import { Cause, Deferred, Effect, Metric, Option, type Scope, Stream } from "effect"
import * as Backoff from "../backoff/Backoff.ts"
import type { Change } from "./Change.ts"
import * as FanOut from "./FanOut.ts"
import * as Reflection from "./Reflection.ts"
import * as ReflectorMetrics from "./ReflectorMetrics.ts"
import * as Store from "./Store.ts"
import * as Watcher from "./Watcher.ts"

export {
  describe,
  describeScope,
  type Selector,
  ShortWatch,
  type Timing,
  WatchdogTimeout
} from "./Watcher.ts"

/** What to cache, and how to watch it ({@link Watcher.Options}). */
export type Options<A extends KubeObject, I> = Watcher.Options<A, I>

/**
 * A watch cache of one kind: a {@link Store.Store} kept current by list + watch,
 * and the stream of changes applied to it.
 *
 * @example
 * ```ts
 * import { ConfigMap, Resource } from "@db-backup-operator/kube"
 * import { Reflector } from "@db-backup-operator/operator"
 * import { Effect, Stream } from "effect"
 *
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
  /**
   * The resourceVersion of the last list, watch event or skipped object the
   * store has taken in (a watch may already be further on, from bookmarks);
   * `None` until the first list.
   */
  readonly resourceVersion: Effect.Effect<Option.Option<string>>
}

/**
 * Starts a reflector in the current Scope: a {@link Watcher} (list, then watch
 * with bookmarks; 410 Gone => relist; reconnect with backoff; watchdog) whose
 * events are applied to the store ({@link Reflection.apply}) and whose changes
 * are published to every subscriber of `changes` ({@link FanOut}):
 *
 * - a relist replaces the store and emits `Deleted` (final state unknown) for
 *   objects that vanished meanwhile;
 * - objects that do not match the Schema are logged (object and field named),
 *   counted and skipped;
 * - with `resume`, the store starts from the snapshot and the reflector counts
 *   as synced as soon as `make` returns.
 *
 * Everything stops when the Scope closes.
 *
 * @example
 * ```ts
 * import { Job } from "@db-backup-operator/kube"
 * import { Reflector } from "@db-backup-operator/operator"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const jobs = yield* Reflector.make({ resource: Job, namespace: "db", labelSelector: "app=backup" })
 *   yield* jobs.synced
 *   return yield* jobs.store.size
 * }).pipe(Effect.scoped)
 * ```
 */
export const make = <A extends KubeObject, I>(
  options: Options<A, I>
): Effect.Effect<Reflector<A>, never, KubeClient | Scope.Scope> =>
  Effect.gen(function* () {
    const { resource } = options
    const description = Watcher.describe(resource.kind, options)
    const metrics = ReflectorMetrics.forCache(resource.kind, description)
    const store = yield* Store.make<A>()
    const fanOut = yield* FanOut.make<Change<A>>(
      Effect.map(store.list(), (objects) => objects.map((object): Change<A> => ({ type: "Added", object })))
    )
    const synced = yield* Deferred.make<void>()
    // Written only by the fiber below; readers go through Effect.sync.
    let resourceVersion: string | undefined

    const take = (event: Watcher.Event<A>): Effect.Effect<void> =>
      Effect.gen(function* () {
        if (event._tag === "Malformed") {
          yield* Metric.update(metrics.malformed, 1)
          yield* Effect.logWarning(`skipping malformed object: ${event.error.message}`)
          if (event.resourceVersion !== undefined) resourceVersion = event.resourceVersion
          return
        }
        const changes = yield* fanOut.publish(Reflection.apply(store, event))
        yield* Metric.update(metrics.objects, yield* store.size)
        if (event._tag === "Watched") {
          const version = event.event.object.metadata.resourceVersion
          if (version !== undefined && version !== "") resourceVersion = version
          return
        }
        resourceVersion = event.resourceVersion
        yield* Deferred.succeed(synced, undefined)
        const count = (type: Change<A>["type"]) => changes.filter((change) => change.type === type).length
        if (event.reason === "initial")
          yield* Effect.logInfo(`listed ${event.objects.length} objects at resourceVersion ${event.resourceVersion}`)
        else if (event.reason === "relist")
          yield* Effect.logInfo(
            `relisted ${event.objects.length} objects at resourceVersion ${event.resourceVersion}: ` +
              `${count("Added")} added, ${count("Modified")} modified, ${count("Deleted")} deleted meanwhile`
          )
      })

    // The watcher handles every failure itself; a defect here (a bug) is logged and
    // the reflector starts over from a fresh list rather than leaving its cache
    // silently frozen.
    const { resume, ...relisting } = options
    const reflect = (watcher: Watcher.Options<A, I>) =>
      Watcher.make(watcher).pipe(
        Stream.runForEach(take),
        Effect.catchCause((cause) =>
          Cause.hasInterruptsOnly(cause)
            ? Effect.failCause(cause)
            : Effect.logError("reflector loop crashed; restarting", cause).pipe(
                Effect.andThen(Effect.sleep(Backoff.delay(10, { ...Backoff.reconnectDefaults, ...options.backoff })))
              )
        )
      )
    yield* reflect(options).pipe(
      Effect.andThen(Effect.forever(reflect(relisting))),
      Effect.annotateLogs({ kind: resource.kind, cache: description }),
      Effect.forkScoped
    )
    // The resumed snapshot is the watcher's first event and needs no I/O.
    if (resume !== undefined) yield* Deferred.await(synced)

    const reflector: Reflector<A> = {
      description,
      store: store.reader,
      changes: (changeOptions) => fanOut.subscribe(changeOptions),
      synced: Deferred.await(synced),
      isSynced: Deferred.isDone(synced),
      resourceVersion: Effect.sync(() => Option.fromUndefinedOr(resourceVersion))
    }
    return reflector
  })
