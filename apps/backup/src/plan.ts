import {
  type Backup,
  type BackupDatabaseSchema,
  type BackupDatabaseSchemaStatus,
  type BackupStatus,
  defaultFailedBackupsHistoryLimit,
  JobLabels,
  maxRecentBackups,
  type RecentBackup,
  StorageLocation
} from "@db-backup-operator/backup-api"
import { type Job, jobOutcome } from "@db-backup-operator/kube"
import { Conditions } from "@db-backup-operator/operator"
import { Duration, Option } from "effect"
import type { Admission } from "./admission.ts"
import { planRun, type Run, type RunSettings, targetOf } from "./backupJob.ts"
import { jobName } from "./jobName.ts"
import type { Outcome, PodProblem } from "./outcome.ts"
import { failedRun, iso, recordOutcome } from "./runStatus.ts"
import { type BackupSchedule, planSlot, type SlotDecision } from "./schedule.ts"
import { type IdentityCheck, workloadIdentityCondition } from "./workloadIdentity.ts"

/**
 * One pass of the BackupDatabaseSchema controller, as a pure function: what
 * it observed (the resource, its `Backup` records and Jobs, the time, whether
 * a run may start under the concurrency limits) in; the resource's one new
 * status, the records to create, start, update and delete, and the Events
 * out. The controller reads, calls {@link planPass}, and carries the plan out.
 */

type Status = BackupDatabaseSchemaStatus

/** How often a run whose Pod has not started is looked at again. */
export const podRecheck = Duration.seconds(10)

/** How often a run waiting for a free place under the concurrency limits is looked at again. */
export const admissionRecheck = Duration.seconds(5)

/**
 * The longest wait for a slot: a far one (`@yearly`) is planned again on the
 * way, so a timer never outlives what Node's timers can hold, and a stepped
 * clock is noticed.
 */
export const longestWait = Duration.hours(1)

/** The condition a run waiting under the concurrency limits sets (False, with why); gone once it starts. */
export const scheduledCondition = "Scheduled"

/** The Ready reasons that tell how the last run failed: kept until a run succeeds. */
const failedRunReasons: ReadonlySet<string> = new Set(["BackupFailed", "JobDeleted"])

/** One of the resource's Jobs, with what the controller read about it live. */
export interface ObservedJob {
  readonly job: Job
  /** A finished Job whose outcome is to be recorded: the outcome, from its Pods' termination message. */
  readonly outcome?: Outcome
  /** The Job in progress: why its Pod cannot start, if it cannot. */
  readonly problem?: PodProblem
  /** The Job in progress: whether its Pod has yet to start. */
  readonly notStarted?: boolean
}

/** What one pass observed. */
export interface Observed {
  readonly resource: BackupDatabaseSchema
  readonly schedule: BackupSchedule
  /** `spec.verification.schedule`, parsed: verify on it rather than after each backup. */
  readonly verificationSchedule?: BackupSchedule | undefined
  /** Where its Jobs run and how they connect (the access checks' answer). */
  readonly where: RunSettings
  /** Its `Backup` records, in any order. */
  readonly runs: ReadonlyArray<Backup>
  /** Its Jobs, in any order. */
  readonly jobs: ReadonlyArray<ObservedJob>
  /** Whether a run of its database server may start now. */
  readonly admission: Admission
  readonly now: number
  /**
   * What this process did that its caches may not show yet (controller-runtime's
   * "expectations"): the slot it last started, and the Job it last created.
   */
  readonly expected: { readonly started?: number | undefined; readonly createdJob?: string | undefined }
  /** Whether its ServiceAccount is bound to `spec.gcpServiceAccount`; undefined where that is not checked. */
  readonly identity?: IdentityCheck | undefined
}

/** An Event on the resource. */
export interface PlannedEvent {
  readonly type: "Normal" | "Warning"
  readonly reason: string
  readonly action: string
  readonly note: string
}

/** What one pass does, in this order. */
export interface Plan {
  /** Records to create (as `Pending`): for a schedule slot, or (no slot) for a spec that changed what it backs up. */
  readonly create: ReadonlyArray<{ readonly name: string; readonly slot?: number }>
  /** Records to create as they were (`Succeeded`), for backups of the bucket's catalog that have none. */
  readonly rebuild: ReadonlyArray<{ readonly name: string; readonly status: BackupStatus }>
  /** Records whose backup just succeeded, to verify (`spec.verification`): each gets a `Restore <record>-verify`. */
  readonly verify: ReadonlyArray<string>
  /** The run to start: its Job is created (under the concurrency limits' lock). */
  readonly start: Run | undefined
  /** New statuses of records, only those that change. */
  readonly runStatuses: ReadonlyArray<{ readonly name: string; readonly status: BackupStatus }>
  /** Records to delete: retention deleted their backups, or the failed-run history limit drops them. */
  readonly delete: ReadonlyArray<string>
  /** The resource's status: one write. */
  readonly status: Status
  /** Finished Jobs whose outcome `status` and the records hold: announced, then marked recorded. */
  readonly recorded: ReadonlyArray<{ readonly job: Job; readonly outcome: Outcome }>
  readonly events: ReadonlyArray<PlannedEvent>
  /** When to look again; `undefined` when only a change can make a difference. */
  readonly requeueAfter: Duration.Duration | undefined
}

