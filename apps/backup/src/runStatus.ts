import { type BackupDatabaseSchemaStatus, JobLabels } from "@db-backup-operator/backup-api"
import type { Job } from "@db-backup-operator/kube"
import { Conditions } from "@db-backup-operator/operator"
import type { Outcome } from "./outcome.ts"

/**
 * What the status says about finished runs, as pure functions of the status,
 * the run's Job and outcome, and the time: the controller records an outcome
 * with them, and their table tests pin down what a user reads afterwards.
 */

type Status = BackupDatabaseSchemaStatus

/** A time as status fields write it: RFC 3339, UTC, whole seconds. */
export const iso = (millis: number): string => new Date(millis).toISOString().replace(/\.\d{3}Z$/u, "Z")

/** The condition that tells how the last retention pass went. */
export const retentionCondition = "Retention"

/**
 * The status of a run that failed (or vanished): its dump never completed, so
 * `backupLocation` goes back to the last successful backup's, or away.
 *
 * @example
 * ```ts
 * failedRun({ status: "Running", backupLocation: "gs://b/new.sql.gz", lastSuccessfulBackupLocation: "gs://b/old.sql.gz" }, "orders-20260501100020")
 * // { status: "Failed", jobName: "orders-20260501100020", backupLocation: "gs://b/old.sql.gz", lastSuccessfulBackupLocation: "gs://b/old.sql.gz" }
 * ```
 */
export const failedRun = (status: Status, jobName: string): Status => {
  const { backupLocation: _, ...rest } = status
  return {
    ...rest,
    status: "Failed",
    jobName,
    ...(status.lastSuccessfulBackupLocation === undefined
      ? {}
      : { backupLocation: status.lastSuccessfulBackupLocation })
  }
}

/**
 * The status once the latest run has finished with `outcome`: the outcome's
 * fields, `Ready` (True with the location after a success; False with the
 * runner's reason after a failure), and the `Retention` condition when the
 * run applied a retention (False with the store's error when it could not
 * finish: the backup stands, the next run tries again).
 *
 * @example
 * ```ts
 * declare const job: Job, outcome: Outcome
 * const next = recordOutcome({ status: { status: "Running" }, job, outcome, generation: 3, now: Date.now() })
 * next.status // "Success" or "Failed"
 * ```
 */
export const recordOutcome = (run: {
  readonly status: Status
  readonly job: Job
  readonly outcome: Outcome
  readonly generation: number | undefined
  readonly now: number
}): Status => {
  const { status, job, outcome, generation, now } = run
  const condition = (input: Omit<Conditions.ConditionInput, "observedGeneration">) => ({
    ...input,
    ...(generation === undefined ? {} : { observedGeneration: generation })
  })
  const finishedAt = outcome.finishedAt ?? iso(now)
  const took =
    (Date.parse(finishedAt) - Date.parse(job.status?.startTime ?? job.metadata.creationTimestamp ?? "")) / 1000
  const duration = Number.isNaN(took) ? {} : { lastBackupDurationSeconds: Math.max(0, Math.round(took)) }
  const jobName = job.metadata.name ?? ""
  if (outcome.phase === "Failed") {
    const failed: Status = { ...failedRun(status, jobName), ...duration, lastFailedBackupTime: finishedAt }
    return {
      ...failed,
      conditions: Conditions.setCondition(
        failed.conditions,
        condition({ type: "Ready", status: "False", reason: "BackupFailed", message: outcome.reason }),
        now
      )
    }
  }
  const location = job.metadata.annotations?.[JobLabels.Annotation.location]
  const succeeded: Status = {
    ...status,
    status: "Success",
    jobName,
    ...(location === undefined ? {} : { backupLocation: location, lastSuccessfulBackupLocation: location }),
    ...duration,
    lastSuccessfulBackupTime: finishedAt,
    ...(outcome.sizeBytes === undefined ? {} : { lastBackupSizeBytes: outcome.sizeBytes }),
    ...(outcome.sha256 === undefined ? {} : { lastBackupSha256: outcome.sha256 }),
    ...(outcome.retention === undefined ? {} : { retainedBackups: outcome.retention.retained })
  }
  let conditions = Conditions.setCondition(
    succeeded.conditions,
    condition({
      type: "Ready",
      status: "True",
      reason: "BackupSucceeded",
      message: `backup ${location ?? ""} completed`
    }),
    now
  )
  const retention = outcome.retention
  if (retention !== undefined) {
    conditions = Conditions.setCondition(
      conditions,
      condition(
        retention.error === undefined
          ? {
              type: retentionCondition,
              status: "True",
              reason: "RetentionApplied",
              message: `${retention.retained} backups kept, ${retention.deleted} deleted by the last run`
            }
          : {
              type: retentionCondition,
              status: "False",
              reason: "RetentionFailed",
              message: `${retention.error} (${retention.deleted} deleted before it stopped; the next successful run tries again)`
            }
      ),
      now
    )
  }
  return { ...succeeded, conditions }
}
