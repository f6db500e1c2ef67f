import type { BackupDatabaseSchemaStatus } from "@db-backup-operator/backup-api"
import { Effect, Metric } from "effect"

/**
 * Per-resource backup metrics on the operator's `/metrics`, labelled
 * `namespace` and `name`, for alerts such as "no successful backup in two
 * schedule periods" (README shows the PromQL). The gauges are read from the
 * resource's status each time it is reconciled (every status write is
 * reconciled), so they say what status says; a series whose status field is
 * absent is removed, and every series of a deleted resource goes with it.
 */

const lastSuccess = Metric.gauge("db_backup_last_success_timestamp_seconds", {
  description: "When the last successful backup of the resource finished (Unix seconds)."
})
const lastFailure = Metric.gauge("db_backup_last_failure_timestamp_seconds", {
  description: "When the last failed backup of the resource finished (Unix seconds)."
})
const lastVerified = Metric.gauge("db_backup_last_verified_timestamp_seconds", {
  description: "When a backup of the resource last passed verification (Unix seconds; spec.verification)."
})
const lastDuration = Metric.gauge("db_backup_last_duration_seconds", {
  description: "How long the last finished backup run of the resource took."
})
const lastSize = Metric.gauge("db_backup_last_size_bytes", {
  description: "Size of the last successful backup's dump object."
})
const nextSchedule = Metric.gauge("db_backup_next_schedule_timestamp_seconds", {
  description: "When the next backup run of the resource starts (Unix seconds); absent while suspended."
})
const retained = Metric.gauge("db_backup_retained_backups", {
  description: "Successful backups of the resource in the bucket after its last run's retention."
})
const lastFailed = Metric.gauge("db_backup_last_run_failed", {
  description: "1 when the last finished backup run of the resource failed, 0 when it succeeded."
})
const runs = Metric.counter("db_backup_runs_total", {
  description: "Backup runs of the resource this operator process recorded, by result (success, failed).",
  incremental: true
})

const retentionDeleted = Metric.counter("db_backup_retention_deleted_total", {
  description: "Backups of the resource retention deleted from the bucket, as this operator process recorded them.",
  incremental: true
})

const results = ["success", "failed"] as const

const seconds = (timestamp: string | undefined) => {
  const millis = timestamp === undefined ? Number.NaN : Date.parse(timestamp)
  return Number.isNaN(millis) ? undefined : millis / 1000
}

const setOrRemove = (gauge: Metric.Gauge<number>, labels: Record<string, string>, value: number | undefined) => {
  const series = Metric.withAttributes(gauge, labels)
  return value === undefined ? Metric.remove(series) : Metric.update(series, value)
}

/**
 * Sets the resource's gauges from its status.
 *
 * @example
 * ```ts
 * yield* observe({ namespace: "team-a", name: "orders" }, { status: "Success", lastSuccessfulBackupTime: "2026-05-01T10:00:20Z" })
 * ```
 */
export const observe = (
  resource: { readonly namespace: string; readonly name: string },
  status: BackupDatabaseSchemaStatus | undefined
): Effect.Effect<void> => {
  const labels = { namespace: resource.namespace, name: resource.name }
  const lastRunFailed = status?.status === "Failed" ? 1 : status?.status === "Success" ? 0 : undefined
  return Effect.all(
    [
      setOrRemove(lastSuccess, labels, seconds(status?.lastSuccessfulBackupTime)),
      setOrRemove(lastFailure, labels, seconds(status?.lastFailedBackupTime)),
      setOrRemove(lastVerified, labels, seconds(status?.lastVerifiedTime)),
      setOrRemove(lastDuration, labels, status?.lastBackupDurationSeconds),
      setOrRemove(lastSize, labels, status?.lastBackupSizeBytes),
      setOrRemove(nextSchedule, labels, seconds(status?.nextScheduleTime)),
      setOrRemove(retained, labels, status?.retainedBackups),
      // While a run is in progress, the last finished one still counts.
      ...(status?.status === "Running" ? [] : [setOrRemove(lastFailed, labels, lastRunFailed)])
    ],
    { discard: true }
  )
}

/**
 * Counts one recorded run.
 *
 * @example
 * ```ts
 * yield* countRun({ namespace: "team-a", name: "orders" }, "success")
 * ```
 */
export const countRun = (
  resource: { readonly namespace: string; readonly name: string },
  result: (typeof results)[number]
): Effect.Effect<void> =>
  Metric.update(Metric.withAttributes(runs, { namespace: resource.namespace, name: resource.name, result }), 1)

/**
 * Counts the backups retention deleted after one run.
 *
 * @example
 * ```ts
 * yield* countDeleted({ namespace: "team-a", name: "orders" }, 2)
 * ```
 */
export const countDeleted = (
  resource: { readonly namespace: string; readonly name: string },
  deleted: number
): Effect.Effect<void> =>
  Metric.update(
    Metric.withAttributes(retentionDeleted, { namespace: resource.namespace, name: resource.name }),
    deleted
  )

/**
 * Removes every series of a resource that is gone.
 *
 * @example
 * ```ts
 * yield* forget({ namespace: "team-a", name: "orders" })
 * ```
 */
export const forget = (resource: { readonly namespace: string; readonly name: string }): Effect.Effect<void> => {
  const labels = { namespace: resource.namespace, name: resource.name }
  return Effect.all(
    [
      ...[lastSuccess, lastFailure, lastVerified, lastDuration, lastSize, nextSchedule, retained, lastFailed].map(
        (gauge) => Metric.remove(Metric.withAttributes(gauge, labels))
      ),
      ...results.map((result) => Metric.remove(Metric.withAttributes(runs, { ...labels, result }))),
      Metric.remove(Metric.withAttributes(retentionDeleted, labels))
    ],
    { discard: true }
  )
}
