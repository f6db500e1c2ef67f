import { BackupDatabaseSchema, type BackupDatabaseSchemaStatus, JobLabels } from "@db-backup-operator/backup-api"
import { Job, jobOutcome, KubeClient, KubeErrors, Pod, Secret } from "@db-backup-operator/kube"
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
  Status,
  TerminalError
} from "@db-backup-operator/operator"
import { Clock, Data, Duration, Effect, Result, Semaphore } from "effect"
import { access, consentProblem } from "./access.ts"
import { admit, serverOf } from "./admission.ts"
import * as BackupMetrics from "./BackupMetrics.ts"
import { BackupSettings } from "./BackupSettings.ts"
import { backupJob, planRun } from "./backupJob.ts"
import { notStarted, type Outcome, outcomeOf, podProblem } from "./outcome.ts"
import { failedRun, recordOutcome } from "./runStatus.ts"
import { type BackupSchedule, parseSchedule, planSlot, type SlotDecision } from "./schedule.ts"

/** Deleting a resource first deletes its Jobs, in every namespace; backups in the bucket stay. */
export const finalizer = "backup.csyeteam03.xyz/finalizer"

const fieldManager = "db-backup-operator"

/** How often a resource waiting for a Secret (its creation, its consent) is looked at again. */
const notReadyRecheck = Duration.seconds(30)

/** How often a run waiting for a free slot under the concurrency limits is looked at again. */
const admissionRecheck = Duration.seconds(5)

/** The condition a run waiting under the concurrency limits sets (False, with why); gone once it starts. */
const scheduledCondition = "Scheduled"

/** How often a run whose Pod has not started is looked at again. */
const podRecheck = Duration.seconds(10)

/**
 * The longest wait for a slot: a far one (`@yearly`) is planned again on the
 * way, so a timer never outlives what Node's timers can hold, and a stepped
 * clock is noticed.
 */
const longestWait = Duration.hours(1)

/** A problem the user can fix outside the resource (a Secret's consent); rechecked, reported in status and Events. */
class NotReady extends Data.TaggedError("NotReady")<{ readonly reason: string; readonly message: string }> {}

type Backup = BackupDatabaseSchema
type BackupStatus = BackupDatabaseSchemaStatus

const newestFirst = (a: Job, b: Job) =>
  (b.metadata.annotations?.[JobLabels.Annotation.scheduledAt] ?? b.metadata.creationTimestamp ?? "").localeCompare(
    a.metadata.annotations?.[JobLabels.Annotation.scheduledAt] ?? a.metadata.creationTimestamp ?? ""
  )

const scheduledAtOf = (job: Job): number | undefined => {
  const text = job.metadata.annotations?.[JobLabels.Annotation.scheduledAt] ?? job.metadata.creationTimestamp
  const millis = text === undefined ? Number.NaN : Date.parse(text)
  return Number.isNaN(millis) ? undefined : millis
}

const resourceOf = (backup: Backup) => ({
  namespace: backup.metadata.namespace ?? "",
  name: backup.metadata.name ?? ""
})

const iso = (millis: number) => new Date(millis).toISOString().replace(/\.\d{3}Z$/u, "Z")

/**
 * The resource's backup Jobs: watched by label in the Manager's namespaces
 * (which include every namespace a resource may run its Job in), each change
 * mapped to its resource's key.
 */
const backupJobs = Source.watches(
  Job,
  (job) => {
    const key = JobLabels.ownerKeyOf(job.metadata)
    return key === undefined ? [] : [key]
  },
  { labelSelector: JobLabels.jobSelector }
)

/**
 * The Jobs of one resource, newest first, from the backup Job cache. Workers
 * start only once that cache holds a full list, so right after an operator
 * restart a run in progress (or one whose status write was lost in the crash)
 * is seen, and no second one starts.
 */
const jobsOf = (backup: Backup, jobs: Cache<Job>) =>
  Effect.map(
    jobs.list((job) => job.metadata.labels?.[JobLabels.Label.resourceUid] === backup.metadata.uid),
    (list) => [...list].sort(newestFirst)
  )

/** Live read of one run's Pods (never a cluster-wide Pod cache). */
const podsOf = (job: Job) =>
  Effect.gen(function* () {
    const kube = yield* KubeClient
    const pods = yield* kube.list(Pod, {
      ...(job.metadata.namespace === undefined ? {} : { namespace: job.metadata.namespace }),
      labelSelector: `job-name=${job.metadata.name ?? ""}`
    })
    return pods.items
  })

