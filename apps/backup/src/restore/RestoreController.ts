import {
  Backup,
  BackupDatabaseSchema,
  BackupStorage,
  JobLabels,
  Restore,
  type RestoreStatus,
  RunnerContract
} from "@db-backup-operator/backup-api"
import { Job, jobOutcome, KubeClient } from "@db-backup-operator/kube"
import {
  Action,
  type Cache,
  Conditions,
  Controller,
  EventRecorder,
  Finalizers,
  Owners,
  Predicates,
  Source,
  Status
} from "@db-backup-operator/operator"
import { Clock, Data, Effect, Option } from "effect"
import { BackupSettings } from "../BackupSettings.ts"
import { checkConsent } from "../consent.ts"
import { jobFailure, notStarted, podProblem, podsOf, terminationMessage } from "../outcome.ts"
import { type ObservedRestoreJob, planRestore, type RestoreOutcome } from "./plan.ts"
import { restoreJob } from "./restoreJob.ts"
import { type ReadySource, type Source as RestoreSource, resolveRestoreSource, sourceResourceName } from "./source.ts"

/** Deleting a Restore first deletes its Job (in any namespace): a running restore stops, committing nothing. */
export const restoreFinalizer = "backup.csyeteam03.xyz/restore-finalizer"

const fieldManager = "db-backup-operator"

/** The Job name a Restore was to get belongs to another Restore (never expected: the name carries a hash of the Restore). */
class JobNameTaken extends Data.TaggedError("JobNameTaken")<{ readonly job: string }> {
  override get message() {
    return `Job ${this.job} already exists for another Restore`
  }
}

/** Restore Jobs, watched by label in the Manager's namespaces, each mapped to its Restore. */
const restoreJobs = Source.watches(
  Job,
  (job) => {
    const key = JobLabels.restoreKeyOf(job.metadata)
    return key === undefined ? [] : [key]
  },
  { labelSelector: JobLabels.restoreJobSelector }
)

/** The Restore's Job from the cache (one at most: its name is fixed). */
const cachedJobsOf = (restore: Restore, jobs: Cache<Job>) =>
  jobs.list((job) => job.metadata.labels?.[JobLabels.restoreUidLabel] === restore.metadata.uid)

/** The Restore's Job, read live in `namespace` (the cache may not show it yet). */
const liveJobsOf = (restore: Restore, namespace: string) =>
  KubeClient.use((kube) =>
    kube.list(Job, { namespace, labelSelector: `${JobLabels.restoreUidLabel}=${restore.metadata.uid ?? ""}` })
  ).pipe(Effect.map((list) => list.items))

const keyIn = (restore: Restore, name: string | undefined) =>
  name === undefined ? [] : [`${restore.metadata.namespace ?? ""}/${name}`]

/** The Backup a Restore names: its success (or failure) wakes the Restore waiting for it. */
const backupRecords = Source.references(Backup, (restore: Restore) => keyIn(restore, restore.spec.source.backupName))

/** The resource whose latest backup a Restore restores: each backup it records wakes a Restore waiting for one. */
const backupResources = Source.references(BackupDatabaseSchema, (restore: Restore) =>
  keyIn(restore, restore.spec.source.backupDatabaseSchemaName)
)

/** The BackupStorage a `source.location` names. */
const backupStorages = Source.references(BackupStorage, (restore: Restore) =>
  keyIn(restore, restore.spec.source.storageRef?.name)
)

/** How a finished Job ended, from its Pod's termination message. */
const outcomeOf = (job: Job, message: string | undefined): RestoreOutcome => {
  if (jobOutcome(job) === "Failed") return jobFailure(job, message)
  const summary = message === undefined ? Option.none() : RunnerContract.decodeRestoreSuccessMessage(message)
  return {
    phase: "Succeeded",
    finishedAt: job.status?.completionTime,
    ...(Option.isSome(summary) ? { summary: summary.value } : {})
  }
}

/** The Job as the plan needs it: Pods are read (live) only when the Job finished, or has no ready Pod. */
const observeJob = (job: Job) =>
  Effect.gen(function* () {
    const running = jobOutcome(job) === undefined
    if (running && (job.status?.ready ?? 0) > 0) return { job } satisfies ObservedRestoreJob
    const pods = yield* podsOf(job)
    if (!running) return { job, outcome: outcomeOf(job, terminationMessage(pods)) } satisfies ObservedRestoreJob
    const problem = podProblem(pods, "restore")
    return {
      job,
      notStarted: notStarted(pods),
      ...(problem === undefined ? {} : { problem })
    } satisfies ObservedRestoreJob
  })

