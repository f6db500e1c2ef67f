import { JobLabels, type Restore, type RestoreStatus, type RunnerContract } from "@db-backup-operator/backup-api"
import type { Job } from "@db-backup-operator/kube"
import { Conditions } from "@db-backup-operator/operator"
import { Duration } from "effect"
import type { PodProblem } from "../outcome.ts"
import { restoreJobNameFor } from "./restoreJob.ts"
import { type ReadySource, type Source, targetText } from "./source.ts"

/**
 * One pass of a Restore, planned from what was observed: the status to
 * write, the Job to start, the Events to emit, when to look again. Pure: the
 * controller observes, calls {@link planRestore} and carries the plan out.
 */

/** How a finished restore Job ended. */
export type RestoreOutcome =
  | {
      readonly phase: "Succeeded"
      readonly finishedAt: string | undefined
      /** The runner's summary (absent when its termination message was lost). */
      readonly summary?: RunnerContract.RestoreSuccessMessage
    }
  | { readonly phase: "Failed"; readonly finishedAt: string | undefined; readonly reason: string }

/** The Restore's Job as observed: finished (with its outcome), or running (with why its Pod cannot start). */
export interface ObservedRestoreJob {
  readonly job: Job
  readonly outcome?: RestoreOutcome
  readonly problem?: PodProblem
  /** Running, and its Pod has not started yet (none, or Pending). */
  readonly notStarted?: boolean
}

export interface RestoreObservation {
  readonly restore: Restore
  /** Its Job, from the cache or (status Running, the cache without it) a live list. */
  readonly job: ObservedRestoreJob | undefined
  /** The source, decided only when the Restore has no Job and has not ended. */
  readonly source: Source | undefined
  readonly now: number
}

export interface RestoreEvent {
  readonly type: "Normal" | "Warning"
  readonly reason: string
  readonly note: string
}

export interface RestorePlan {
  readonly status: RestoreStatus
  /** The source to start a Job for. */
  readonly start?: ReadySource
  /** Emitted after the status is written: the status is what says they were. */
  readonly events: ReadonlyArray<RestoreEvent>
  readonly requeueAfter?: Duration.Duration
}

/** How often a Restore waiting for its source, or for its Pod to start, is looked at again. */
export const waitingRecheck = Duration.seconds(15)

/** The condition a Restore reports: `Succeeded`, Unknown until it ends. */
export const conditionType = "Succeeded"

const withCondition = (
  restore: Restore,
  status: RestoreStatus,
  condition: { readonly status: "True" | "False" | "Unknown"; readonly reason: string; readonly message: string },
  now: number
): RestoreStatus => ({
  ...status,
  ...(restore.metadata.generation === undefined ? {} : { observedGeneration: restore.metadata.generation }),
  message: condition.message,
  conditions: Conditions.setCondition(
    status.conditions,
    {
      type: conditionType,
      ...condition,
      ...(restore.metadata.generation === undefined ? {} : { observedGeneration: restore.metadata.generation })
    },
    now
  )
})

const iso = (millis: number) => new Date(millis).toISOString()

/** How a restore and a verification (`spec.verify`) are told apart in conditions, Events and messages. */
const wordsOf = (restore: Restore) =>
  restore.spec.verify === true
    ? { done: "Verified", succeeded: "BackupVerified", failed: "VerificationFailed", started: "VerificationStarted" }
    : { done: "Restored", succeeded: "RestoreSucceeded", failed: "RestoreFailed", started: "RestoreStarted" }

const describeSuccess = (
  restore: Restore,
  status: RestoreStatus,
  summary: RunnerContract.RestoreSuccessMessage | undefined
) => {
  const into =
    restore.spec.verify === true
      ? `a scratch database on ${status.target ?? "the target server"}, dropped afterwards`
      : (status.target ?? summary?.database ?? "the target")
  return summary === undefined
    ? `${restore.spec.verify === true ? "verified" : "restored"} ${status.location ?? "the backup"} into ${into}`
    : `${restore.spec.verify === true ? "verified: restored" : "restored"} ${summary.tables} table${summary.tables === 1 ? "" : "s"} of ${summary.location} into ${into} in ${summary.seconds} s${summary.rowsVerified ? ", every table's row count checked against the manifest" : ""}`
}

/**
 * What a Restore's Job says it restores, where to, since when: the status a
 * pass that started the Job wrote, or would have (its write can lose to a
 * newer read; the Job's annotations are written with the Job).
 */
const startedBy = (job: Job): RestoreStatus => {
  const annotations = job.metadata.annotations ?? {}
  const backupName = annotations[JobLabels.Annotation.backup]
  const location = annotations[JobLabels.Annotation.location]
  const target = annotations[JobLabels.Annotation.target]
  return {
    ...(backupName === undefined ? {} : { backupName }),
    ...(location === undefined ? {} : { location }),
    ...(target === undefined ? {} : { target }),
    ...(job.metadata.creationTimestamp === undefined ? {} : { startTime: job.metadata.creationTimestamp }),
    ...(job.metadata.name === undefined ? {} : { jobName: job.metadata.name }),
    ...(job.metadata.namespace === undefined ? {} : { jobNamespace: job.metadata.namespace })
  }
}

