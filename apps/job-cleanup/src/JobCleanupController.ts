import { JobLabels } from "@db-backup-operator/backup-api"
import { Job, jobOutcome, KubeClient } from "@db-backup-operator/kube"
import { Action, Controller } from "@db-backup-operator/operator"
import { Effect } from "effect"

/** How many finished runs to keep per resource, like CronJob's history limits. */
export interface HistoryLimits {
  /** Successful Jobs kept (default 3). */
  readonly successful: number
  /** Failed Jobs kept, so failure logs stay readable (default 1). */
  readonly failed: number
}

export const defaultHistoryLimits: HistoryLimits = { successful: 3, failed: 1 }

const finishedAt = (job: Job): string =>
  job.status?.completionTime ??
  job.status?.conditions?.find(
    (condition) => condition.status === "True" && (condition.type === "Complete" || condition.type === "Failed")
  )?.lastTransitionTime ??
  job.metadata.creationTimestamp ??
  ""

/**
 * The finished Jobs of one resource that fall outside the history limits. Only
 * Jobs whose outcome the backup controller has recorded are candidates, so a
 * result is never lost to an early delete.
 *
 * @example
 * ```ts
 * declare const jobsOfOneResource: ReadonlyArray<Job>
 * expired(jobsOfOneResource, { successful: 3, failed: 1 }) // the 4th-newest success and older, the 2nd-newest failure and older
 * ```
 */
export const expired = (jobs: ReadonlyArray<Job>, limits: HistoryLimits): ReadonlyArray<Job> => {
  const recorded = jobs
    .filter(
      (job) => jobOutcome(job) !== undefined && job.metadata.annotations?.[JobLabels.Annotation.recorded] !== undefined
    )
    .sort((a, b) => finishedAt(b).localeCompare(finishedAt(a)))
  const succeeded = recorded.filter((job) => jobOutcome(job) === "Complete")
  const failed = recorded.filter((job) => jobOutcome(job) === "Failed")
  return [...succeeded.slice(limits.successful), ...failed.slice(limits.failed)]
}

/**
 * The job-cleanup controller: watches only backup Jobs (by label, in the
 * Manager's namespaces) and deletes a resource's finished, recorded Jobs beyond
 * the history limits, with `propagationPolicy: Background` so their Pods go too.
 *
 * @example
 * ```ts
 * import { Manager } from "@db-backup-operator/operator"
 * Manager.run({ controllers: [jobCleanupController({})] })
 * ```
 */
export const jobCleanupController = (options: { readonly limits?: HistoryLimits }) => {
  const limits = options.limits ?? defaultHistoryLimits
  return Controller.make({
    name: "backup-job-cleanup",
    for: Job,
    labelSelector: JobLabels.jobSelector,
    reconcile: ({ object, cache }) =>
      Effect.gen(function* () {
        if (object === undefined || jobOutcome(object) === undefined) return Action.done
        const uid = object.metadata.labels?.[JobLabels.Label.resourceUid]
        if (uid === undefined) return Action.done
        const kube = yield* KubeClient
        // A resource's Jobs may run in several namespaces (--allowed-namespaces): the cache spans them all.
        const jobs = yield* cache(Job).list((job) => job.metadata.labels?.[JobLabels.Label.resourceUid] === uid)
        for (const job of expired(jobs, limits)) {
          yield* kube
            .delete(Job, job.metadata.name ?? "", {
              ...(job.metadata.namespace === undefined ? {} : { namespace: job.metadata.namespace }),
              propagationPolicy: "Background",
              ...(job.metadata.uid === undefined ? {} : { preconditions: { uid: job.metadata.uid } })
            })
            .pipe(Effect.catchTags({ NotFound: () => Effect.void, Conflict: () => Effect.void }))
          yield* Effect.logInfo(`deleted finished backup Job ${job.metadata.namespace}/${job.metadata.name}`)
        }
        return Action.done
      })
  })
}
