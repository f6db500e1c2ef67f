import {
  KubeClient,
  type KubeError,
  type KubeErrors,
  type KubeObject,
  type Resource,
  type WatchEvent
} from "@db-backup-operator/kube"
import { Cause, Clock, Data, Duration, Effect, Metric, Random, References, Result, Stream } from "effect"
import * as Backoff from "../backoff/Backoff.ts"
import type { ObjectEvent } from "./Change.ts"
import * as ReflectorMetrics from "./ReflectorMetrics.ts"

/** Which objects of a kind are watched. All fields optional: everything, cluster-wide. */
export interface Selector {
  /** Only this namespace (namespaced kinds); all namespaces when absent. */
  readonly namespace?: string
  /** A label selector, e.g. `app.kubernetes.io/managed-by=db-backup-operator`. */
  readonly labelSelector?: string
  /** A field selector, e.g. `status.phase=Running`. */
  readonly fieldSelector?: string
}

/** Timing of a watcher. Defaults suit production; tests shrink them. */
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
  /**
   * Reconnect backoff after failed lists and watches, jittered by [0.8, 1.2).
   * Default 200 ms doubling to 30 s ({@link Backoff.reconnectDefaults}).
   */
  readonly backoff?: Backoff.Options
  /** List page size. Default 500. */
  readonly pageSize?: number
}

export interface Options<A extends KubeObject, I> extends Selector, Timing {
  readonly resource: Resource.Resource<A, I>
  /**
   * Start from a snapshot instead of a full list: the stream starts with
   * `Listed` (reason `resume`) for `objects` and the first watch starts at
   * `resourceVersion`, as though a list had returned them. If that version has
   * expired, the usual relist follows.
   */
  readonly resume?: { readonly resourceVersion: string; readonly objects: ReadonlyArray<A> }
}

/**
 * What a watcher reports, in order.
 *
 * - `Listed`: the complete set of objects at `resourceVersion` (the first list,
 *   every relist after `410 Gone`, or the `resume` snapshot); a consumer
 *   replaces what it holds with it.
 * - `Watched`: one change from the watch, with the object.
 * - `Malformed`: an object that does not match the kind's Schema, skipped (from
 *   a list or a watch); `resourceVersion` is the watch event's, if it had one.
 *
 * Bookmarks are not reported: they only move the watch's resourceVersion on.
 */
export type Event<A> =
  | {
      readonly _tag: "Listed"
      readonly reason: "initial" | "relist" | "resume"
      readonly objects: ReadonlyArray<A>
      readonly resourceVersion: string
    }
  | { readonly _tag: "Watched"; readonly event: ObjectEvent<A> }
  | {
      readonly _tag: "Malformed"
      readonly error: KubeErrors.DecodeError
      readonly resourceVersion: string | undefined
    }

/** A watch delivered nothing, not even a bookmark, for longer than allowed. */
export class WatchdogTimeout extends Data.TaggedError("WatchdogTimeout")<{ readonly message: string }> {}

/** A watch that the server closed at once without any event. */
export class ShortWatch extends Data.TaggedError("ShortWatch")<{ readonly message: string }> {}

type WatchFailure = KubeError | WatchdogTimeout | ShortWatch

// client-go's threshold for a "very short watch".
const shortWatchMillis = 1000

const defaultWatchTimeout = { min: Duration.minutes(5), max: Duration.minutes(10) } as const
const defaultWatchdogMargin = Duration.seconds(30)

/**
 * Human-readable description of a kind and selector, used in logs and as the `cache` metric label.
 *
 * @example
 * ```ts
 * import * as Watcher from "./Watcher.ts"
 *
 * Watcher.describe("Job", { namespace: "db", labelSelector: "app=backup" }) // "Job namespace=db labels=app=backup"
 * ```
 */
export const describe = (kind: string, selector: Selector): string =>
  describeScope(kind, selector.namespace === undefined ? "all-namespaces" : `namespace=${selector.namespace}`, selector)

/**
 * {@link describe} with the namespace part given, e.g. `namespaces=a,b` for a Cache over several reflectors.
 *
 * @example
 * ```ts
 * import * as Watcher from "./Watcher.ts"
 *
 * Watcher.describeScope("ConfigMap", "namespaces=a,b", { labelSelector: "app=x" }) // "ConfigMap namespaces=a,b labels=app=x"
 * ```
 */
export const describeScope = (kind: string, scope: string, selector: Omit<Selector, "namespace">): string => {
  const parts = [kind, scope]
  if (selector.labelSelector !== undefined && selector.labelSelector !== "")
    parts.push(`labels=${selector.labelSelector}`)
  if (selector.fieldSelector !== undefined && selector.fieldSelector !== "")
    parts.push(`fields=${selector.fieldSelector}`)
  return parts.join(" ")
}

