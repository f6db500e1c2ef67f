import { Metric } from "effect"

// client-go once exported reflector_* metrics under similar names; the labels
// here (kind, cache) let one dashboard compare the caches of a Manager.

const lists = Metric.counter("reflector_lists_total", {
  description: "Full lists made by reflectors (the initial list and every relist).",
  incremental: true
})
const relists = Metric.counter("reflector_relists_total", {
  description: "Relists after the watch's resourceVersion expired (410 Gone).",
  incremental: true
})
const watches = Metric.counter("reflector_watches_total", {
  description: "Watch requests started by reflectors.",
  incremental: true
})
const watchRestarts = Metric.counter("reflector_watch_restarts_total", {
  description: "Watches that ended and were restarted, by reason (timeout, watchdog, gone, error).",
  incremental: true
})
const malformed = Metric.counter("reflector_malformed_objects_total", {
  description: "Objects skipped because they do not match the kind's Schema.",
  incremental: true
})
const objects = Metric.gauge("reflector_store_objects", { description: "Objects currently in a reflector's store." })

/** Why a watch ended. */
export type RestartReason = "timeout" | "watchdog" | "gone" | "error"

/** The metrics of one reflector, labelled `kind` and `cache` (its selector description). */
export interface ReflectorMetrics {
  readonly lists: Metric.Counter<number>
  readonly relists: Metric.Counter<number>
  readonly watches: Metric.Counter<number>
  readonly watchRestarts: (reason: RestartReason) => Metric.Counter<number>
  readonly malformed: Metric.Counter<number>
  readonly objects: Metric.Gauge<number>
}

/**
 * @example
 * ```ts
 * const metrics = forCache("ConfigMap", "namespace=db")
 * yield* Metric.update(metrics.watchRestarts("watchdog"), 1)
 * ```
 */
export const forCache = (kind: string, cache: string): ReflectorMetrics => {
  const attributes = { kind, cache }
  return {
    lists: Metric.withAttributes(lists, attributes),
    relists: Metric.withAttributes(relists, attributes),
    watches: Metric.withAttributes(watches, attributes),
    watchRestarts: (reason) => Metric.withAttributes(watchRestarts, { ...attributes, reason }),
    malformed: Metric.withAttributes(malformed, attributes),
    objects: Metric.withAttributes(objects, attributes)
  }
}