const recordOf = (job: Job): string | undefined => job.metadata.annotations?.[JobLabels.Annotation.backup]

const slotOf = (metadata: { readonly annotations?: Readonly<Record<string, string>> }): number | undefined => {
  const text = metadata.annotations?.[JobLabels.Annotation.scheduledAt]
  const millis = text === undefined ? Number.NaN : Date.parse(text)
  return Number.isNaN(millis) ? undefined : millis
}

const millisOf = (text: string | undefined): number | undefined => {
  const millis = text === undefined ? Number.NaN : Date.parse(text)
  return Number.isNaN(millis) ? undefined : millis
}

/** The time a run is named after: its slot, or an on-demand record's creation. */
const dueOf = (run: Backup): number =>
  slotOf(run.metadata) ?? millisOf(run.metadata.creationTimestamp) ?? Number.MAX_SAFE_INTEGER

/**
 * The `YYYYMMDD-HHMMSS` of a record's backup, as retention and the catalog
 * report it: from its dump's URL, or its manifest's (a record rebuilt from the
 * catalog knows only that).
 */
const stampOf = (status: BackupStatus | undefined): string | undefined => {
  const fromDump =
    status?.location === undefined
      ? undefined
      : Option.getOrUndefined(
          Option.flatMap(StorageLocation.backupObjectOfUrl(status.location), (object) =>
            Option.map(StorageLocation.parseBackupObject(object), (parsed) =>
              StorageLocation.runTimestamp(parsed.startedAt)
            )
          )
        )
  return fromDump ?? StorageLocation.manifestStampOf(status?.manifestLocation ?? "")
}

/**
 * The records to rebuild from a successful run's catalog: one `Succeeded`
 * record per backup the bucket holds that no record covers (a new cluster on
 * an old bucket, a record deleted by hand), named as a slot's record, with the
 * manifest's URL beside this run's dump.
 */
const rebuiltRecords = (
  resource: string,
  catalog: ReadonlyArray<string>,
  covered: ReadonlySet<string>,
  names: ReadonlySet<string>,
  dumpUrl: string
): ReadonlyArray<{ readonly name: string; readonly status: BackupStatus }> => {
  const directory = dumpUrl.slice(0, dumpUrl.lastIndexOf("/") + 1)
  return catalog.flatMap((stamp) => {
    // The runner reports RunStamps, which the message's Schema checked.
    const time = StorageLocation.runStampTime(stamp) ?? 0
    const name = scheduledRunName(resource, time)
    if (covered.has(stamp) || names.has(name)) return []
    const manifestLocation = `${directory}backup-${stamp}.json`
    return [
      {
        name,
        status: {
          phase: "Succeeded",
          startTime: iso(time),
          manifestLocation,
          message: `rebuilt from its manifest ${manifestLocation}: a backup the bucket holds that had no record here`
        }
      }
    ]
  })
}

/**
 * The name of the record of a schedule slot: `<resource>-<YYYYMMDDHHMMSS>`.
 *
 * @example
 * ```ts
 * scheduledRunName("orders", Date.parse("2026-12-03T00:00:00Z")) // "orders-20261203000000"
 * ```
 */
export const scheduledRunName = (resource: string, slot: number): string => jobName({ name: resource }, new Date(slot))

/**
 * The name of the run a spec edit makes when it changes what is backed up:
 * `<resource>-g<generation>`, one per generation.
 *
 * @example
 * ```ts
 * specChangeRunName("orders", 4) // "orders-g4"
 * ```
 */
export const specChangeRunName = (resource: string, generation: number): string => {
  const suffix = `-g${generation}`
  return `${resource.slice(0, 253 - suffix.length).replace(/[-.]+$/u, "")}${suffix}`
}

/**
 * The status with its `Ready` condition set (for the resource's generation).
 *
 * @example
 * ```ts
 * declare const resource: Parameters<typeof withReady>[0]
 * withReady(resource, {}, { status: "False", reason: "InvalidSchedule", message: "spec.schedule: ..." }, Date.now())
 * ```
 */
