import { Backup, BackupDatabaseSchema, BackupStorage, JobLabels, Restore } from "@db-backup-operator/backup-api"
import { Job, jobOutcome, KubeClient, KubeErrors, ServiceAccount } from "@db-backup-operator/kube"
import {
  Action,
  type Cache,
  Controller,
  EventRecorder,
  Finalizers,
  Owners,
  Predicates,
  Source,
  Status,
  TerminalError
} from "@db-backup-operator/operator"
import { Clock, Data, Duration, Effect, Option, Result, Semaphore } from "effect"
import { access } from "./access.ts"
import { admit, serverOf } from "./admission.ts"
import * as BackupMetrics from "./BackupMetrics.ts"
import { BackupSettings, type BackupSettingsShape } from "./BackupSettings.ts"
import { backupJob } from "./backupJob.ts"
import { checkConsent } from "./consent.ts"
import { notStarted, type Outcome, outcomeOf, podProblem, podsOf } from "./outcome.ts"
import { type ObservedJob, type Plan, planPass, withReady } from "./plan.ts"
import { parseSchedule } from "./schedule.ts"
import { isStorage, resolveStorage, storageKeysOf } from "./storage.ts"
import { checkWorkloadIdentity } from "./workloadIdentity.ts"

/** Deleting a resource first deletes its Jobs, in every namespace; backups in the bucket stay. */
export const finalizer = "backup.csyeteam03.xyz/finalizer"

const fieldManager = "db-backup-operator"

/** How often a resource waiting for a Secret (its creation, its consent) is looked at again. */
const notReadyRecheck = Duration.seconds(30)

/**
 * How long a Job this process created is expected to reach the cache: past
 * that (it was deleted before its watch event was seen, say), the expectation
 * goes, so it can never hold a resource up for good (controller-runtime's
 * expectations expire the same way).
 */
const expectationTimeout = Duration.minutes(1)

/** A problem the user can fix outside the resource (a Secret's consent); rechecked, reported in status and Events. */
class NotReady extends Data.TaggedError("NotReady")<{ readonly reason: string; readonly message: string }> {}

/** The Job name a run was to get belongs to another run (never expected: names carry the run's slot or start). */
class JobNameTaken extends Data.TaggedError("JobNameTaken")<{ readonly job: string; readonly run: string }> {
  override get message() {
    return `Job ${this.job} already exists for the run ${this.run}`
  }
}

type Resource = BackupDatabaseSchema

const resourceOf = (backup: Resource) => ({
  namespace: backup.metadata.namespace ?? "",
  name: backup.metadata.name ?? ""
})

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
 * The `Backup` records: each change mapped to the resource it names (same
 * namespace), whether the scheduler or a user created it.
 */
const backupRuns = Source.watches(Backup, (run) =>
  run.metadata.namespace === undefined ? [] : [`${run.metadata.namespace}/${run.spec.backupDatabaseSchemaName}`]
)

/** The `BackupStorage`s resources reference: a change (or a creation) wakes the resources naming it. */
const backupStorages = Source.references(BackupStorage, storageKeysOf)

/**
 * The Jobs of one resource, in no order (the planner orders them), from the
 * backup Job cache. Workers start only once that cache holds a full list, so
 * right after an operator restart a run in progress (or one whose status
 * write was lost in the crash) is seen, and no second one starts.
 */
const jobsOf = (backup: Resource, jobs: Cache<Job>) =>
  jobs.list((job) => job.metadata.labels?.[JobLabels.Label.resourceUid] === backup.metadata.uid)

/**
 * Validates what the CRD cannot: the references the operator's settings allow
 * ({@link access}), then the consent of each Secret that must give it (one
 * live read of its metadata; the operator never reads a Secret's data). Where
 * no consent is needed the operator reads nothing: the kubelet resolves the
 * Secret, and a missing one shows up on the run's Pod ({@link podProblem}).
 */