const ready = (
  backup: Backup,
  status: BackupStatus,
  input: Omit<Conditions.ConditionInput, "type" | "observedGeneration">
) =>
  Effect.map(
    Conditions.setConditionNow(status.conditions, {
      type: "Ready",
      ...input,
      ...(backup.metadata.generation === undefined ? {} : { observedGeneration: backup.metadata.generation })
    }),
    (conditions): BackupStatus => ({ ...status, conditions })
  )

/** The Ready reasons that tell how the last run failed: kept until a run succeeds. */
const failedRunReasons: ReadonlySet<string> = new Set(["BackupFailed", "JobDeleted"])

/** Ready reflects the last finished run once the configuration is valid. */
const readyFromHistory = (backup: Backup, status: BackupStatus) => {
  if (status.status === "Failed") {
    const previous = Conditions.findCondition(status.conditions, "Ready")
    const told = previous !== undefined && failedRunReasons.has(previous.reason)
    return ready(backup, status, {
      status: "False",
      reason: told ? previous.reason : "BackupFailed",
      message: told ? previous.message : "the last backup failed"
    })
  }
  if (status.lastSuccessfulBackupTime !== undefined) {
    return ready(backup, status, {
      status: "True",
      reason: "BackupSucceeded",
      message: `last successful backup at ${status.lastSuccessfulBackupTime}`
    })
  }
  return ready(backup, status, { status: "Unknown", reason: "NoBackupYet", message: "no backup has finished yet" })
}

/**
 * Validates what the CRD cannot: the references the operator's settings allow
 * ({@link access}), then the consent of each Secret that must give it (one
 * live read of its metadata; the operator never reads a Secret's data). Where
 * no consent is needed the operator reads nothing: the kubelet resolves the
 * Secret, and a missing one shows up on the run's Pod ({@link podProblem}).
 */
const validate = (backup: Backup) =>
  Effect.gen(function* () {
    const settings = yield* BackupSettings
    const kube = yield* KubeClient
    const decided = access(backup, settings)
    if (decided._tag === "Refused") {
      return yield* new TerminalError({ reason: decided.reason, message: decided.message })
    }
    const resource = { namespace: backup.metadata.namespace ?? "", name: backup.metadata.name ?? "" }
    for (const use of decided.needConsent) {
      const metadata = yield* kube.getMetadata(Secret, use.name, { namespace: use.namespace }).pipe(
        Effect.catchTags({
          NotFound: () =>
            Effect.fail(
              new NotReady({
                reason: "SecretNotFound",
                message: `Secret ${use.namespace}/${use.name} (${use.field}) not found`
              })
            ),
          Forbidden: () =>
            Effect.fail(
              new NotReady({
                reason: "SecretNotReadable",
                message: `the operator may not read Secret ${use.namespace}/${use.name} (${use.field}) to check that it allows this use: grant it get on secrets in "${use.namespace}" (the Helm chart does for the targets of operator.allowedNamespaces and, with operator.requireSecretOptIn, for operator.watchNamespaces)`
              })
            )
        })
      )
      const problem = consentProblem(metadata.annotations, use, resource)
      // Rechecked every notReadyRecheck: the consent is given on the Secret, which this controller does not watch.
      if (problem !== undefined) return yield* new NotReady({ reason: "SecretNotShared", message: problem })
    }
    return decided
  })

/** The status after a finished run: changed only if it is the latest run. */
const withOutcome = (backup: Backup, status: BackupStatus, job: Job, outcome: Outcome, latest: boolean) =>
  latest
    ? Effect.map(Clock.currentTimeMillis, (now) =>
        recordOutcome({ status, job, outcome, generation: backup.metadata.generation, now })
      )
    : Effect.succeed(status)

/**
 * Announces a finished run whose outcome is already in the status: an Event,
 * then the `recorded` mark, which allows job-cleanup to delete the Job.
 */