/** Just the selector fields of `options` (the list and watch requests take nothing else). */
const selectorOf = (options: Selector): Selector => ({
  ...(options.namespace === undefined ? {} : { namespace: options.namespace }),
  ...(options.labelSelector === undefined ? {} : { labelSelector: options.labelSelector }),
  ...(options.fieldSelector === undefined ? {} : { fieldSelector: options.fieldSelector })
})

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
 * List + watch of one kind and selector, as a stream that never fails and
 * ends only when interrupted:
 *
 * - a paginated list (`Listed`), then a watch from its resourceVersion with
 *   bookmarks (`Watched`, `Malformed`);
 * - a server-side timeout (5–10 min) ends each watch cleanly; the next one
 *   resumes from the last resourceVersion seen (events and bookmarks);
 * - a watchdog restarts a watch that went silent for longer than its timeout;
 * - `410 Gone` (expired resourceVersion) triggers a relist (`Listed` again);
 * - other failures, and watches the server closes at once with nothing in
 *   them, reconnect with jittered exponential backoff (200 ms doubling to 30 s),
 *   reset once a watch delivers something.
 *
 * Failures are logged and counted (`reflector_*` metrics, labelled with the
 * kind and {@link describe}); logs carry `kind` and `cache` annotations.
 *
 * @example
 * ```ts
 * import { ConfigMap } from "@db-backup-operator/kube"
 * import * as Watcher from "./Watcher.ts"
 * import { Effect, Stream } from "effect"
 *
 * const program = Watcher.make({ resource: ConfigMap, namespace: "db" }).pipe(
 *   Stream.runForEach((event) => Effect.log(event._tag))
 * )
 * ```
 */
