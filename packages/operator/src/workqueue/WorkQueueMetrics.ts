import { Metric } from "effect"

// Names, help texts and buckets follow client-go's workqueue metrics as
// controller-runtime registers them, so existing dashboards and alerts work.

// prometheus.ExponentialBuckets(10e-9, 10, 12): 10 ns .. 1000 s.
const durationBuckets = Array.from({ length: 12 }, (_, i) => Number(`1e${i - 8}`))

const depth = Metric.gauge("workqueue_depth", { description: "Current depth of workqueue" })
const adds = Metric.counter("workqueue_adds_total", {
  description: "Total number of adds handled by workqueue",
  incremental: true
})
const queueDuration = Metric.histogram("workqueue_queue_duration_seconds", {
  description: "How long in seconds an item stays in workqueue before being requested",
  boundaries: durationBuckets
})
const workDuration = Metric.histogram("workqueue_work_duration_seconds", {
  description: "How long in seconds processing an item from workqueue takes.",
  boundaries: durationBuckets
})
const unfinishedWork = Metric.gauge("workqueue_unfinished_work_seconds", {
  description:
    "How many seconds of work has been done that is in progress and hasn't been observed by work_duration. " +
    "Large values indicate stuck threads. One can deduce the number of stuck threads by observing the rate at which this increases."
})
const longestRunningProcessor = Metric.gauge("workqueue_longest_running_processor_seconds", {
  description: "How many seconds has the longest running processor for workqueue been running."
})
const retries = Metric.counter("workqueue_retries_total", {
  description: "Total number of retries handled by workqueue",
  incremental: true
})

/** The work queue metrics of one queue, labelled `name=<queue name>`. */
export interface WorkQueueMetrics {
  readonly depth: Metric.Gauge<number>
  readonly adds: Metric.Counter<number>
  readonly queueDuration: Metric.Histogram<number>
  readonly workDuration: Metric.Histogram<number>
  readonly unfinishedWork: Metric.Gauge<number>
  readonly longestRunningProcessor: Metric.Gauge<number>
  readonly retries: Metric.Counter<number>
}

/**
 * @example
 * ```ts
 * const metrics = WorkQueueMetrics.forQueue("backup")
 * yield* Metric.update(metrics.adds, 1)   // workqueue_adds_total{name="backup"}
 * ```
 */
export const forQueue = (name: string): WorkQueueMetrics => {
  const attributes = { name }
  return {
    depth: Metric.withAttributes(depth, attributes),
    adds: Metric.withAttributes(adds, attributes),
    queueDuration: Metric.withAttributes(queueDuration, attributes),
    workDuration: Metric.withAttributes(workDuration, attributes),
    unfinishedWork: Metric.withAttributes(unfinishedWork, attributes),
    longestRunningProcessor: Metric.withAttributes(longestRunningProcessor, attributes),
    retries: Metric.withAttributes(retries, attributes)
  }
}