const announceOutcome = (backup: Backup, job: Job, outcome: Outcome) =>
  Effect.gen(function* () {
    const kube = yield* KubeClient
    const events = yield* EventRecorder
    yield* BackupMetrics.countRun(resourceOf(backup), outcome.phase === "Success" ? "success" : "failed")
    if (outcome.phase === "Success" && outcome.retention !== undefined) {
      yield* BackupMetrics.countDeleted(resourceOf(backup), outcome.retention.deleted)
    }
    if (outcome.phase === "Success") {
      yield* events.normal(backup, {
        reason: "BackupSucceeded",
        action: "Backup",
        note: `Job ${job.metadata.name}: ${job.metadata.annotations?.[JobLabels.Annotation.location] ?? ""}${outcome.sizeBytes === undefined ? "" : ` (${outcome.sizeBytes} bytes)`}${outcome.retention === undefined ? "" : `; retention kept ${outcome.retention.retained}, deleted ${outcome.retention.deleted}`}`
      })
      if (outcome.retention?.error !== undefined) {
        // The backup stands; the next successful run tries the deletions again.
        yield* events.warning(backup, {
          reason: "RetentionFailed",
          action: "Retention",
          note: `Job ${job.metadata.name}: ${outcome.retention.error}`
        })
      }
    } else {
      yield* events.warning(backup, {
        reason: "BackupFailed",
        action: "Backup",
        note: `Job ${job.metadata.name}: ${outcome.reason}`
      })
    }
    yield* kube.mergePatch(
      Job,
      job.metadata.name ?? "",
      { metadata: { annotations: { [JobLabels.Annotation.recorded]: outcome.phase } } },
      { ...(job.metadata.namespace === undefined ? {} : { namespace: job.metadata.namespace }), fieldManager }
    )
  })

/**
 * What this operator process remembers per resource (by uid), because its
 * caches can lag behind its own writes: a reconcile triggered by one write (the
 * finalizer, the status) may run before the watch event of another (the new
 * Job, the status) arrives. Like controller-runtime's "expectations". After a
 * restart the caches are freshly listed, so nothing needs to survive one.
 */
interface Memory {
  /**
   * When a run was last started. Without it, a reconcile that sees no Job yet
   * in the cache and no `lastBackupTime` yet in the status would start another.
   */
  readonly started: Map<string, number>
  /**
   * The Job this process created last, until the cache shows it: without it, a
   * reconcile right after the create would take the run for one whose Job was deleted.
   */
  readonly created: Map<string, { readonly name: string; readonly namespace: string; readonly server: string }>
  /** Held while deciding whether a run may start and creating its Job: two workers never both take the last free place. */
  readonly admission: Semaphore.Semaphore
  /** The configuration problem last reported with a Warning, so it is reported once, not on every retry. */
  readonly reported: Map<string, string>
  /**
   * Uids of the resource's Jobs whose outcome this process has recorded, until
   * their `recorded` mark is in the cache: recording again would repeat the Event.
   */
  readonly recorded: Map<string, ReadonlySet<string>>
}

/**
 * The slot of the last run started: the newest of the status, the Jobs in the
 * cache and what this process started but may not see in its cache yet.
 * `lastBackupTime` counts too (resources from before schedules have only it;
 * it is never earlier than its run's slot, and no slot lies between the two).
 */
const lastSlotOf = (backup: Backup, status: BackupStatus, jobs: ReadonlyArray<Job>, memory: Memory) => {
  const starts = [
    status.lastScheduleTime === undefined ? Number.NaN : Date.parse(status.lastScheduleTime),
    status.lastBackupTime === undefined ? Number.NaN : Date.parse(status.lastBackupTime),
    memory.started.get(backup.metadata.uid ?? "") ?? Number.NaN,
    ...jobs.map((job) => scheduledAtOf(job) ?? Number.NaN)
  ].filter((millis) => !Number.isNaN(millis))
  return starts.length === 0 ? undefined : Math.max(...starts)
}

/**
 * The Job of the run the status calls `Running` when that Job is gone without
 * an outcome. Not while this process has just created that Job and it has
 * not reached the cache yet (`Memory.created`; the Job cache was fully listed before
 * the first reconcile, so after a restart a missing Job is really gone; a Job
 * job-cleanup deletes was recorded first, so its run is no longer `Running`).
 */
const vanishedRun = (backup: Backup, status: BackupStatus, jobs: ReadonlyArray<Job>, memory: Memory) => {
  const name = status.jobName
  if (status.status !== "Running" || name === undefined) return undefined
  if (jobs.some((job) => job.metadata.name === name)) return undefined
  return memory.created.get(backup.metadata.uid ?? "")?.name === name ? undefined : name
}