const validate = (backup: Resource, storages: Cache<BackupStorage>) =>
  Effect.gen(function* () {
    const settings = yield* BackupSettings
    const found = yield* Effect.forEach(storageKeysOf(backup), (key) => storages.get(key))
    const storage = resolveStorage(backup, Option.getOrUndefined(found[0] ?? Option.none()))
    if (!isStorage(storage)) return yield* new NotReady(storage)
    const decided = access(backup, settings, storage)
    if (decided._tag === "Refused") {
      return yield* new TerminalError({ reason: decided.reason, message: decided.message })
    }
    const resource = { namespace: backup.metadata.namespace ?? "", name: backup.metadata.name ?? "" }
    // Rechecked every notReadyRecheck: the consent is given on the Secret, which this controller does not watch.
    const problem = yield* checkConsent(decided.needConsent, resource)
    if (problem !== undefined) return yield* new NotReady(problem)
    return { ...decided, storage }
  })

/**
 * Announces a finished run whose outcome is already in the status: an Event,
 * then the `recorded` mark, which allows job-cleanup to delete the Job.
 */
const announceOutcome = (backup: Resource, job: Job, outcome: Outcome) =>
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
   * The Job this process created last, until the cache shows it (at most
   * {@link expectationTimeout}): without it, a reconcile right after the create
   * would take the run for one whose Job was deleted, or start it again.
   */
  readonly created: Map<
    string,
    { readonly name: string; readonly namespace: string; readonly server: string; readonly at: number }
  >
  /**
   * Held while deciding whether a run may start and taking its place in
   * {@link Memory.created}: two workers never both take the last free place.
   */
  readonly admission: Semaphore.Semaphore
  /** The configuration problem last reported with a Warning, so it is reported once, not on every retry. */
  readonly reported: Map<string, string>
  /** The Events of the resource's last passes (within {@link expectationTimeout}), so none is emitted twice. */
  readonly emitted: Map<string, { readonly keys: ReadonlySet<string>; readonly at: number }>
  /**
   * Uids of the resource's Jobs whose outcome this process has recorded, until
   * their `recorded` mark is in the cache: recording again would repeat the Event.
   */
  readonly recorded: Map<string, ReadonlySet<string>>
}

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

/** The `Backup` records naming a resource (by namespace and name), from the cache. */
const runsOf = (runs: Cache<Backup>, namespace: string, name: string) =>
  runs.list((run) => run.metadata.namespace === namespace && run.spec.backupDatabaseSchemaName === name)

/**
 * A key with no resource: deleted, or named by a user's `Backup` that has no
 * resource (yet: the two may be applied together, and the record's event can
 * come first). Its waiting records say so; they run if the resource appears.
 */
const orphaned = (runs: Cache<Backup>, namespace: string, name: string) =>
  Effect.gen(function* () {
    yield* BackupMetrics.forget({ namespace, name })
    const message = `waits: BackupDatabaseSchema ${namespace}/${name} not found`
    for (const run of yield* runsOf(runs, namespace, name)) {
      const phase = run.status?.phase
      if ((phase !== undefined && phase !== "Pending") || run.status?.message === message) continue
      yield* Status.patchStatus(Backup, run, { ...run.status, phase: "Pending", message }, { fieldManager }).pipe(
        Effect.catchTag("NotFound", () => Effect.void)
      )
    }
    return Action.done
  })

/**
 * Deletion: delete the resource's Jobs and `Backup` records (bucket objects
 * stay); `withFinalizer` then lets the resource go.
 */
const finalize = (backup: Resource, memory: Memory, jobs: Cache<Job>, runs: Cache<Backup>) =>
  Effect.gen(function* () {
    memory.started.delete(backup.metadata.uid ?? "")
    memory.created.delete(backup.metadata.uid ?? "")
    memory.reported.delete(backup.metadata.uid ?? "")
    memory.emitted.delete(backup.metadata.uid ?? "")
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
    // The scheduler's records have an owner reference; a user's on-demand ones do not.
    const namespace = backup.metadata.namespace ?? ""
    for (const run of yield* runsOf(runs, namespace, backup.metadata.name ?? "")) {
      yield* kube
        .delete(Backup, run.metadata.name ?? "", { namespace })
        .pipe(Effect.catchTag("NotFound", () => Effect.void))
    }
    return Action.done
  })

/**
 * Creates what a pass planned to start: the `Backup` records of new runs, then
 * the Job of the run that starts. A Job refused by the API server comes back
 * as the {@link TerminalError} to report; nothing else is left to the caller.
 */