export const withReady = (
  resource: BackupDatabaseSchema,
  status: Status,
  input: Omit<Conditions.ConditionInput, "type" | "observedGeneration">,
  now: number
): Status => ({
  ...status,
  conditions: Conditions.setCondition(
    status.conditions,
    {
      type: "Ready",
      ...input,
      ...(resource.metadata.generation === undefined ? {} : { observedGeneration: resource.metadata.generation })
    },
    now
  )
})

/**
 * `Ready` of a resource whose configuration is valid: the last finished run's
 * failure (kept until a run succeeds), else its success, else no backup yet.
 *
 * @example
 * ```ts
 * declare const resource: Parameters<typeof readyFromHistory>[0]
 * readyFromHistory(resource, { status: "Failed" }, Date.now()).conditions // [{ type: "Ready", status: "False", reason: "BackupFailed", ... }]
 * ```
 */
export const readyFromHistory = (resource: BackupDatabaseSchema, status: Status, now: number): Status => {
  if (status.status === "Failed") {
    const previous = Conditions.findCondition(status.conditions, "Ready")
    const told = previous !== undefined && failedRunReasons.has(previous.reason)
    return withReady(
      resource,
      status,
      {
        status: "False",
        reason: told ? previous.reason : "BackupFailed",
        message: told ? previous.message : "the last backup failed"
      },
      now
    )
  }
  if (status.lastSuccessfulBackupTime !== undefined) {
    return withReady(
      resource,
      status,
      {
        status: "True",
        reason: "BackupSucceeded",
        message: `last successful backup at ${status.lastSuccessfulBackupTime}`
      },
      now
    )
  }
  return withReady(
    resource,
    status,
    { status: "Unknown", reason: "NoBackupYet", message: "no backup has finished yet" },
    now
  )
}

/** `status.nextScheduleTime` for a decision: absent while suspended. */
const withNextSlot = (status: Status, next: number | undefined): Status => {
  const { nextScheduleTime: _, ...rest } = status
  return next === undefined ? rest : { ...rest, nextScheduleTime: iso(next) }
}

const nextOf = (decision: SlotDecision) => (decision._tag === "Suspended" ? undefined : decision.next)

/** Without the waiting run's `Scheduled` condition: no run of the resource is waiting now. */
const notWaiting = (status: Status): Status =>
  status.conditions?.some((condition) => condition.type === scheduledCondition) === true
    ? { ...status, conditions: Conditions.removeCondition(status.conditions, scheduledCondition) }
    : status

/** Look again when the next slot comes (at the latest after {@link longestWait}). */
const untilNext = (decision: SlotDecision, now: number) =>
  decision._tag === "Suspended"
    ? undefined
    : Duration.min(Duration.millis(Math.max(0, decision.next - now)), longestWait)

/**
 * The slot of the last scheduled run: the newest of the status, the scheduled
 * records and Jobs, and the slot this process started but may not see yet.
 * `lastBackupTime` counts only for a resource from before schedules, which has
 * nothing else (it is never earlier than its run's slot, and no slot lies
 * between the two); on-demand runs set it but no slot.
 */
const lastSlotOf = (observed: Observed, status: Status): number | undefined => {
  const starts = [
    millisOf(status.lastScheduleTime),
    status.lastScheduleTime === undefined ? millisOf(status.lastBackupTime) : undefined,
    observed.expected.started,
    ...observed.runs.map((run) => slotOf(run.metadata)),
    ...observed.jobs.map(({ job }) => slotOf(job.metadata))
  ].filter((millis): millis is number => millis !== undefined)
  return starts.length === 0 ? undefined : Math.max(...starts)
}

/** What the schedule asks now, from the resource's creation (the anchor of `@every`) and its last slot. */
const decide = (observed: Observed, status: Status): SlotDecision => {
  const { resource, schedule, now } = observed
  return planSlot({
    schedule,
    anchor: millisOf(resource.metadata.creationTimestamp) ?? now,
    last: lastSlotOf(observed, status),
    now,
    suspend: resource.spec.suspend === true,
    startingDeadlineSeconds: resource.spec.startingDeadlineSeconds
  })
}

/**
 * The time an on-demand run's Job and objects are named after: when it
 * starts, to the second (runs of one resource never overlap, so no two share
 * it), or the second after when that is the second of a slot that is due or
 * waiting: that slot's run names its objects after it.
 */
const onDemandTime = (now: number, decision: SlotDecision, pending: ReadonlyArray<Backup>): number => {
  const second = Math.floor(now / 1000) * 1000
  const slots = new Set([
    ...(decision._tag === "Run" ? [decision.slot] : []),
    ...pending.map((run) => slotOf(run.metadata)).filter((slot) => slot !== undefined)
  ])
  return slots.has(second) ? second + 1000 : second
}

