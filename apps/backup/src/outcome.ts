import { RunnerContract } from "@db-backup-operator/backup-api"
import { type Job, jobOutcome, type Pod } from "@db-backup-operator/kube"
import { Option } from "effect"

/** How a finished run ended, as the controller records it. */
export type Outcome =
  | {
      readonly phase: "Success"
      readonly finishedAt: string | undefined
      readonly sizeBytes?: number
      readonly sha256?: string
    }
  | { readonly phase: "Failed"; readonly finishedAt: string | undefined; readonly reason: string }

const newestFirst = (a: Pod, b: Pod) =>
  (b.metadata.creationTimestamp ?? "").localeCompare(a.metadata.creationTimestamp ?? "")

const terminationMessage = (pods: ReadonlyArray<Pod>): string | undefined => {
  for (const pod of [...pods].sort(newestFirst)) {
    for (const status of pod.status?.containerStatuses ?? []) {
      const message = status.state?.terminated?.message?.trim()
      if (message !== undefined && message.length > 0) return message
    }
  }
  return undefined
}

const conditionOf = (job: Job, type: string) =>
  job.status?.conditions?.find((condition) => condition.type === type && condition.status === "True")

/**
 * The outcome of a finished Job, or undefined while it runs. Only the Job
 * controller's terminal conditions count: a failed first Pod of a Job that is
 * still retrying is not a failed backup. The runner's termination message gives
 * the size and checksum on success and the one-line reason on failure.
 *
 * @example
 * ```ts
 * outcomeOf(job, pods) // { phase: "Failed", reason: "backup failed: pg_dump: password authentication failed ..." }
 * ```
 */
export const outcomeOf = (job: Job, pods: ReadonlyArray<Pod>): Outcome | undefined => {
  const outcome = jobOutcome(job)
  if (outcome === undefined) return undefined
  const message = terminationMessage(pods)
  if (outcome === "Complete") {
    const summary = message === undefined ? Option.none() : RunnerContract.decodeSuccessMessage(message)
    const finishedAt = job.status?.completionTime ?? conditionOf(job, "Complete")?.lastTransitionTime
    return Option.isSome(summary)
      ? { phase: "Success", finishedAt, sizeBytes: summary.value.sizeBytes, sha256: summary.value.sha256 }
      : { phase: "Success", finishedAt }
  }
  const failed = conditionOf(job, "Failed")
  const reason =
    message ?? [failed?.reason, failed?.message].filter((part) => part !== undefined).join(": ") ?? "the Job failed"
  return {
    phase: "Failed",
    finishedAt: failed?.lastTransitionTime,
    reason: reason.length > 0 ? reason : "the Job failed"
  }
}