/** The Restore's source from the caches, with the Secrets' consent checked (live) when it is ready. */
const observeSource = (
  restore: Restore,
  caches: {
    readonly records: Cache<Backup>
    readonly resources: Cache<BackupDatabaseSchema>
    readonly storages: Cache<BackupStorage>
  }
) =>
  Effect.gen(function* () {
    const settings = yield* BackupSettings
    const namespace = restore.metadata.namespace ?? ""
    const { backupName, backupDatabaseSchemaName } = restore.spec.source
    const records = yield* caches.records.list(
      (record) =>
        record.metadata.namespace === namespace &&
        (backupName !== undefined
          ? record.metadata.name === backupName
          : record.spec.backupDatabaseSchemaName === backupDatabaseSchemaName)
    )
    const resourceName = sourceResourceName(restore, records)
    const resource =
      resourceName === undefined
        ? undefined
        : Option.getOrUndefined(yield* caches.resources.get(`${namespace}/${resourceName}`))
    const storageName = restore.spec.source.storageRef?.name ?? resource?.spec.storageRef?.name
    const storage =
      storageName === undefined
        ? undefined
        : Option.getOrUndefined(yield* caches.storages.get(`${namespace}/${storageName}`))
    const source = resolveRestoreSource(restore, { records, resource, storage }, settings)
    if (source._tag !== "Ready") return source
    const problem = yield* checkConsent(source.needConsent, source.consentFor)
    return problem === undefined ? source : ({ _tag: "Waiting", ...problem } satisfies RestoreSource)
  })

/**
 * Creates the Job of a ready source. A Job the API server refuses comes back
 * as the reason to fail the Restore with; one that exists already is this
 * Restore's (an earlier pass whose status write lost to a newer read).
 */
const startJob = (restore: Restore, source: ReadySource) =>
  Effect.gen(function* () {
    const kube = yield* KubeClient
    const settings = yield* BackupSettings
    const owner =
      source.jobNamespace === restore.metadata.namespace
        ? yield* Owners.controllerReference(restore, Restore).pipe(Effect.orDie)
        : undefined
    const job = restoreJob(restore, source, settings, owner)
    return yield* kube.create(Job, job, { fieldManager }).pipe(
      Effect.andThen(Effect.logInfo(`started restore Job ${source.jobNamespace}/${job.metadata.name}`)),
      Effect.as(undefined),
      Effect.catchTag("AlreadyExists", () =>
        Effect.flatMap(
          liveJobsOf(restore, source.jobNamespace),
          (ours): Effect.Effect<undefined, JobNameTaken> =>
            ours.some((existing) => existing.metadata.name === job.metadata.name)
              ? Effect.succeed(undefined)
              : Effect.fail(new JobNameTaken({ job: `${source.jobNamespace}/${job.metadata.name}` }))
        )
      ),
      Effect.catchTag("Invalid", (error) => Effect.succeed(`the API server refused the restore Job: ${error.message}`))
    )
  })

/** A live Restore (carrying the finalizer): observe, plan, act; one status write per pass. */
const reconcileRestore = (
  restore: Restore,
  caches: {
    readonly jobs: Cache<Job>
    readonly records: Cache<Backup>
    readonly resources: Cache<BackupDatabaseSchema>
    readonly storages: Cache<BackupStorage>
  }
) =>
  Effect.gen(function* () {
    const status = restore.status ?? {}
    // Ended: nothing more to do, and nothing to read.
    if (status.phase === "Succeeded" || status.phase === "Failed") return Action.done
    const events = yield* EventRecorder
    // Started by an earlier pass, not in the cache: a live list tells a lagging cache from a deleted Job.
    const job =
      (yield* cachedJobsOf(restore, caches.jobs))[0] ??
      (status.phase === "Running" && status.jobNamespace !== undefined
        ? (yield* liveJobsOf(restore, status.jobNamespace))[0]
        : undefined)
    const observedJob = job === undefined ? undefined : yield* observeJob(job)
    const source = job === undefined && status.phase !== "Running" ? yield* observeSource(restore, caches) : undefined
    let plan = planRestore({ restore, job: observedJob, source, now: yield* Clock.currentTimeMillis })
    if (plan.start !== undefined) {
      const refused = yield* startJob(restore, plan.start)
      if (refused !== undefined) {
        plan = planRestore({
          restore,
          job: undefined,
          source: { _tag: "Refused", reason: "JobInvalid", message: refused },
          now: yield* Clock.currentTimeMillis
        })
      }
    }
    // A verification's outcome goes to its Backup first: once the Restore has ended, no pass looks again.
    const ended = plan.status.phase === "Succeeded" || plan.status.phase === "Failed"
    const verified =
      ended && restore.spec.verify === true && plan.status.backupName !== undefined
        ? yield* recordVerification(restore, plan.status, caches.records)
        : undefined
    // With the resourceVersion the plan was made from: a pass that read a Restore older than the
    // last write fails with Conflict and plans again, so no outcome or Event is recorded twice.
    yield* Status.patchStatus(Restore, restore, plan.status, { fieldManager, optimisticLock: true })
    for (const event of plan.events) {
      const note = { reason: event.reason, action: "Restore", note: event.note }
      yield* event.type === "Normal" ? events.normal(restore, note) : events.warning(restore, note)
    }
    if (verified !== undefined) {
      yield* verified.type === "Normal"
        ? events.normal(verified.record, verified.note)
        : events.warning(verified.record, verified.note)
    }
    return plan.requeueAfter === undefined ? Action.done : Action.requeueAfter(plan.requeueAfter)
  })