/** What the schedule asks now, from the resource's creation (the anchor of `@every`) and its last slot. */
const decide = (backup: Backup, schedule: BackupSchedule, last: number | undefined, now: number): SlotDecision => {
  const created = Date.parse(backup.metadata.creationTimestamp ?? "")
  return planSlot({
    schedule,
    anchor: Number.isNaN(created) ? now : created,
    last,
    now,
    suspend: backup.spec.suspend === true,
    startingDeadlineSeconds: backup.spec.startingDeadlineSeconds
  })
}

/** `status.nextScheduleTime` for a decision: absent while suspended. */
const withNextSlot = (status: BackupStatus, decision: SlotDecision): BackupStatus => {
  const { nextScheduleTime: _, ...rest } = status
  return decision._tag === "Suspended" ? rest : { ...rest, nextScheduleTime: iso(decision.next) }
}

/** Without the waiting run's `Scheduled` condition: no run of the resource is waiting now. */
const notWaiting = (status: BackupStatus): BackupStatus =>
  status.conditions?.some((condition) => condition.type === scheduledCondition) === true
    ? { ...status, conditions: Conditions.removeCondition(status.conditions, scheduledCondition) }
    : status

/** Reconcile again when the next slot comes (at the latest after {@link longestWait}). */
const untilNext = (decision: SlotDecision, now: number) =>
  decision._tag === "Suspended"
    ? Action.done
    : Action.requeueAfter(Duration.min(Duration.millis(Math.max(0, decision.next - now)), longestWait))

/**
 * The database server of every run in progress, of every resource: the
 * backup Jobs in the cache without an outcome, and the Jobs this process
 * created that the cache does not show yet.
 */
const runningServers = (jobs: Cache<Job>, memory: Memory) =>
  Effect.map(jobs.list(), (all) => {
    const known = new Set(all.map((job) => `${job.metadata.namespace}/${job.metadata.name}`))
    const unseen = [...memory.created.values()].filter((job) => !known.has(`${job.namespace}/${job.name}`))
    return [...all.filter((job) => jobOutcome(job) === undefined).map(jobServerOf), ...unseen.map((job) => job.server)]
  })

/** The server a backup Job's run uses: its annotation, or (Jobs of older operators) its runner's env. */
const jobServerOf = (job: Job): string => {
  const annotated = job.metadata.annotations?.[JobLabels.Annotation.databaseServer]
  if (annotated !== undefined) return annotated
  const env = job.spec?.template.spec?.containers[0]?.env ?? []
  const value = (name: string) => env.find((variable) => variable.name === name)?.value
  return serverOf({ dbHost: value("DB_HOST") ?? "", dbPort: Number(value("DB_PORT") ?? 0) })
}

/** Deletion: delete the resource's Jobs (bucket objects stay); `withFinalizer` then lets the resource go. */
const finalize = (backup: Backup, memory: Memory, jobs: Cache<Job>) =>
  Effect.gen(function* () {
    memory.started.delete(backup.metadata.uid ?? "")
    memory.created.delete(backup.metadata.uid ?? "")
    memory.reported.delete(backup.metadata.uid ?? "")
    memory.recorded.delete(backup.metadata.uid ?? "")
    const kube = yield* KubeClient
    // Running ones stop; finished ones go too: those in another namespace than the resource have no
    // owner reference, so the garbage collector would leave them there forever.
    for (const job of yield* jobsOf(backup, jobs)) {
      yield* kube
        .delete(Job, job.metadata.name ?? "", {
          ...(job.metadata.namespace === undefined ? {} : { namespace: job.metadata.namespace }),
          propagationPolicy: "Background"
        })
        .pipe(Effect.catchTag("NotFound", () => Effect.void))
      yield* Effect.logInfo(
        `deleted ${jobOutcome(job) === undefined ? "running" : "finished"} Job ${job.metadata.namespace}/${job.metadata.name}`
      )
    }
    return Action.done
  })

