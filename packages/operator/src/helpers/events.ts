import { Event, KubeClient, type KubeObject, type ObjectReference } from "@db-backup-operator/kube"
import { Clock, Context, Duration, Effect, Layer, Queue, Stream, SubscriptionRef } from "effect"
import { Lru } from "./lru.ts"
import type { OwnerKind } from "./owners.ts"
import { formatMicroTime } from "./time.ts"
import { KeyedTokenBucket } from "./tokenBucket.ts"

/**
 * Kubernetes Events (`events.k8s.io/v1`) for the objects a controller manages,
 * written like client-go's `tools/events` recorder: asynchronously (a reconcile
 * never waits for or fails on an Event), identical events merged into one Event
 * with a growing `series.count`, and a per-object rate limit so a hot loop cannot
 * flood the API server.
 */

/** `Normal` or `Warning`, the two types the API accepts. */
export type EventType = "Normal" | "Warning"

/** What happened, in the Event's own words. */
export interface EventInput {
  readonly type: EventType
  /** Why the action was taken, CamelCase (`BackupFailed`); at most 128 characters. */
  readonly reason: string
  /** What was done or failed (`CreateJob`); at most 128 characters. */
  readonly action: string
  /** For humans; cut to 1 KiB. Never put a secret here. */
  readonly note?: string
  /** apiVersion/kind of the regarding object when it lacks them (objects from lists do). */
  readonly regardingKind?: OwnerKind
}

/**
 * @example
 * ```ts
 * const reconcile = (backup: ConfigMap) => Effect.gen(function* () {
 *   const events = yield* EventRecorder
 *   yield* events.warning(backup, { reason: "SecretMissing", action: "Validate", note: "secret db/creds not found" })
 * })
 * ```
 */
export interface EventRecorderShape {
  /** Queues an Event about `regarding`. Never fails and never waits for the API server. */
  readonly record: (regarding: KubeObject, event: EventInput) => Effect.Effect<void>
  readonly normal: (regarding: KubeObject, event: Omit<EventInput, "type">) => Effect.Effect<void>
  readonly warning: (regarding: KubeObject, event: Omit<EventInput, "type">) => Effect.Effect<void>
  /** Waits until every queued Event has been written (or given up on). */
  readonly flush: Effect.Effect<void>
}

export interface EventRecorderOptions {
  /** The controller's name, `example.com/backup-controller` style (Event `reportingController`). */
  readonly reportingController: string
  /** This replica, e.g. the Pod name (Event `reportingInstance`, at most 128 characters). */
  readonly reportingInstance: string
  /** Identical events this close together extend one series (default 10 minutes). */
  readonly seriesWindow?: Duration.Input
  /** Events remembered for aggregation and objects remembered for rate limiting (default 4096 each). */
  readonly cacheSize?: number
  /** Events per object allowed at once (default 25, as client-go's spam filter). */
  readonly burst?: number
  /** Then one more per object per this interval (default 5 minutes). */
  readonly refillInterval?: Duration.Input
  /** Events waiting to be written; beyond this they are dropped (default 1000). */
  readonly queueSize?: number
}

/** The API's limits (events.k8s.io/v1 validation). */
const noteLimitBytes = 1024
const fieldLimit = 128

const encoder = new TextEncoder()

/**
 * Cuts `text` to at most `limit` UTF-8 bytes without splitting a character, marking
 * the cut with `...`.
 *
 * @example
 * ```ts
 * truncateUtf8("x".repeat(2000), 1024).length // 1024
 * ```
 */
export const truncateUtf8 = (text: string, limit: number): string => {
  if (encoder.encode(text).length <= limit) return text
  const marker = "..."
  let bytes = 0
  let end = 0
  for (const char of text) {
    const size = encoder.encode(char).length
    if (bytes + size > limit - marker.length) break
    bytes += size
    end += char.length
  }
  return `${text.slice(0, end)}${marker}`
}

/**
 * The reference an Event uses for `regarding`. Cluster-scoped objects have no
 * namespace.
 */