export const make = <A extends KubeObject, I>(options: Options<A, I>): Stream.Stream<Event<A>, never, KubeClient> =>
  Stream.unwrap(
    Effect.gen(function* () {
      const kube = yield* KubeClient
      const { resource } = options
      const selector = selectorOf(options)
      const description = describe(resource.kind, selector)
      const metrics = ReflectorMetrics.forCache(resource.kind, description)
      const backoff: Backoff.Options = { ...Backoff.reconnectDefaults, ...options.backoff }
      const reconnect = yield* Backoff.driver(Backoff.schedule({ ...backoff, jitter: true }))
      const timeout = options.watchTimeout ?? defaultWatchTimeout
      const minTimeoutSeconds = Math.max(1, Math.round(Duration.toSeconds(timeout.min)))
      const maxTimeoutSeconds = Math.max(minTimeoutSeconds, Math.round(Duration.toSeconds(timeout.max)))
      const margin = Duration.fromInputUnsafe(options.watchdogMargin ?? defaultWatchdogMargin)

      // Owned by this stream; a stream runs one step at a time.
      const state: { resourceVersion: string | undefined; listed: boolean } = {
        resourceVersion: options.resume?.resourceVersion,
        listed: options.resume !== undefined
      }

      const sleepAfterFailure = (what: string, error: WatchFailure, immediateFirst: boolean) =>
        Effect.gen(function* () {
          const delay = yield* reconnect.next
          // A 410 or a stalled connection is worth one immediate retry; a second in a row backs off.
          const wait = immediateFirst && (yield* reconnect.attempts) === 1 ? Duration.zero : delay
          yield* logFailure(what, error, wait)
          yield* Effect.sleep(wait)
        })

      const list: Stream.Stream<Event<A>> = Stream.unwrap(
        Effect.gen(function* () {
          yield* Metric.update(metrics.lists, 1)
          const listed = yield* Effect.result(kube.list(resource, { ...selector, limit: options.pageSize ?? 500 }))
          if (Result.isFailure(listed)) {
            yield* sleepAfterFailure("list", listed.failure, false)
            return Stream.empty
          }
          const { items, malformed, resourceVersion } = listed.success
          const reason = state.listed ? "relist" : "initial"
          state.listed = true
          state.resourceVersion = resourceVersion
          const events: Array<Event<A>> = malformed.map((error) => ({
            _tag: "Malformed",
            error,
            resourceVersion: undefined
          }))
          events.push({ _tag: "Listed", reason, objects: items, resourceVersion })
          return Stream.fromIterable(events)
        })
      )

      /** One watch from `from`, until it ends or fails (then after the backoff). */
      const watch = (from: string): Stream.Stream<Event<A>> =>
        Stream.unwrap(
          Effect.gen(function* () {
            const timeoutSeconds = yield* Random.nextIntBetween(minTimeoutSeconds, maxTimeoutSeconds)
            const idle =
              options.watchdog === undefined
                ? Duration.sum(Duration.seconds(timeoutSeconds), margin)
                : Duration.fromInputUnsafe(options.watchdog)
            const started = yield* Clock.currentTimeMillis
            let received = 0
            yield* Metric.update(metrics.watches, 1)
            yield* Effect.logDebug(`watching from resourceVersion ${from} (timeout ${timeoutSeconds}s)`)

            const observe = (event: WatchEvent<A>): ReadonlyArray<Event<A>> => {
              received++
              switch (event.type) {
                case "BOOKMARK":
                  if (event.resourceVersion !== "") state.resourceVersion = event.resourceVersion
                  return []
                case "MALFORMED":
                  if (event.resourceVersion !== undefined) state.resourceVersion = event.resourceVersion
                  return [{ _tag: "Malformed", error: event.error, resourceVersion: event.resourceVersion }]
                default: {
                  const version = event.object.metadata.resourceVersion
                  if (version !== undefined && version !== "") state.resourceVersion = version
                  return [{ _tag: "Watched", event: { type: event.type, object: event.object } }]
                }
              }
            }

            // A watch that delivered anything proves the connection works again.
            const resetIfHealthy = Effect.suspend(() => (received > 0 ? reconnect.reset : Effect.void))

            const ended = Effect.gen(function* () {
              yield* resetIfHealthy
              yield* Metric.update(metrics.watchRestarts("timeout"), 1)
              // The server ended the watch at its timeout (or closed it gracefully): resume.
              // One that closes at once with nothing in it is not healthy (an API server
              // shutting down, a proxy): back off as client-go does with "very short watches".
              const lasted = (yield* Clock.currentTimeMillis) - started
              if (received === 0 && lasted < shortWatchMillis) {
                yield* sleepAfterFailure("watch", new ShortWatch({ message: `watch closed after ${lasted} ms` }), false)
              } else yield* reconnect.reset
            })

            const failed = (error: WatchFailure) =>
              Effect.gen(function* () {
                yield* resetIfHealthy
                if (error._tag === "Gone") {
                  state.resourceVersion = undefined
                  yield* Metric.update(metrics.watchRestarts("gone"), 1)
                  yield* Metric.update(metrics.relists, 1)
                  return yield* sleepAfterFailure(`watch from resourceVersion ${from}`, error, true)
                }
                if (error._tag === "WatchdogTimeout") {
                  yield* Metric.update(metrics.watchRestarts("watchdog"), 1)
                  return yield* sleepAfterFailure("watch", error, true)
                }
                yield* Metric.update(metrics.watchRestarts("error"), 1)
                yield* sleepAfterFailure("watch", error, false)
              })

            return kube
              .watch(resource, { ...selector, resourceVersion: from, timeoutSeconds, allowWatchBookmarks: true })
              .pipe(
                Stream.timeoutOrElse({
                  duration: idle,
                  orElse: () =>
                    Stream.fail(new WatchdogTimeout({ message: `no event or bookmark for ${Duration.format(idle)}` }))
                }),
                Stream.map(observe),
                Stream.flattenIterable,
                Stream.concat(Stream.fromEffectDrain(ended)),
                Stream.catch((error) => Stream.fromEffectDrain(failed(error)))
              )
          })
        )

      // Every failure is handled in `list` and `watch`; a defect (a bug) is logged and
      // the loop restarts after a pause rather than leaving a cache silently frozen.
      const step = Stream.suspend(() =>
        state.resourceVersion === undefined ? list : watch(state.resourceVersion)
      ).pipe(
        Stream.catchCause((cause) =>
          Cause.hasInterruptsOnly(cause)
            ? Stream.failCause(cause)
            : Stream.fromEffectDrain(
                Effect.logError("reflector loop crashed; restarting", cause).pipe(
                  Effect.andThen(Effect.sleep(Backoff.delay(10, backoff)))
                )
              )
        )
      )

      const resumed: Stream.Stream<Event<A>> =
        options.resume === undefined
          ? Stream.empty
          : Stream.succeed({
              _tag: "Listed",
              reason: "resume",
              objects: options.resume.objects,
              resourceVersion: options.resume.resourceVersion
            })
      return Stream.concat(resumed, Stream.forever(step)).pipe(
        Stream.updateService(References.CurrentLogAnnotations, (annotations) => ({
          ...annotations,
          kind: resource.kind,
          cache: description
        }))
      )
    })
  )