/** The record of a finished run. */
const finishedRun = (run: BackupStatus, job: Job, outcome: Outcome, now: number): BackupStatus => {
  const location = job.metadata.annotations?.[JobLabels.Annotation.location]
  const { location: _, message: __, ...rest } = run
  const common: BackupStatus = {
    ...rest,
    completionTime: outcome.finishedAt ?? iso(now),
    jobName: job.metadata.name ?? "",
    ...(job.metadata.namespace === undefined ? {} : { jobNamespace: job.metadata.namespace }),
    ...(run.startTime === undefined && job.metadata.creationTimestamp !== undefined
      ? { startTime: job.metadata.creationTimestamp }
      : {})
  }
  const succeeded = (status: "True" | "False", reason: string, message: string) =>
    Conditions.setCondition(run.conditions, { type: "Succeeded", status, reason, message }, now)
  if (outcome.phase === "Failed") {
    // The dump never completed: no location that looks like a backup.
    return {
      ...common,
      phase: "Failed",
      message: outcome.reason,
      conditions: succeeded("False", "BackupFailed", outcome.reason)
    }
  }
  const manifest = Option.getOrUndefined(
    Option.map(location === undefined ? Option.none() : StorageLocation.backupObjectOfUrl(location), () =>
      StorageLocation.manifestObjectOf(location ?? "")
    )
  )
  return {
    ...common,
    phase: "Succeeded",
    ...(location === undefined ? {} : { location }),
    ...(manifest === undefined ? {} : { manifestLocation: manifest }),
    ...(outcome.sizeBytes === undefined ? {} : { sizeBytes: outcome.sizeBytes }),
    ...(outcome.sha256 === undefined ? {} : { sha256: outcome.sha256 }),
    ...(outcome.serverVersion === undefined ? {} : { serverVersion: outcome.serverVersion }),
    ...(outcome.pgDumpVersion === undefined ? {} : { pgDumpVersion: outcome.pgDumpVersion }),
    message: `backed up to ${location ?? "the bucket"}${outcome.sizeBytes === undefined ? "" : ` (${outcome.sizeBytes} bytes)`}`,
    conditions: succeeded(
      "True",
      "BackupSucceeded",
      `the dump and its manifest are complete in ${location ?? "the bucket"}`
    )
  }
}

/**
 * The `WorkloadIdentity` condition from the check (gone when not checked), and
 * a Warning when it turns False or its reason changes.
 */
const withIdentity = (
  resource: BackupDatabaseSchema,
  status: Status,
  identity: IdentityCheck | undefined,
  now: number,
  events: Array<PlannedEvent>
): Status => {
  if (identity === undefined) {
    return status.conditions?.some((condition) => condition.type === workloadIdentityCondition) === true
      ? { ...status, conditions: Conditions.removeCondition(status.conditions, workloadIdentityCondition) }
      : status
  }
  const previous = Conditions.findCondition(status.conditions, workloadIdentityCondition)
  if (identity.status === "False" && (previous?.reason !== identity.reason || previous.message !== identity.message)) {
    events.push({ type: "Warning", reason: identity.reason, action: "CheckIdentity", note: identity.message })
  }
  return {
    ...status,
    conditions: Conditions.setCondition(
      status.conditions,
      {
        type: workloadIdentityCondition,
        ...identity,
        ...(resource.metadata.generation === undefined ? {} : { observedGeneration: resource.metadata.generation })
      },
      now
    )
  }
}

/** `status.recentBackups`: the newest records as this pass leaves them (absent when there are none). */
const withRecent = (
  status: Status,
  records: ReadonlyMap<string, Backup>,
  runStatus: (run: string) => BackupStatus,
  deleted: ReadonlySet<string>
): Status => {
  const { recentBackups: _, ...rest } = status
  const newest = (run: string) => {
    const record = records.get(run)
    return millisOf(runStatus(run).startTime) ?? (record === undefined ? 0 : dueOf(record))
  }
  const recent = [...records.keys()]
    .filter((run) => !deleted.has(run))
    .sort((a, b) => newest(b) - newest(a))
    .slice(0, maxRecentBackups)
    .map((run): RecentBackup => {
      const { phase, startTime, completionTime } = runStatus(run)
      return {
        name: run,
        ...(phase === undefined ? {} : { phase }),
        ...(startTime === undefined ? {} : { startTime }),
        ...(completionTime === undefined ? {} : { completionTime })
      }
    })
  return recent.length === 0 ? rest : { ...rest, recentBackups: recent }
}