export const referenceOf = (object: KubeObject, kind?: OwnerKind): ObjectReference => {
  const { name, namespace, uid } = object.metadata
  const apiVersion = kind?.apiVersion ?? object.apiVersion
  const kindName = kind?.kind ?? object.kind
  return {
    ...(apiVersion === undefined ? {} : { apiVersion }),
    ...(kindName === undefined ? {} : { kind: kindName }),
    ...(name === undefined ? {} : { name }),
    ...(namespace === undefined ? {} : { namespace }),
    ...(uid === undefined ? {} : { uid })
  }
}

/** Identifies the regarding object: its uid, or its kind and name when it has none. */
const objectKey = (reference: ObjectReference): string =>
  reference.uid ??
  `${reference.apiVersion ?? ""}/${reference.kind ?? ""}/${reference.namespace ?? ""}/${reference.name ?? ""}`

/**
 * Which events are "the same" and therefore one series: same regarding object
 * (by uid), type, reason, action and note, as client-go's `getKey`.
 *
 * @example
 * ```ts
 * aggregationKey(ref, { type: "Warning", reason: "Failed", action: "Run", note: "x" }) ===
 *   aggregationKey(ref, { type: "Warning", reason: "Failed", action: "Run", note: "x" }) // true
 * ```
 */
export const aggregationKey = (
  regarding: ObjectReference,
  event: { readonly type: EventType; readonly reason: string; readonly action: string; readonly note?: string }
): string => JSON.stringify([objectKey(regarding), event.type, event.reason, event.action, event.note ?? ""])

interface Pending {
  readonly regarding: ObjectReference
  readonly type: EventType
  readonly reason: string
  readonly action: string
  readonly note: string
  readonly at: number
}

interface Series {
  readonly name: string
  readonly namespace: string
  readonly count: number
  readonly lastObserved: number
}

/** Event names as client-go makes them: `<regarding name>.<time in hex>`, unique per recorder. */
const eventName = (regardingName: string, at: number, sequence: number): string =>
  `${regardingName}.${(BigInt(at) * 1_000_000n + BigInt(sequence % 1_000_000)).toString(16)}`

/**
 * Builds a recorder whose writer fiber lives in the current Scope. Prefer
 * {@link EventRecorder.layer}.
 */
