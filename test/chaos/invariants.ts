import { type Backup, JobLabels, StorageLocation } from "@db-backup-operator/backup-api"
import { type Job, jobOutcome } from "@db-backup-operator/kube"
import { Option } from "effect"

/**
 * What must hold after any fault, over every run a scenario made: counted from
 * the `Backup` records, every backup Job ever seen (a watch keeps the ones the
 * cleanup controller deleted) and the objects in the bucket.
 */
export interface Invariants {
  /** Distinct schedule slots that got a record. */
  readonly slots: number
  /** Backup Jobs created. */
  readonly runs: number
  /** Extra Jobs or records for a slot that already had one. */
  readonly duplicatedRuns: number
  /** Finished Jobs whose outcome is not their record's phase (or whose record is gone). */
  readonly lostOutcomes: number
  /** Dumps without a manifest or a `Succeeded` record, and `Succeeded` records without their dump. */
  readonly incompleteObjects: number
  /** One line per violation, for the report. */
  readonly violations: ReadonlyArray<string>
}

/** A finished Job's outcome as its record's phase would say it. */
const outcomeOf = (job: Job): "Succeeded" | "Failed" | undefined => {
  const outcome = jobOutcome(job)
  return outcome === "Complete" ? "Succeeded" : outcome
}

const countDuplicates = <A>(items: ReadonlyArray<A>, keyOf: (item: A) => string | undefined, what: string) => {
  const groups = new Map<string, number>()
  for (const item of items) {
    const key = keyOf(item)
    if (key !== undefined) groups.set(key, (groups.get(key) ?? 0) + 1)
  }
  const violations = [...groups].filter(([, n]) => n > 1).map(([key, n]) => `${n} ${what} for slot ${key}`)
  return { keys: new Set(groups.keys()), extra: [...groups.values()].reduce((sum, n) => sum + n - 1, 0), violations }
}

/**
 * Counts the invariants of a scenario's runs in one namespace.
 *
 * @example
 * ```ts
 * const result = checkInvariants({ backups: [], jobs: [], objects: [], bucketUrl: "gs://bucket" })
 * // { slots: 0, runs: 0, duplicatedRuns: 0, lostOutcomes: 0, incompleteObjects: 0, violations: [] }
 * ```
 */
export const checkInvariants = (input: {
  readonly backups: ReadonlyArray<Backup>
  /**
   * Records deleted while the scenario ran, as they were when deleted (the
   * operator deletes failed runs' records beyond `failedBackupsHistoryLimit`,
   * and retention's): what they said still counts for their Jobs' outcomes.
   */
  readonly deletedBackups?: ReadonlyArray<Backup>
  readonly jobs: ReadonlyArray<Job>
  /** Object names in the bucket. */
  readonly objects: ReadonlyArray<string>
  /** The bucket's URL without a trailing slash (`gs://bucket`): records hold full URLs. */
  readonly bucketUrl: string
}): Invariants => {
  const { backups, jobs, objects, bucketUrl } = input
  const jobSlots = countDuplicates(
    jobs,
    (job) => {
      const at = job.metadata.annotations?.[JobLabels.Annotation.scheduledAt]
      const resource = job.metadata.labels?.[JobLabels.Label.resourceUid]
      return at === undefined || resource === undefined ? undefined : `${resource}@${at}`
    },
    "Jobs"
  )
  // Every record the scenario had, deleted ones as they were when deleted.
  const records = new Map(
    [...(input.deletedBackups ?? []), ...backups].map((backup) => [backup.metadata.name ?? "", backup])
  )
  const recordSlots = countDuplicates(
    [...records.values()],
    (backup) =>
      backup.status?.scheduledTime === undefined
        ? undefined
        : `${backup.spec.backupDatabaseSchemaName}@${backup.status.scheduledTime}`,
    "records"
  )
  const violations = [...jobSlots.violations, ...recordSlots.violations]

  let lostOutcomes = 0
  for (const job of jobs) {
    const outcome = outcomeOf(job)
    if (outcome === undefined) continue
    const name = job.metadata.annotations?.[JobLabels.Annotation.backup]
    const phase = name === undefined ? undefined : records.get(name)?.status?.phase
    if (phase !== outcome) {
      lostOutcomes += 1
      violations.push(
        `Job ${job.metadata.name}: ${outcome}, but its record ${name ?? "(none)"} ${records.has(name ?? "") ? `says ${phase ?? "nothing"}` : "never existed"}`
      )
    }
  }

  const stored = new Set(objects)
  const succeeded = backups.filter((backup) => backup.status?.phase === "Succeeded")
  const recorded = new Set(succeeded.map((backup) => backup.status?.location))
  let incompleteObjects = 0
  for (const object of objects) {
    if (Option.isNone(StorageLocation.parseBackupObject(object))) continue
    const manifest = StorageLocation.manifestObjectOf(object)
    const url = `${bucketUrl}/${object}`
    if (!stored.has(manifest) || !recorded.has(url)) {
      incompleteObjects += 1
      violations.push(
        `${url}: ${stored.has(manifest) ? "" : "no manifest"}${!stored.has(manifest) && !recorded.has(url) ? ", " : ""}${recorded.has(url) ? "" : "no Succeeded record"}`
      )
    }
  }
  for (const backup of succeeded) {
    const location = backup.status?.location ?? ""
    if (!stored.has(location.slice(bucketUrl.length + 1))) {
      incompleteObjects += 1
      violations.push(`record ${backup.metadata.name} is Succeeded, but ${location} is not in the bucket`)
    }
  }

  return {
    // Every slot's run gets its record before its Job.
    slots: recordSlots.keys.size,
    runs: jobs.length,
    duplicatedRuns: jobSlots.extra + recordSlots.extra,
    lostOutcomes,
    incompleteObjects,
    violations
  }
}