/** `status.lastVerifiedTime`: when a record's `Verified` condition last turned True (the Restore controller sets it). */
const withLastVerified = (status: Status, records: ReadonlyMap<string, Backup>): Status => {
  const times = [...records.values()]
    .map((record) => Conditions.findCondition(record.status?.conditions, "Verified"))
    .filter((condition) => condition?.status === "True")
    .map((condition) => condition?.lastTransitionTime ?? "")
    .sort()
  const last = times[times.length - 1]
  return last === undefined || last === "" ? status : { ...status, lastVerifiedTime: last }
}

const sameStatus = (a: BackupStatus, b: BackupStatus) => JSON.stringify(a) === JSON.stringify(b)

/**
 * Plans one pass over a resource whose configuration is valid:
 *
 * 1. Finished Jobs not yet recorded: their outcome goes to their record and,
 *    for the latest, to the resource's status; the records of backups their
 *    retention deleted are deleted.
 * 2. A record `Running` whose Job is gone (deleted by hand): `Failed`.
 * 3. A Job in progress: the resource is `Running`; nothing else starts
 *    (never two runs of one resource at once).
 * 4. Otherwise the schedule's due slot gets a record, and the oldest
 *    `Pending` record (a slot, or a user's on-demand `Backup`) starts if the
 *    concurrency limits admit it, or waits with a reason.
 * 5. Failed runs' records beyond `spec.failedBackupsHistoryLimit` are deleted.
 *
 * @example
 * ```ts
 * declare const observed: Observed
 * const plan = planPass(observed)
 * plan.start?.jobName // the Job to create, if a run starts now
 * ```
 */