/** A live resource (already carrying the finalizer): validate, record finished runs, start the next. */
const backUp = (backup: Backup, memory: Memory, jobCache: Cache<Job>) =>
  Effect.gen(function* () {
    const settings = yield* BackupSettings
    const kube = yield* KubeClient
    const events = yield* EventRecorder
    let status: BackupStatus = backup.status ?? {}
    // The object the next status patch is computed against (each patch returns the updated one).
    let stored = backup

    const reportInvalid = (problem: NotReady | TerminalError) =>
      Effect.gen(function* () {
        const invalid = yield* ready(backup, status, {
          status: "False",
          reason: problem.reason,
          message: problem.message
        })
        yield* Status.patchStatus(BackupDatabaseSchema, stored, invalid, { fieldManager })
        // One Warning per problem, when it appears: our own status write (and every backoff retry)
        // reconciles again, and repeating the same Warning each time would only be noise.
        const uid = backup.metadata.uid ?? ""
        const problemKey = `${problem.reason}: ${problem.message}`
        if (memory.reported.get(uid) !== problemKey) {
          memory.reported.set(uid, problemKey)
          yield* events.warning(backup, { reason: problem.reason, action: "Validate", note: problem.message })
        }
      })
    const parsed = parseSchedule(
      backup.spec,
      `${backup.metadata.namespace ?? ""}/${backup.metadata.name ?? ""}`,
      settings.interval
    )
    if (Result.isFailure(parsed)) {
      // Waits for a spec change, like any other refused configuration.
      const refused = new TerminalError(parsed.failure)
      yield* reportInvalid(refused)
      return yield* Effect.fail(refused)
    }
    const schedule = parsed.success
    const checked = yield* validate(backup).pipe(
      Effect.catchTags({
        NotReady: (problem) => Effect.succeed(problem),
        TerminalError: (problem) => Effect.succeed(problem)
      })
    )
    if (checked._tag === "TerminalError") {
      // Waits for a spec change.
      yield* reportInvalid(checked)
      return yield* Effect.fail(checked)
    }
    if (checked._tag === "NotReady") {
      // Fixed elsewhere (a Secret created or annotated, a Role granted), which this controller
      // does not watch: looked at again at a steady pace, not an ever longer backoff.
      yield* reportInvalid(checked)
      return Action.requeueAfter(notReadyRecheck)
    }
    const allowed = checked
    memory.reported.delete(backup.metadata.uid ?? "")

    const jobs = yield* jobsOf(backup, jobCache)
    const created = memory.created.get(backup.metadata.uid ?? "")
    if (created !== undefined && jobs.some((job) => job.metadata.name === created.name)) {
      memory.created.delete(backup.metadata.uid ?? "")
    }
    // Record finished runs not yet recorded, oldest first, so the latest wins the status.
    const latestName = jobs[0]?.metadata.name
    const uid = backup.metadata.uid ?? ""
    const isMarked = (job: Job) => job.metadata.annotations?.[JobLabels.Annotation.recorded] !== undefined
    const recordedHere = new Set(
      jobs
        .filter((job) => !isMarked(job) && memory.recorded.get(uid)?.has(job.metadata.uid ?? "") === true)
        .map((job) => job.metadata.uid ?? "")
    )
    const finished: Array<{ readonly job: Job; readonly outcome: Outcome }> = []
    for (const job of [...jobs].reverse()) {
      if (isMarked(job) || recordedHere.has(job.metadata.uid ?? "")) continue
      if (jobOutcome(job) === undefined) continue
      const outcome = outcomeOf(job, yield* podsOf(job))
      if (outcome === undefined) continue
      status = yield* withOutcome(backup, status, job, outcome, job.metadata.name === latestName)
      finished.push({ job, outcome })
    }
    if (finished.length > 0) {
      // The status first: the `recorded` mark lets job-cleanup delete the Job, so it must never be set
      // for an outcome the status does not hold yet (a crash in between would lose it for good).
      stored = yield* Status.patchStatus(BackupDatabaseSchema, stored, status, { fieldManager })
      for (const { job, outcome } of finished) {
        yield* announceOutcome(backup, job, outcome)
        recordedHere.add(job.metadata.uid ?? "")
      }
    }
    // Only Jobs whose mark has not reached the cache yet stay remembered.
    if (recordedHere.size > 0) memory.recorded.set(uid, recordedHere)
    else memory.recorded.delete(uid)

    const active = jobs.find((job) => jobOutcome(job) === undefined)
    const vanished = active === undefined ? vanishedRun(backup, status, jobs, memory) : undefined
    if (vanished !== undefined) {
      // Its Job was deleted before it finished (by hand, or its namespace): the run failed.
      const message = `Job ${allowed.jobNamespace}/${vanished} was deleted before it finished; the next run starts at the next slot`
      const failed = { ...failedRun(status, vanished), lastFailedBackupTime: iso(yield* Clock.currentTimeMillis) }
      status = yield* ready(backup, failed, { status: "False", reason: "JobDeleted", message })
      yield* events.warning(backup, { reason: "JobDeleted", action: "Backup", note: message })
    }
    if (active !== undefined) {
      // A run is in progress (perhaps started before an operator restart): never a second one.
      const scheduled = scheduledAtOf(active)
      const started = active.metadata.creationTimestamp ?? (scheduled === undefined ? undefined : iso(scheduled))
      status = {
        ...status,
        status: "Running",
        jobName: active.metadata.name ?? "",
        ...(active.metadata.annotations?.[JobLabels.Annotation.location] === undefined
          ? {}
          : { backupLocation: active.metadata.annotations[JobLabels.Annotation.location] }),
        ...(scheduled === undefined ? {} : { lastScheduleTime: iso(scheduled) }),
        ...(started === undefined ? {} : { lastBackupTime: started })
      }
      // A slot that comes during the run waits for it to finish (within its starting deadline).
      status = withNextSlot(
        status,
        decide(backup, schedule, lastSlotOf(backup, status, jobs, memory), yield* Clock.currentTimeMillis)
      )
      const pods = yield* podsOf(active)
      const problem = podProblem(pods)
      const current = Conditions.findCondition(status.conditions, "Ready")
      if (problem !== undefined) {
        // Reported once per problem: the condition holds what was last reported.
        if (current?.reason !== problem.reason || current.message !== problem.message) {
          yield* events.warning(backup, { reason: problem.reason, action: "StartJob", note: problem.message })
        }
        status = yield* ready(backup, status, { status: "False", ...problem })
      } else if (current?.status === "False" && !failedRunReasons.has(current.reason)) {
        // A problem that is gone now (the Pod started, the Secret appeared). A failed last run stays
        // reported: the run in progress has not finished, and Ready tells of the last one that did.
        status =
          status.lastSuccessfulBackupTime === undefined
            ? yield* ready(backup, status, {
                status: "Unknown",
                reason: "BackupRunning",
                message: "the first backup is running"
              })
            : yield* readyFromHistory(backup, status)
      }
      yield* Status.patchStatus(BackupDatabaseSchema, stored, notWaiting(status), { fieldManager })
      // A Pod that has not started changes nothing this controller watches: look again soon.
      return notStarted(pods) || problem !== undefined ? Action.requeueAfter(podRecheck) : Action.done
    }

    status = yield* readyFromHistory(backup, status)
    const now = yield* Clock.currentTimeMillis
    const decision = decide(backup, schedule, lastSlotOf(backup, status, jobs, memory), now)
    if (decision._tag !== "Run") {
      const planned = status.nextScheduleTime === undefined ? undefined : Date.parse(status.nextScheduleTime)
      if (
        decision._tag === "Wait" &&
        decision.skipped !== undefined &&
        (planned === undefined || planned <= decision.skipped)
      ) {
        // Once per missed slot: the status written below already names a later one.
        yield* events.warning(backup, {
          reason: "MissedSchedule",
          action: "Schedule",
          note: `the run of ${iso(decision.skipped)} did not start within spec.startingDeadlineSeconds (${backup.spec.startingDeadlineSeconds ?? 0}s) and is skipped; the next is at ${iso(decision.next)}`
        })
      }
      yield* Status.patchStatus(BackupDatabaseSchema, stored, notWaiting(withNextSlot(status, decision)), {
        fieldManager
      })
      return untilNext(decision, now)
    }

    const run = planRun(backup, allowed, new Date(decision.slot))
    const server = serverOf(backup.spec)
    const admitted = yield* Semaphore.withPermit(
      memory.admission,
      Effect.gen(function* () {
        const admission = admit(server, yield* runningServers(jobCache, memory), {
          total: settings.maxConcurrentBackups,
          perServer: settings.maxConcurrentBackupsPerServer
        })
        if (admission._tag === "Waiting") return admission
        const owner =
          allowed.jobNamespace === backup.metadata.namespace
            ? yield* Owners.controllerReference(backup, BackupDatabaseSchema).pipe(Effect.orDie)
            : undefined
        const refused = yield* kube.create(Job, backupJob(backup, run, settings, owner), { fieldManager }).pipe(
          Effect.as(undefined),
          // Created by an earlier attempt of this same run (deterministic name): carry on.
          Effect.catchTag("AlreadyExists", () => Effect.succeed(undefined)),
          // The API server refused the Job the spec makes (a quantity or toleration it does not accept).
          Effect.catchTag("Invalid", (error) =>
            Effect.succeed(
              new TerminalError({
                reason: "JobInvalid",
                message: `the API server refused the backup Job this spec makes (check spec.resources, spec.nodeSelector, spec.tolerations, spec.priorityClassName): ${error.message}`
              })
            )
          )
        )
        if (refused !== undefined) return refused
        if (backup.metadata.uid !== undefined) {
          memory.started.set(backup.metadata.uid, run.scheduledAt.getTime())
          memory.created.set(backup.metadata.uid, { name: run.jobName, namespace: run.jobNamespace, server })
        }
        return admission
      })
    )
    if (admitted._tag === "TerminalError") {
      // Waits for a spec change, like any other refused configuration.
      yield* reportInvalid(admitted)
      return yield* Effect.fail(admitted)
    }
    if (admitted._tag === "Waiting") {
      // The slot stays due: looked at again soon (a run of another resource finishing does not wake this one).
      const conditions = yield* Conditions.setConditionNow(status.conditions, {
        type: scheduledCondition,
        status: "False",
        reason: admitted.reason,
        message: `the run of ${iso(decision.slot)} waits: ${admitted.message}`,
        ...(backup.metadata.generation === undefined ? {} : { observedGeneration: backup.metadata.generation })
      })
      // The waiting run's slot is the next run.
      yield* Status.patchStatus(
        BackupDatabaseSchema,
        stored,
        { ...status, conditions, nextScheduleTime: iso(decision.slot) },
        { fieldManager }
      )
      return Action.requeueAfter(admissionRecheck)
    }
    yield* Effect.logInfo(`started backup Job ${run.jobNamespace}/${run.jobName} -> ${run.location}`)
    yield* events.normal(backup, {
      reason: "BackupStarted",
      action: "CreateJob",
      note: `Job ${run.jobNamespace}/${run.jobName} backs up ${backup.spec.dbName}.${backup.spec.dbSchema} to ${run.location}`
    })
    status = {
      ...status,
      status: "Running",
      jobName: run.jobName,
      backupLocation: run.location,
      lastBackupTime: iso(now),
      lastScheduleTime: iso(run.scheduledAt.getTime())
    }
    yield* Status.patchStatus(BackupDatabaseSchema, stored, notWaiting(withNextSlot(status, decision)), {
      fieldManager
    })
    // The Job's progress wakes this controller (it watches backup Jobs); the next slot too.
    return untilNext(decision, now)
  })