export const make = Effect.fn("EventRecorder.make")(function* (options: EventRecorderOptions) {
  const kube = yield* KubeClient
  const windowMillis = Duration.toMillis(Duration.fromInputUnsafe(options.seriesWindow ?? "10 minutes"))
  const capacity = options.cacheSize ?? 4096
  const limiter = new KeyedTokenBucket({
    burst: options.burst ?? 25,
    refillMillis: Duration.toMillis(Duration.fromInputUnsafe(options.refillInterval ?? "5 minutes")),
    capacity
  })
  const series = new Lru<string, Series>(capacity)
  const queue = yield* Queue.dropping<Pending>(options.queueSize ?? 1000)
  const pending = yield* SubscriptionRef.make(0)
  const reportingController = truncateUtf8(options.reportingController, 253)
  const reportingInstance = truncateUtf8(options.reportingInstance, fieldLimit)
  let sequence = 0

  const create = (event: Pending, key: string) =>
    Effect.gen(function* () {
      const namespace = event.regarding.namespace ?? "default"
      const name = eventName(event.regarding.name ?? "cluster", event.at, sequence++)
      yield* kube.create(
        Event,
        {
          metadata: { name, namespace },
          eventTime: formatMicroTime(event.at),
          reportingController,
          reportingInstance,
          action: event.action,
          reason: event.reason,
          note: event.note,
          type: event.type,
          regarding: event.regarding
        },
        { namespace }
      )
      series.set(key, { name, namespace, count: 1, lastObserved: event.at })
    })

  // The next occurrence of a recent event: count it on the existing Event. If that
  // Event is gone (events expire after an hour by default), start a new one.
  const extend = (event: Pending, key: string, current: Series) =>
    Effect.gen(function* () {
      const count = current.count + 1
      yield* kube.mergePatch(
        Event,
        current.name,
        { series: { count, lastObservedTime: formatMicroTime(event.at) } },
        { namespace: current.namespace }
      )
      series.set(key, { ...current, count, lastObserved: event.at })
    }).pipe(Effect.catchTag("NotFound", () => create(event, key)))

  const write = (event: Pending) => {
    const key = aggregationKey(event.regarding, event)
    const current = series.get(key)
    const effect =
      current !== undefined && event.at - current.lastObserved <= windowMillis
        ? extend(event, key, current)
        : create(event, key)
    return effect.pipe(
      Effect.catchCause((cause) =>
        Effect.logWarning("could not record an Event", cause).pipe(
          Effect.annotateLogs({
            regarding: `${event.regarding.kind ?? ""} ${event.regarding.namespace ?? ""}/${event.regarding.name ?? ""}`,
            reason: event.reason
          })
        )
      ),
      Effect.ensuring(SubscriptionRef.update(pending, (n) => n - 1))
    )
  }

  yield* Queue.take(queue).pipe(Effect.flatMap(write), Effect.forever, Effect.forkScoped)

  const flush: Effect.Effect<void> = SubscriptionRef.changes(pending).pipe(
    Stream.filter((n) => n <= 0),
    Stream.take(1),
    Stream.runDrain
  )
  // Finalizers run in reverse: this one, added after the writer fork, drains the
  // queue before the writer is interrupted, so Events recorded during shutdown land.
  yield* Effect.addFinalizer(() => flush.pipe(Effect.timeoutOption("5 seconds"), Effect.asVoid))

  const record = (regarding: KubeObject, event: EventInput): Effect.Effect<void> =>
    Effect.gen(function* () {
      const at = yield* Clock.currentTimeMillis
      const reference = referenceOf(regarding, event.regardingKind)
      if (!limiter.take(objectKey(reference), at)) {
        yield* Effect.logDebug("Event dropped by the per-object rate limit", { reason: event.reason })
        return
      }
      yield* SubscriptionRef.update(pending, (n) => n + 1)
      const accepted = yield* Queue.offer(queue, {
        regarding: reference,
        type: event.type,
        reason: truncateUtf8(event.reason, fieldLimit),
        action: truncateUtf8(event.action, fieldLimit),
        note: truncateUtf8(event.note ?? "", noteLimitBytes),
        at
      })
      if (!accepted) {
        yield* SubscriptionRef.update(pending, (n) => n - 1)
        yield* Effect.logWarning("Event dropped: too many Events waiting to be written", { reason: event.reason })
      }
    })

  const shape: EventRecorderShape = {
    record,
    normal: (regarding, event) => record(regarding, { ...event, type: "Normal" }),
    warning: (regarding, event) => record(regarding, { ...event, type: "Warning" }),
    flush
  }
  return shape
})

/**
 * Records Kubernetes Events. Provide {@link EventRecorder.layer} once per process
 * (it needs a `KubeClient`); {@link EventRecorder.noop} discards everything.
 *
 * @example
 * ```ts
 * const Events = EventRecorder.layer({ reportingController: "example.com/backup", reportingInstance: podName })
 * program.pipe(Effect.provide(Events), Effect.provide(KubeLive))
 * ```
 */
export class EventRecorder extends Context.Service<EventRecorder, EventRecorderShape>()(
  "@db-backup-operator/operator/EventRecorder"
) {
  static readonly layer = (options: EventRecorderOptions): Layer.Layer<EventRecorder, never, KubeClient> =>
    Layer.effect(EventRecorder, make(options))

  /** A recorder that records nothing (tests, tools). */
  static readonly noop: Layer.Layer<EventRecorder> = Layer.succeed(EventRecorder, {
    record: () => Effect.void,
    normal: () => Effect.void,
    warning: () => Effect.void,
    flush: Effect.void
  })
}