const createRuns = (resource: Resource, plan: Plan, jobCache: Cache<Job>, settings: BackupSettingsShape) =>
  Effect.gen(function* () {
    const kube = yield* KubeClient
    const namespace = resource.metadata.namespace ?? ""
    for (const run of plan.create) {
      yield* kube
        .create(
          Backup,
          {
            apiVersion: "backup.csyeteam03.xyz/v1",
            kind: "Backup",
            metadata: {
              name: run.name,
              namespace,
              labels: { [JobLabels.Label.managedBy]: JobLabels.managedBy },
              ...(run.slot === undefined
                ? {}
                : { annotations: { [JobLabels.Annotation.scheduledAt]: new Date(run.slot).toISOString() } }),
              ownerReferences: [yield* Owners.controllerReference(resource, BackupDatabaseSchema).pipe(Effect.orDie)]
            },
            spec: { backupDatabaseSchemaName: resource.metadata.name ?? "" }
          },
          { fieldManager }
        )
        // Created by an earlier pass whose record is not in the cache yet: the same slot (or generation).
        .pipe(Effect.catchTag("AlreadyExists", () => Effect.void))
    }
    const start = plan.start
    if (start === undefined) return undefined
    const owner =
      start.jobNamespace === namespace
        ? yield* Owners.controllerReference(resource, BackupDatabaseSchema).pipe(Effect.orDie)
        : undefined
    const refused = yield* kube.create(Job, backupJob(resource, start, settings, owner), { fieldManager }).pipe(
      Effect.as(undefined),
      // Created by an earlier attempt of this same run (deterministic name): carry on. A Job of
      // that name for another run is not this run's: fail, and the retry plans again.
      Effect.catchTag("AlreadyExists", () =>
        Effect.flatMap(jobCache.get(`${start.jobNamespace}/${start.jobName}`), (existing) => {
          const owner = Option.getOrUndefined(existing)?.metadata.annotations?.[JobLabels.Annotation.backup]
          return owner === undefined || owner === start.record
            ? Effect.succeed(undefined)
            : Effect.fail(new JobNameTaken({ job: start.jobName, run: owner }))
        })
      ),
      // The API server refused the Job the spec makes (a quantity or toleration it does not accept).
      Effect.catchTag("Invalid", (error) =>
        Effect.succeed(
          new TerminalError({
            reason: "JobInvalid",
            message: `the API server refused the backup Job this spec makes (check spec.resources, spec.nodeSelector, spec.tolerations, spec.affinity, spec.priorityClassName): ${error.message}`
          })
        )
      )
    )
    if (refused !== undefined) return refused
    yield* Effect.logInfo(`started backup Job ${start.jobNamespace}/${start.jobName} -> ${start.location}`)
    return undefined
  })