/**
 * The BackupDatabaseSchema controller: validates each resource, runs one backup
 * Job per slot of its schedule (never two at once; see {@link planSlot}), records each run's outcome as soon as
 * its Job finishes (it watches backup Jobs by label in the Manager's
 * namespaces), and on deletion deletes its Jobs (running or finished, in every namespace). `namespaces` are the ones it
 * serves, when fewer than the Manager watches (the Manager also watches the
 * namespaces Jobs may run in).
 *
 * @example
 * ```ts
 * Manager.run({ controllers: [backupController({ namespaces: undefined })] })
 * ```
 */
export const backupController = (options: { readonly namespaces?: ReadonlyArray<string> | undefined }) => {
  const memory: Memory = {
    started: new Map(),
    created: new Map(),
    admission: Semaphore.makeUnsafe(1),
    reported: new Map(),
    recorded: new Map()
  }
  return Controller.make({
    name: "backupdatabaseschema",
    for: BackupDatabaseSchema,
    ...(options.namespaces === undefined ? {} : { predicates: [Predicates.inNamespaces(options.namespaces)] }),
    watches: [backupJobs],
    concurrency: 2,
    reconcile: ({ object, cache, namespace, name }) =>
      object === undefined
        ? Effect.as(BackupMetrics.forget({ namespace: namespace ?? "", name }), Action.done)
        : // Every status write is reconciled: the metrics follow the status this pass reads.
          BackupMetrics.observe(resourceOf(object), object.status).pipe(
            Effect.andThen(
              Finalizers.withFinalizer(BackupDatabaseSchema, object, finalizer, {
                apply: (backup) => backUp(backup, memory, cache(backupJobs)),
                cleanup: (backup) =>
                  Effect.andThen(BackupMetrics.forget(resourceOf(backup)), finalize(backup, memory, cache(backupJobs)))
              })
            )
          )
  })
}

export { KubeErrors }