/** A finished Job's outcome, recorded once. */
const finish = (restore: Restore, status: RestoreStatus, outcome: RestoreOutcome, now: number): RestorePlan => {
  const completionTime = outcome.finishedAt ?? iso(now)
  const words = wordsOf(restore)
  if (outcome.phase === "Succeeded") {
    const message = describeSuccess(restore, status, outcome.summary)
    const summary = outcome.summary
    return {
      status: withCondition(
        restore,
        {
          ...status,
          phase: "Succeeded",
          completionTime,
          ...(summary === undefined
            ? {}
            : { tables: summary.tables, rowsVerified: summary.rowsVerified, sizeBytes: summary.storedBytes })
        },
        { status: "True", reason: words.done, message },
        now
      ),
      events: [{ type: "Normal", reason: words.succeeded, note: message }]
    }
  }
  return {
    status: withCondition(
      restore,
      { ...status, phase: "Failed", completionTime },
      { status: "False", reason: words.failed, message: outcome.reason },
      now
    ),
    events: [{ type: "Warning", reason: words.failed, note: `Job ${status.jobName ?? ""}: ${outcome.reason}` }]
  }
}

/**
 * Plans a pass: a Restore that has ended stays as it is; one with a Job
 * follows it (and records its outcome once it finishes); one without a Job
 * starts it once its source is ready, waits (Pending) while it may become
 * ready, and fails when it never will.
 *
 * @example
 * ```ts
 * declare const restore: Restore, source: ReadySource
 * planRestore({ restore, job: undefined, source, now: Date.now() }).start === source // true
 * ```
 */
export const planRestore = (observed: RestoreObservation): RestorePlan => {
  const { restore, job, source, now } = observed
  const recorded: RestoreStatus = restore.status ?? {}
  if (recorded.phase === "Succeeded" || recorded.phase === "Failed") return { status: recorded, events: [] }
  const status = job === undefined ? recorded : { ...startedBy(job.job), ...recorded }
  if (job?.outcome !== undefined) return finish(restore, status, job.outcome, now)
  if (job !== undefined) {
    if (job.problem !== undefined) {
      const repeated = status.message === job.problem.message
      return {
        status: withCondition(
          restore,
          { ...status, phase: "Running" },
          { status: "Unknown", reason: job.problem.reason, message: job.problem.message },
          now
        ),
        events: repeated ? [] : [{ type: "Warning", reason: job.problem.reason, note: job.problem.message }],
        requeueAfter: waitingRecheck
      }
    }
    return {
      status: withCondition(
        restore,
        { ...status, phase: "Running" },
        {
          status: "Unknown",
          reason: "Running",
          message: `restoring ${status.location ?? ""} into ${status.target ?? ""}`
        },
        now
      ),
      events: [],
      // Its Job's changes wake the Restore; a Pod that does not start changes nothing of the Job's.
      ...(job.notStarted === true ? { requeueAfter: waitingRecheck } : {})
    }
  }
  if (status.phase === "Running") {
    const message = `Job ${status.jobNamespace ?? ""}/${status.jobName ?? ""} was deleted before it finished: a restore commits all or nothing, so the target holds it only if the Job had committed; check the schema, or create another Restore`
    return finish(restore, status, { phase: "Failed", finishedAt: undefined, reason: message }, now)
  }
  if (source === undefined || source._tag === "Waiting") {
    const reason = source?.reason ?? "Pending"
    const message = source?.message ?? "waits for its source"
    return {
      status: withCondition(restore, { ...status, phase: "Pending" }, { status: "Unknown", reason, message }, now),
      events: status.message === message ? [] : [{ type: "Warning", reason, note: message }],
      requeueAfter: waitingRecheck
    }
  }
  if (source._tag === "Refused") {
    return {
      status: withCondition(
        restore,
        { ...status, phase: "Failed", completionTime: iso(now) },
        { status: "False", reason: source.reason, message: source.message },
        now
      ),
      events: [{ type: "Warning", reason: source.reason, note: source.message }]
    }
  }
  const target = targetText(source.connection)
  const started: RestoreStatus = {
    ...status,
    phase: "Running",
    ...(source.backupName === undefined ? {} : { backupName: source.backupName }),
    location: source.location,
    target,
    startTime: iso(now),
    jobName: restoreJobNameFor(restore, source.jobNamespace),
    jobNamespace: source.jobNamespace
  }
  return {
    status: withCondition(
      restore,
      started,
      { status: "Unknown", reason: "Running", message: `restoring ${source.location} into ${target}` },
      now
    ),
    start: source,
    events: [
      {
        type: "Normal",
        reason: wordsOf(restore).started,
        note:
          restore.spec.verify === true
            ? `verifies ${source.location} in a scratch database on ${target}`
            : `restores ${source.location} into ${target}`
      }
    ]
  }
}