/**
 * A verification's outcome on the `Backup` it verified: the `Verified`
 * condition (the backup's resource reads its last verification from it), and
 * the Event to emit on the record once the Restore's status holds the outcome.
 * A record gone meanwhile has nothing left to tell.
 */
const recordVerification = (restore: Restore, status: RestoreStatus, records: Cache<Backup>) =>
  Effect.gen(function* () {
    const namespace = restore.metadata.namespace ?? ""
    const found = Option.getOrUndefined(yield* records.get(`${namespace}/${status.backupName ?? ""}`))
    if (found === undefined) return undefined
    const verified = status.phase === "Succeeded"
    const message = `${verified ? "" : "verification failed: "}${status.message ?? ""} (Restore ${restore.metadata.name ?? ""})`
    const condition = {
      type: "Verified",
      status: verified ? "True" : "False",
      reason: verified ? "Verified" : "VerificationFailed",
      message
    } as const
    yield* Status.patchStatus(
      Backup,
      found,
      {
        ...found.status,
        conditions: Conditions.setCondition(found.status?.conditions, condition, yield* Clock.currentTimeMillis)
      },
      { fieldManager }
    ).pipe(Effect.catchTag("NotFound", () => Effect.void))
    return {
      record: found,
      type: verified ? ("Normal" as const) : ("Warning" as const),
      note: { reason: verified ? "BackupVerified" : "VerificationFailed", action: "Verify", note: message }
    }
  })

/** Deletion: the Restore's Job goes (a running restore is stopped and commits nothing). */
const finalize = (restore: Restore, jobs: Cache<Job>) =>
  Effect.gen(function* () {
    const kube = yield* KubeClient
    for (const job of yield* cachedJobsOf(restore, jobs)) {
      yield* kube
        .delete(Job, job.metadata.name ?? "", {
          ...(job.metadata.namespace === undefined ? {} : { namespace: job.metadata.namespace }),
          propagationPolicy: "Background"
        })
        .pipe(Effect.catchTag("NotFound", () => Effect.void))
    }
    return Action.done
  })

/**
 * The Restore controller: resolves each Restore's source (a Backup, the
 * latest successful backup of a BackupDatabaseSchema, or a URL), runs one
 * restore Job for it, and records the outcome in the status and an Event.
 * A Restore runs once; its spec is immutable.
 *
 * @example
 * ```ts
 * Manager.run({ controllers: [restoreController({ namespaces: undefined })] })
 * ```
 */
export const restoreController = (options: { readonly namespaces?: ReadonlyArray<string> | undefined }) =>
  Controller.make({
    name: "restore",
    for: Restore,
    ...(options.namespaces === undefined ? {} : { predicates: [Predicates.inNamespaces(options.namespaces)] }),
    watches: [restoreJobs, backupRecords, backupResources, backupStorages],
    reconcile: ({ object, cache }) => {
      if (object === undefined) return Effect.succeed(Action.done)
      const caches = {
        jobs: cache(restoreJobs),
        records: cache(backupRecords),
        resources: cache(backupResources),
        storages: cache(backupStorages)
      }
      return Finalizers.withFinalizer(Restore, object, restoreFinalizer, {
        apply: (restore) => reconcileRestore(restore, caches),
        cleanup: (restore) => finalize(restore, caches.jobs)
      })
    }
  })