/** A live resource (already carrying the finalizer): validate, observe, plan the pass, carry it out. */
const backUp = (
  resource: Resource,
  memory: Memory,
  jobCache: Cache<Job>,
  runCache: Cache<Backup>,
  storageCache: Cache<BackupStorage>
) =>
  Effect.gen(function* () {
    const settings = yield* BackupSettings
    const kube = yield* KubeClient
    const events = yield* EventRecorder
    const uid = resource.metadata.uid ?? ""
    const namespace = resource.metadata.namespace ?? ""

    const reportInvalid = (problem: NotReady | TerminalError) =>
      Effect.gen(function* () {
        const status = yield* Effect.map(Clock.currentTimeMillis, (now) =>
          withReady(
            resource,
            resource.status ?? {},
            { status: "False", reason: problem.reason, message: problem.message },
            now
          )
        )
        yield* Status.patchStatus(BackupDatabaseSchema, resource, status, { fieldManager })
        // One Warning per problem, when it appears: our own status write (and every backoff retry)
        // reconciles again, and repeating the same Warning each time would only be noise.
        const problemKey = `${problem.reason}: ${problem.message}`
        if (memory.reported.get(uid) !== problemKey) {
          memory.reported.set(uid, problemKey)
          yield* events.warning(resource, { reason: problem.reason, action: "Validate", note: problem.message })
        }
      })
    const parsed = parseSchedule(resource.spec, `${namespace}/${resource.metadata.name ?? ""}`, settings.interval)
    if (Result.isFailure(parsed)) {
      // Waits for a spec change, like any other refused configuration.
      const refused = new TerminalError(parsed.failure)
      yield* reportInvalid(refused)
      return yield* Effect.fail(refused)
    }
    const verificationText = resource.spec.verification?.schedule
    const verificationSchedule =
      verificationText === undefined
        ? undefined
        : parseSchedule(
            { schedule: verificationText, timeZone: resource.spec.timeZone },
            `${namespace}/${resource.metadata.name ?? ""}/verification`,
            settings.interval,
            "spec.verification.schedule"
          )
    if (verificationSchedule !== undefined && Result.isFailure(verificationSchedule)) {
      const refused = new TerminalError(verificationSchedule.failure)
      yield* reportInvalid(refused)
      return yield* Effect.fail(refused)
    }
    const checked = yield* validate(resource, storageCache).pipe(
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
    memory.reported.delete(uid)

    // Observe: the resource's Jobs and records from the caches; live, the Pods of the Jobs that need them.
    const jobs = yield* jobsOf(resource, jobCache)
    const created = memory.created.get(uid)
    const now = yield* Clock.currentTimeMillis
    if (
      created !== undefined &&
      (jobs.some((job) => job.metadata.name === created.name) ||
        now - created.at > Duration.toMillis(expectationTimeout))
    ) {
      memory.created.delete(uid)
    }
    const isMarked = (job: Job) => job.metadata.annotations?.[JobLabels.Annotation.recorded] !== undefined
    // Recorded by this process, its mark not in the cache yet: recording again would repeat the Event.
    const recordedHere = new Set(
      jobs
        .filter((job) => !isMarked(job) && memory.recorded.get(uid)?.has(job.metadata.uid ?? "") === true)
        .map((job) => job.metadata.uid ?? "")
    )
    const observedJobs: Array<ObservedJob> = []
    for (const job of jobs) {
      const running = jobOutcome(job) === undefined
      if (running && (job.status?.ready ?? 0) > 0) {
        // A Pod of it is ready, so it has started and waits on nothing (a replacement starts only once
        // the Pod before it failed, which the Job's status shows): no read, however long the dump runs.
        observedJobs.push({ job, notStarted: false })
      } else if (running) {
        const pods = yield* podsOf(job)
        const problem = podProblem(pods)
        observedJobs.push({ job, notStarted: notStarted(pods), ...(problem === undefined ? {} : { problem }) })
      } else if (isMarked(job) || recordedHere.has(job.metadata.uid ?? "")) {
        observedJobs.push({ job })
      } else {
        const outcome = outcomeOf(job, yield* podsOf(job))
        observedJobs.push(outcome === undefined ? { job } : { job, outcome })
      }
    }
    const runs = yield* runsOf(runCache, namespace, resource.metadata.name ?? "")
    // Against a real GCS only (an emulator takes no identity): is the Pod's ServiceAccount bound to
    // spec.gcpServiceAccount? A live read of its metadata; not allowed (an older chart): not checked.
    const serviceAccount = { namespace: checked.jobNamespace, name: resource.spec.kubeServiceAccount ?? "default" }
    const gcpServiceAccount = resource.spec.gcpServiceAccount
    const identity =
      settings.gcsEndpoint !== undefined ||
      checked.storage.spec.gcs === undefined ||
      checked.storage.spec.gcs.endpoint !== undefined ||
      gcpServiceAccount === undefined
        ? undefined
        : yield* kube.getMetadata(ServiceAccount, serviceAccount.name, { namespace: serviceAccount.namespace }).pipe(
            Effect.map((metadata) => metadata.annotations ?? {}),
            Effect.catchTag("NotFound", () => Effect.succeed(undefined)),
            Effect.map((annotations) =>
              checkWorkloadIdentity({
                serviceAccount,
                field:
                  resource.spec.kubeServiceAccount === undefined
                    ? "the namespace's default, spec.kubeServiceAccount not set"
                    : "spec.kubeServiceAccount",
                annotations,
                gcpServiceAccount
              })
            ),
            Effect.catchTag("Forbidden", () => Effect.succeed(undefined))
          )
    const server = serverOf(resource.spec)

    // Plan under one lock, and take the place of a run that starts before letting go of it: two
    // workers never both take the last free place, and no worker waits on another's API calls.
    const plan = yield* Semaphore.withPermit(
      memory.admission,
      Effect.gen(function* () {
        const plan = planPass({
          resource,
          schedule: parsed.success,
          verificationSchedule: verificationSchedule?.success,
          where: checked,
          runs,
          jobs: observedJobs,
          admission: admit(server, yield* runningServers(jobCache, memory), {
            total: settings.maxConcurrentBackups,
            perServer: settings.maxConcurrentBackupsPerServer
          }),
          now: yield* Clock.currentTimeMillis,
          expected: { started: memory.started.get(uid), createdJob: memory.created.get(uid)?.name },
          identity
        })
        if (plan.start !== undefined) {
          memory.created.set(uid, {
            name: plan.start.jobName,
            namespace: plan.start.jobNamespace,
            server,
            at: yield* Clock.currentTimeMillis
          })
        }
        return plan
      })
    )
    const started = yield* createRuns(resource, plan, jobCache, settings).pipe(
      // The place taken above is given back when its Job was not created; the error retries the pass.
      Effect.tapError(() => Effect.sync(() => plan.start !== undefined && memory.created.delete(uid)))
    )
    if (started instanceof TerminalError) {
      memory.created.delete(uid)
      // Waits for a spec change, like any other refused configuration.
      yield* reportInvalid(started)
      return yield* Effect.fail(started)
    }
    if (plan.start?.scheduled === true) memory.started.set(uid, plan.start.scheduledAt.getTime())

    // Act: the records, the Events, the resource's one status write, then what announces the outcomes.
    for (const { name, status } of plan.runStatuses) {
      const run = runs.find((candidate) => candidate.metadata.name === name)
      const target: Backup = run ?? {
        apiVersion: "backup.csyeteam03.xyz/v1",
        kind: "Backup",
        metadata: { name, namespace },
        spec: { backupDatabaseSchemaName: resource.metadata.name ?? "" }
      }
      // With the resourceVersion the plan was made from: a record written since (by another replica
      // that leads now, while this one has not noticed it lost the Lease) fails this pass with Conflict,
      // and the retry plans from the newer record instead of setting an outcome back.
      yield* Status.patchStatus(Backup, target, status, { fieldManager, optimisticLock: true }).pipe(
        // Deleted meanwhile (by its user, or with its resource): nothing left to tell.
        Effect.catchTag("NotFound", () => Effect.void)
      )
    }
    // Backups of the bucket without a record here: created as they are (Succeeded), marked so that a
    // status write lost in between can never make one look like a run to start.
    for (const { name, status } of plan.rebuild) {
      const record: Backup = {
        apiVersion: "backup.csyeteam03.xyz/v1",
        kind: "Backup",
        metadata: {
          name,
          namespace,
          labels: { [JobLabels.Label.managedBy]: JobLabels.managedBy },
          annotations: { [JobLabels.Annotation.rebuiltFrom]: status.manifestLocation ?? "" },
          ownerReferences: [yield* Owners.controllerReference(resource, BackupDatabaseSchema).pipe(Effect.orDie)]
        },
        spec: { backupDatabaseSchemaName: resource.metadata.name ?? "" }
      }
      yield* kube.create(Backup, record, { fieldManager }).pipe(Effect.catchTag("AlreadyExists", () => Effect.void))
      yield* Status.patchStatus(Backup, record, status, { fieldManager })
    }
    // A verification of each backup that just succeeded: a Restore that the Restore controller runs,
    // owned by the record (it goes with it), which writes the outcome on the record.
    for (const name of plan.verify) {
      const record = runs.find((candidate) => candidate.metadata.name === name)
      const verification = resource.spec.verification
      if (record?.metadata.uid === undefined || verification === undefined) continue
      yield* kube
        .create(
          Restore,
          {
            apiVersion: "backup.csyeteam03.xyz/v1",
            kind: "Restore",
            metadata: {
              name: verificationName(name),
              namespace,
              labels: { [JobLabels.Label.managedBy]: JobLabels.managedBy },
              ownerReferences: [yield* Owners.controllerReference(record, Backup).pipe(Effect.orDie)]
            },
            spec: {
              source: { backupName: name },
              verify: true,
              ...(verification.target === undefined ? {} : { target: verification.target }),
              ...(verification.ageIdentitySecretRef === undefined
                ? {}
                : { decryption: { ageIdentitySecretRef: verification.ageIdentitySecretRef } })
            }
          },
          { fieldManager }
        )
        .pipe(Effect.catchTag("AlreadyExists", () => Effect.void))
    }
    if (plan.rebuild.length > 0)
      yield* Effect.logInfo(
        `rebuilt ${plan.rebuild.length} Backup records of ${namespace}/${resource.metadata.name} from the bucket`
      )
    for (const name of plan.delete) {
      yield* kube.delete(Backup, name, { namespace }).pipe(Effect.catchTag("NotFound", () => Effect.void))
    }
    // The pass's Events just before its status write, as a user watching both expects them. Not one
    // this process has just emitted: a record write wakes a pass that may still read the resource
    // from before this pass's status write, and plan the same Event again.
    const recent = memory.emitted.get(uid)
    const emitted = new Set(
      recent !== undefined && now - recent.at < Duration.toMillis(expectationTimeout) ? recent.keys : []
    )
    for (const event of plan.events) {
      const key = `${event.type} ${event.reason}: ${event.note}`
      if (emitted.has(key)) continue
      emitted.add(key)
      const note = { reason: event.reason, action: event.action, note: event.note }
      yield* event.type === "Normal" ? events.normal(resource, note) : events.warning(resource, note)
    }
    if (plan.events.length > 0) memory.emitted.set(uid, { keys: emitted, at: now })
    // The status before the `recorded` marks: a mark lets job-cleanup delete the Job, so it must never
    // be set for an outcome the status does not hold yet (a crash in between would lose it for good).
    yield* Status.patchStatus(BackupDatabaseSchema, resource, plan.status, { fieldManager })
    for (const { job, outcome } of plan.recorded) {
      yield* announceOutcome(resource, job, outcome)
      recordedHere.add(job.metadata.uid ?? "")
    }
    // Only Jobs whose mark has not reached the cache yet stay remembered.
    if (recordedHere.size > 0) memory.recorded.set(uid, recordedHere)
    else memory.recorded.delete(uid)
    // A Secret whose consent is checked is one the operator may read: looked at again at a steady
    // pace (it does not watch Secrets), so its deletion or a withdrawn consent shows within that.
    // So is an unbound ServiceAccount: its annotation, once added, shows within that too.
    const recheck = checked.needConsent.length > 0 || identity?.status === "False" ? notReadyRecheck : undefined
    const after =
      plan.requeueAfter === undefined
        ? recheck
        : recheck === undefined
          ? plan.requeueAfter
          : Duration.min(plan.requeueAfter, recheck)
    return after === undefined ? Action.done : Action.requeueAfter(after)
  })

/**
 * The name of the Restore that verifies a record's backup: `<record>-verify`.
 *
 * @example
 * ```ts
 * verificationName("orders-20261203000000") // "orders-20261203000000-verify"
 * ```
 */
export const verificationName = (record: string): string => `${record.slice(0, 253 - "-verify".length)}-verify`

/** Backup resources reconciled at once unless told otherwise (`--backup-workers`). */
export const defaultWorkers = 4

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
export const backupController = (options: {
  readonly namespaces?: ReadonlyArray<string> | undefined
  /** Resources reconciled at once (default {@link defaultWorkers}): a pass mostly waits on the API server. */
  readonly workers?: number | undefined
}) => {
  const memory: Memory = {
    started: new Map(),
    created: new Map(),
    admission: Semaphore.makeUnsafe(1),
    reported: new Map(),
    emitted: new Map(),
    recorded: new Map()
  }
  return Controller.make({
    name: "backupdatabaseschema",
    for: BackupDatabaseSchema,
    ...(options.namespaces === undefined ? {} : { predicates: [Predicates.inNamespaces(options.namespaces)] }),
    watches: [backupJobs, backupRuns, backupStorages],
    concurrency: options.workers ?? defaultWorkers,
    reconcile: ({ object, cache, namespace, name }) =>
      object === undefined
        ? orphaned(cache(backupRuns), namespace ?? "", name)
        : // Every status write is reconciled: the metrics follow the status this pass reads.
          BackupMetrics.observe(resourceOf(object), object.status).pipe(
            Effect.andThen(
              Finalizers.withFinalizer(BackupDatabaseSchema, object, finalizer, {
                apply: (backup) => backUp(backup, memory, cache(backupJobs), cache(backupRuns), cache(backupStorages)),
                cleanup: (backup) =>
                  Effect.andThen(
                    BackupMetrics.forget(resourceOf(backup)),
                    finalize(backup, memory, cache(backupJobs), cache(backupRuns))
                  )
              })
            )
          )
  })
}

export { KubeErrors }