export const planPass = (observed: Observed): Plan => {
  const { resource, now } = observed
  const generation = resource.metadata.generation
  const name = resource.metadata.name ?? ""
  const events: Array<PlannedEvent> = []
  const records = new Map(observed.runs.map((run) => [run.metadata.name ?? "", run]))
  const changed = new Map<string, BackupStatus>()
  const runStatus = (run: string): BackupStatus => changed.get(run) ?? records.get(run)?.status ?? {}
  const setRun = (run: string, next: BackupStatus) => {
    if (records.has(run) || changed.has(run)) changed.set(run, next)
  }
  const deletions = new Set<string>()
  let status: Status = resource.status ?? {}

  // 1. Finished runs, oldest first, so the latest wins the status.
  const byNewest = [...observed.jobs].sort(
    (a, b) =>
      (slotOf(b.job.metadata) ?? millisOf(b.job.metadata.creationTimestamp) ?? 0) -
      (slotOf(a.job.metadata) ?? millisOf(a.job.metadata.creationTimestamp) ?? 0)
  )
  const latest = byNewest[0]?.job.metadata.name
  const recorded: Array<{ readonly job: Job; readonly outcome: Outcome }> = []
  const rebuild: Array<{ readonly name: string; readonly status: BackupStatus }> = []
  const verify: Array<string> = []
  for (const { job, outcome } of [...byNewest].reverse()) {
    if (outcome === undefined || job.metadata.annotations?.[JobLabels.Annotation.recorded] !== undefined) continue
    if (job.metadata.name === latest) status = recordOutcome({ status, job, outcome, generation, now })
    const run = recordOf(job)
    if (run !== undefined && records.has(run)) setRun(run, finishedRun(runStatus(run), job, outcome, now))
    const afterEach = resource.spec.verification !== undefined && observed.verificationSchedule === undefined
    if (outcome.phase === "Success" && run !== undefined && records.has(run) && afterEach) {
      verify.push(run)
    }
    if (outcome.phase === "Success") {
      const deleted = new Set(outcome.retention?.deletedRuns ?? [])
      for (const [other, record] of records) {
        const stamp = stampOf(record.status)
        if (other !== run && record.status?.phase === "Succeeded" && stamp !== undefined && deleted.has(stamp)) {
          deletions.add(other)
        }
      }
      const location = job.metadata.annotations?.[JobLabels.Annotation.location]
      if (job.metadata.name === latest && outcome.catalog !== undefined && location !== undefined) {
        const covered = new Set(
          [...records.entries()]
            .filter(([other]) => !deletions.has(other))
            .map(([other, record]) => stampOf(other === run ? runStatus(other) : record.status))
            .filter((stamp) => stamp !== undefined)
        )
        rebuild.push(...rebuiltRecords(name, outcome.catalog, covered, new Set(records.keys()), location))
      }
    }
    recorded.push({ job, outcome })
  }
  if (rebuild.length > 0) {
    const shown = rebuild.slice(0, 5).map((record) => record.name)
    events.push({
      type: "Normal",
      reason: "BackupRecordsRebuilt",
      action: "Catalog",
      note: `rebuilt ${rebuild.length} Backup record${rebuild.length === 1 ? "" : "s"} from the bucket's manifests: ${shown.join(", ")}${rebuild.length > shown.length ? ", ..." : ""}`
    })
  }

  // 2. Records of runs whose Job was deleted before it finished.
  const jobNames = new Set(observed.jobs.map(({ job }) => job.metadata.name))
  for (const run of records.keys()) {
    const current = runStatus(run)
    if (
      current.phase === "Running" &&
      current.jobName !== undefined &&
      !jobNames.has(current.jobName) &&
      observed.expected.createdJob !== current.jobName
    ) {
      setRun(run, {
        ...current,
        phase: "Failed",
        completionTime: iso(now),
        message: `Job ${current.jobNamespace ?? ""}/${current.jobName} was deleted before it finished`
      })
    }
  }

  const active = observed.jobs.find(({ job }) => jobOutcome(job) === undefined)
  // The Job of the run the resource calls Running, gone without an outcome (a Job job-cleanup
  // deletes was recorded first, so its run is no longer Running).
  const vanished =
    active === undefined &&
    status.status === "Running" &&
    status.jobName !== undefined &&
    !jobNames.has(status.jobName) &&
    observed.expected.createdJob !== status.jobName
      ? status.jobName
      : undefined
  if (vanished !== undefined) {
    const message = `Job ${observed.where.jobNamespace}/${vanished} was deleted before it finished; the next run starts at the next slot`
    status = withReady(
      resource,
      { ...failedRun(status, vanished), lastFailedBackupTime: iso(now) },
      { status: "False", reason: "JobDeleted", message },
      now
    )
    events.push({ type: "Warning", reason: "JobDeleted", action: "Backup", note: message })
  }

  const pending = () =>
    [...records.values()]
      .filter((run) => {
        const phase = runStatus(run.metadata.name ?? "").phase
        // A rebuilt record whose status write was lost is a backup that exists, never a run to start.
        const rebuilt = run.metadata.annotations?.[JobLabels.Annotation.rebuiltFrom] !== undefined
        return (phase === undefined || phase === "Pending") && !rebuilt && !deletions.has(run.metadata.name ?? "")
      })
      .sort((a, b) => dueOf(a) - dueOf(b))

  const create: Array<{ readonly name: string; readonly slot?: number }> = []
  let start: Run | undefined
  let requeueAfter: Duration.Duration | undefined

  // The Job this process has just created, not in the cache yet: its run is in progress.
  const inFlight =
    active === undefined && observed.expected.createdJob !== undefined && !jobNames.has(observed.expected.createdJob)
  if (inFlight) {
    // Its watch event comes soon and brings the pass that records it; nothing starts meanwhile.
    requeueAfter = undefined
  } else if (active !== undefined) {
    // 3. A run is in progress (perhaps started before an operator restart): never a second one.
    const { job, problem, notStarted } = active
    const slot = slotOf(job.metadata)
    const started = job.metadata.creationTimestamp ?? (slot === undefined ? undefined : iso(slot))
    const location = job.metadata.annotations?.[JobLabels.Annotation.location]
    status = {
      ...status,
      status: "Running",
      jobName: job.metadata.name ?? "",
      ...(location === undefined ? {} : { backupLocation: location }),
      ...(slot === undefined ? {} : { lastScheduleTime: iso(slot) }),
      ...(started === undefined ? {} : { lastBackupTime: started })
    }
    // A slot that comes during the run waits for it to finish (within its starting deadline).
    status = withNextSlot(status, nextOf(decide(observed, status)))
    const run = recordOf(job)
    if (run !== undefined && records.has(run)) {
      const { message: _, ...current } = runStatus(run)
      setRun(run, {
        ...current,
        phase: "Running",
        jobName: job.metadata.name ?? "",
        ...(job.metadata.namespace === undefined ? {} : { jobNamespace: job.metadata.namespace }),
        ...(current.startTime === undefined && started !== undefined ? { startTime: started } : {}),
        ...(job.metadata.annotations?.[JobLabels.Annotation.target] === undefined
          ? {}
          : { target: job.metadata.annotations[JobLabels.Annotation.target] }),
        ...(location === undefined ? {} : { location }),
        ...(problem === undefined ? {} : { message: problem.message })
      })
    }
    for (const waiting of pending()) {
      setRun(waiting.metadata.name ?? "", {
        ...runStatus(waiting.metadata.name ?? ""),
        phase: "Pending",
        message: `waits for the run in progress (Job ${job.metadata.namespace ?? ""}/${job.metadata.name ?? ""})`
      })
    }
    const current = Conditions.findCondition(status.conditions, "Ready")
    if (problem !== undefined) {
      // Reported once per problem: the condition holds what was last reported.
      if (current?.reason !== problem.reason || current.message !== problem.message) {
        events.push({ type: "Warning", reason: problem.reason, action: "StartJob", note: problem.message })
      }
      status = withReady(resource, status, { status: "False", ...problem }, now)
    } else if (current?.status === "False" && !failedRunReasons.has(current.reason)) {
      // A problem that is gone now (the Pod started, the Secret appeared). A failed last run stays
      // reported: the run in progress has not finished, and Ready tells of the last one that did.
      status =
        status.lastSuccessfulBackupTime === undefined
          ? withReady(
              resource,
              status,
              { status: "Unknown", reason: "BackupRunning", message: "the first backup is running" },
              now
            )
          : readyFromHistory(resource, status, now)
    }
    status = notWaiting(status)
    // A Pod that has not started changes nothing this controller watches: look again soon.
    requeueAfter = notStarted === true || problem !== undefined ? podRecheck : undefined
  } else {
    // 4. No run in progress: the schedule's due slot, then the oldest waiting run.
    status = readyFromHistory(resource, status, now)
    const decision = decide(observed, status)
    const waitingSlot = pending().some((run) => slotOf(run.metadata) !== undefined)
    if (decision._tag === "Run" && !waitingSlot) {
      // A slot already waiting is the one catch-up run: a later slot makes no second.
      // A user's Backup may have taken the slot's name: the slot's run then takes another.
      const taken = records.get(scheduledRunName(name, decision.slot))
      const run =
        taken === undefined || slotOf(taken.metadata) === decision.slot
          ? scheduledRunName(name, decision.slot)
          : `${scheduledRunName(name, decision.slot)}-s`
      if (!records.has(run)) {
        create.push({ name: run, slot: decision.slot })
        records.set(run, {
          apiVersion: "backup.csyeteam03.xyz/v1",
          kind: "Backup",
          metadata: {
            name: run,
            namespace: resource.metadata.namespace ?? "",
            annotations: { [JobLabels.Annotation.scheduledAt]: new Date(decision.slot).toISOString() }
          },
          spec: { backupDatabaseSchemaName: name }
        })
        changed.set(run, { phase: "Pending", scheduledTime: iso(decision.slot) })
      }
    }
    // A spec edit that changed what is backed up (or where to) since the newest run: a run of the
    // new target now, unless a slot's run (which takes the new spec) is due or waiting.
    const target = targetOf(resource.spec, observed.where.storage)
    const lastTarget = [...records.keys()]
      .map((run) => runStatus(run))
      .filter((run) => run.target !== undefined && run.startTime !== undefined)
      .sort((a, b) => (millisOf(b.startTime) ?? 0) - (millisOf(a.startTime) ?? 0))[0]?.target
    if (lastTarget !== undefined && lastTarget !== target && decision._tag !== "Run" && pending().length === 0) {
      const run = specChangeRunName(name, generation ?? 0)
      if (!records.has(run)) {
        create.push({ name: run })
        records.set(run, {
          apiVersion: "backup.csyeteam03.xyz/v1",
          kind: "Backup",
          metadata: { name: run, namespace: resource.metadata.namespace ?? "", creationTimestamp: iso(now) },
          spec: { backupDatabaseSchemaName: name }
        })
        changed.set(run, { phase: "Pending" })
        events.push({
          type: "Normal",
          reason: "TargetChanged",
          action: "Schedule",
          note: `the spec now backs up ${target} (the last run backed up ${lastTarget}): Backup ${run} runs it now`
        })
      }
    }
    if (decision._tag === "Wait" && decision.skipped !== undefined) {
      const planned = millisOf(status.nextScheduleTime)
      // Once per missed slot: the status written below already names a later one.
      if (planned === undefined || planned <= decision.skipped) {
        events.push({
          type: "Warning",
          reason: "MissedSchedule",
          action: "Schedule",
          note: `the run of ${iso(decision.skipped)} did not start within spec.startingDeadlineSeconds (${resource.spec.startingDeadlineSeconds ?? 0}s) and is skipped; the next is at ${iso(decision.next)}`
        })
      }
    }
    // A slot that waited (for a run in progress, or under the limits) past its starting deadline does not start.
    const deadline = resource.spec.startingDeadlineSeconds
    for (const run of pending()) {
      const slot = slotOf(run.metadata)
      if (deadline === undefined || slot === undefined || now - slot <= deadline * 1000) continue
      const message = `the run of ${iso(slot)} did not start within spec.startingDeadlineSeconds (${deadline}s)`
      setRun(run.metadata.name ?? "", {
        ...runStatus(run.metadata.name ?? ""),
        phase: "Failed",
        completionTime: iso(now),
        message
      })
      events.push({ type: "Warning", reason: "MissedSchedule", action: "Schedule", note: message })
    }
    const next = pending()[0]
    requeueAfter = untilNext(decision, now)
    if (next === undefined) {
      status = notWaiting(withNextSlot(status, nextOf(decision)))
    } else if (observed.admission._tag === "Waiting") {
      // The run stays due: looked at again soon (a run of another resource finishing does not wake this one).
      const admission = observed.admission
      const run = next.metadata.name ?? ""
      const slot = slotOf(next.metadata)
      const what = slot === undefined ? `the on-demand run ${run}` : `the run of ${iso(slot)}`
      setRun(run, { ...runStatus(run), phase: "Pending", message: `waits: ${admission.message}` })
      status = {
        ...status,
        conditions: Conditions.setCondition(
          status.conditions,
          {
            type: scheduledCondition,
            status: "False",
            reason: admission.reason,
            message: `${what} waits: ${admission.message}`,
            ...(generation === undefined ? {} : { observedGeneration: generation })
          },
          now
        ),
        // The waiting run is the next run.
        ...(slot === undefined ? {} : { nextScheduleTime: iso(slot) })
      }
      requeueAfter = admissionRecheck
    } else {
      const record = next.metadata.name ?? ""
      const slot = slotOf(next.metadata)
      start = planRun(resource, observed.where, new Date(slot ?? onDemandTime(now, decision, pending())), {
        record,
        scheduled: slot !== undefined
      })
      setRun(record, {
        ...(slot === undefined ? {} : { scheduledTime: iso(slot) }),
        phase: "Running",
        startTime: iso(now),
        target: targetOf(resource.spec, observed.where.storage),
        jobName: start.jobName,
        jobNamespace: start.jobNamespace,
        location: start.location
      })
      status = notWaiting(
        withNextSlot(
          {
            ...status,
            status: "Running",
            jobName: start.jobName,
            backupLocation: start.location,
            lastBackupTime: iso(now),
            ...(slot === undefined ? {} : { lastScheduleTime: iso(slot) })
          },
          nextOf(decision)
        )
      )
      events.push({
        type: "Normal",
        reason: "BackupStarted",
        action: "CreateJob",
        note: `Job ${start.jobNamespace}/${start.jobName} backs up ${resource.spec.dbName}.${resource.spec.dbSchema} to ${start.location}${slot === undefined ? ` (on-demand Backup ${record})` : ""}`
      })
    }
  }

  // 5. Failed runs' records beyond the history limit, oldest first.
  const limit = resource.spec.failedBackupsHistoryLimit ?? defaultFailedBackupsHistoryLimit
  const failed = [...records.keys()]
    .filter((run) => runStatus(run).phase === "Failed" && !deletions.has(run))
    .sort((a, b) => (millisOf(runStatus(b).completionTime) ?? 0) - (millisOf(runStatus(a).completionTime) ?? 0))
  for (const run of failed.slice(limit)) deletions.add(run)

  status = withRecent(status, records, runStatus, deletions)
  status = withLastVerified(status, records)
  // A verification schedule: at each slot, the newest successful backup (its Restore is named after
  // it, so one already verified is not verified again).
  if (observed.verificationSchedule !== undefined) {
    const decision = planSlot({
      schedule: observed.verificationSchedule,
      anchor: millisOf(resource.metadata.creationTimestamp) ?? now,
      last: millisOf(status.lastVerificationScheduleTime),
      now,
      suspend: false,
      startingDeadlineSeconds: undefined
    })
    if (decision._tag === "Run") {
      const newest = [...records.keys()]
        .filter((run) => !deletions.has(run) && runStatus(run).phase === "Succeeded")
        .sort((a, b) => (stampOf(runStatus(b)) ?? "").localeCompare(stampOf(runStatus(a)) ?? ""))[0]
      if (newest !== undefined) verify.push(newest)
      status = { ...status, lastVerificationScheduleTime: iso(decision.slot) }
    }
    if (decision._tag !== "Suspended") {
      const wait = Duration.min(Duration.millis(Math.max(0, decision.next - now)), longestWait)
      requeueAfter = requeueAfter === undefined ? wait : Duration.min(requeueAfter, wait)
    }
  }
  status = withIdentity(resource, status, observed.identity, now, events)

  const runStatuses = [...changed]
    .filter(([run, next]) => !deletions.has(run) && !sameStatus(next, records.get(run)?.status ?? {}))
    .map(([run, next]) => ({ name: run, status: next }))
  return {
    create: create.filter((run) => !deletions.has(run.name)),
    rebuild,
    verify: verify.filter((run) => !deletions.has(run)),
    start,
    runStatuses,
    delete: [...deletions].filter((run) => !create.some((created) => created.name === run)),
    status,
    recorded,
    events,
    requeueAfter
  }
}
