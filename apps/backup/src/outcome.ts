import { RunnerContract } from "@db-backup-operator/backup-api"
import { type Job, jobOutcome, KubeClient, Pod } from "@db-backup-operator/kube"
import { Effect, Option } from "effect"

/** How a finished run ended, as the controller records it. */
export type Outcome =
  | {
      readonly phase: "Success"
      readonly finishedAt: string | undefined
      readonly sizeBytes?: number
      readonly sha256?: string
      /** The PostgreSQL server's version (`server_version_num`), as in the manifest. */
      readonly serverVersion?: string
      /** The output of `pg_dump --version` of the pg_dump that made the dump, as in the manifest. */
      readonly pgDumpVersion?: string
      /** What retention left and deleted after the run, when it ran. */
      readonly retention?: {
        /** Successful backups left in the bucket, this run's included. */
        readonly retained: number
        /** Backups deleted, and dumps of failed runs (each counts one). */
        readonly deleted: number
        /**
         * Run stamps (`YYYYMMDD-HHMMSS`) of the successful backups deleted, oldest
         * first; absent when the runner did not say (a runner older than the list).
         */
        readonly deletedRuns?: ReadonlyArray<string>
        readonly error?: string
      }
      /** The stamps of the successful backups the bucket holds after the run, newest first (see `SuccessMessage.catalog`). */
      readonly catalog?: ReadonlyArray<string>
    }
  | { readonly phase: "Failed"; readonly finishedAt: string | undefined; readonly reason: string }

const newestFirst = (a: Pod, b: Pod) =>
  (b.metadata.creationTimestamp ?? "").localeCompare(a.metadata.creationTimestamp ?? "")

/** The termination message of the newest Pod's container that left one (the runner's outcome). */
export const terminationMessage = (pods: ReadonlyArray<Pod>): string | undefined => {
  for (const pod of [...pods].sort(newestFirst)) {
    for (const status of pod.status?.containerStatuses ?? []) {
      const message = status.state?.terminated?.message?.trim()
      if (message !== undefined && message.length > 0) return message
    }
  }
  return undefined
}

/** The Job's terminal condition of this type, when it holds. */
export const conditionOf = (job: Job, type: string) =>
  job.status?.conditions?.find((condition) => condition.type === type && condition.status === "True")

/**
 * The outcome of a finished Job, or undefined while it runs. Only the Job
 * controller's terminal conditions count: a failed first Pod of a Job that is
 * still retrying is not a failed backup. The runner's termination message gives
 * the size, checksum, versions and what retention did (with the stamps of the
 * backups it deleted) on success, and the one-line reason on failure.
 *
 * @example
 * ```ts
 * declare const job: Job, pods: ReadonlyArray<Pod>
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
    if (Option.isNone(summary)) return { phase: "Success", finishedAt }
    const { sizeBytes, sha256, serverVersion, pgDumpVersion, retainedBackups, deletedBackups, deletedRuns } =
      summary.value
    const { retentionError, catalog } = summary.value
    return {
      phase: "Success",
      finishedAt,
      ...(catalog === undefined ? {} : { catalog }),
      sizeBytes,
      sha256,
      ...(serverVersion === undefined ? {} : { serverVersion }),
      ...(pgDumpVersion === undefined ? {} : { pgDumpVersion }),
      ...(retainedBackups === undefined
        ? {}
        : {
            retention: {
              retained: retainedBackups,
              deleted: deletedBackups ?? 0,
              ...(deletedRuns === undefined ? {} : { deletedRuns }),
              ...(retentionError === undefined ? {} : { error: retentionError })
            }
          })
    }
  }
  return jobFailure(job, message)
}

/**
 * A failed Job's outcome: the runner's termination message, else the Job
 * controller's reason (a deadline exceeded, a Pod that never ran).
 *
 * @example
 * ```ts
 * declare const job: Job
 * jobFailure(job, undefined) // { phase: "Failed", reason: "DeadlineExceeded: Job was active longer than specified deadline", ... }
 * ```
 */
export const jobFailure = (
  job: Job,
  message: string | undefined
): { readonly phase: "Failed"; readonly finishedAt: string | undefined; readonly reason: string } => {
  const failed = conditionOf(job, "Failed")
  const reason = message ?? [failed?.reason, failed?.message].filter((part) => part !== undefined).join(": ")
  return {
    phase: "Failed",
    finishedAt: failed?.lastTransitionTime,
    reason: reason.length > 0 ? reason : "the Job failed"
  }
}

/** Why a run's Pod is not starting, as the controller reports it on the resource. */
export interface PodProblem {
  readonly reason: string
  readonly message: string
}

/** Waiting reasons of a container that is on its way, not stuck. */
const starting = new Set(["ContainerCreating", "PodInitializing"])

/** The kubelet's wording for a missing env reference, mapped to the resource's condition reasons. */
const referenceReasons: ReadonlyArray<readonly [RegExp, string]> = [
  [/^secret ".*" not found/u, "SecretNotFound"],
  [/^couldn't find key .* in Secret /u, "SecretKeyNotFound"],
  [/^configmap ".*" not found/u, "ConfigMapNotFound"],
  [/^couldn't find key .* in ConfigMap /u, "ConfigMapKeyNotFound"]
]

/**
 * Why the newest Pod of a running Job cannot start its container, or
 * undefined while it starts or runs. The controller does not read Secrets it
 * need not check; a missing one (or key, or ConfigMap) shows up here, as the
 * kubelet reports it (`CreateContainerConfigError`), as do image pull errors.
 *
 * @example
 * ```ts
 * declare const pods: ReadonlyArray<Pod>
 * podProblem(pods) // { reason: "SecretNotFound", message: "the backup Pod cannot start: secret \"backup-secret\" not found (CreateContainerConfigError)" }
 * ```
 */
export const podProblem = (pods: ReadonlyArray<Pod>, what: "backup" | "restore" = "backup"): PodProblem | undefined => {
  const newest = [...pods].sort(newestFirst)[0]
  for (const status of newest?.status?.containerStatuses ?? []) {
    const waiting = status.state?.waiting
    if (waiting?.reason === undefined || starting.has(waiting.reason)) continue
    const detail = waiting.message?.trim() ?? ""
    const reason = referenceReasons.find(([pattern]) => pattern.test(detail))?.[1] ?? waiting.reason
    return {
      reason,
      message: `the ${what} Pod cannot start: ${detail.length > 0 ? `${detail} (${waiting.reason})` : waiting.reason}`
    }
  }
  return undefined
}

/**
 * Whether a running Job has yet to start its container: no Pod yet, or a
 * Pending one. The controller looks again shortly, because a Pod stuck
 * there changes no Job status it would be woken by.
 */
export const notStarted = (pods: ReadonlyArray<Pod>): boolean =>
  pods.length === 0 || pods.every((pod) => pod.status?.phase === undefined || pod.status.phase === "Pending")

/** Live read of one run's Pods (never a cluster-wide Pod cache). */
export const podsOf = (job: Job) =>
  Effect.gen(function* () {
    const kube = yield* KubeClient
    const pods = yield* kube.list(Pod, {
      ...(job.metadata.namespace === undefined ? {} : { namespace: job.metadata.namespace }),
      labelSelector: `job-name=${job.metadata.name ?? ""}`
    })
    return pods.items
  })
