import { Retention, RunnerContract, StorageLocation } from "@db-backup-operator/backup-api/contract"
import { ObjectStore } from "@db-backup-operator/storage"
import { Effect } from "effect"
import { oneLine } from "./oneLine.ts"

/** What retention did after a successful run; `error` when it could not finish (the backup itself stands). */
export interface RetentionResult {
  /** Successful backups (with a manifest) left in the bucket, this run's included. */
  readonly retained: number
  /** Backups deleted, and dumps of failed runs that had no manifest. */
  readonly deleted: number
  /**
   * The run stamps (`YYYYMMDD-HHMMSS`) of the backups deleted, oldest first: a
   * backup counts once its manifest is gone, even if its dump could not be
   * deleted (it is no longer a backup; the next pass deletes the dump). Not
   * the dumps of failed runs.
   */
  readonly deletedRuns: ReadonlyArray<string>
  readonly error?: string
}

/** Most backups (manifest and dump) one pass deletes, and most dumps of failed runs. */
export const maxDeletionsPerPass = RunnerContract.maxDeletedRuns

const stampPattern = /\/backup-(\d{8}-\d{6})\.[^/]+$/u

/** The run stamp `YYYYMMDD-HHMMSS` of an object name `.../backup-YYYYMMDD-HHMMSS.<ext>`. */
const runStampOf = (object: string): string | undefined => stampPattern.exec(object)?.[1]

/** `backup-YYYYMMDD-HHMMSS` of an object name, as milliseconds (the run's slot, UTC). */
const runTimeOf = (object: string): number | undefined => StorageLocation.runStampTime(runStampOf(object) ?? "")

const isManifest = (object: string) => object.endsWith(".json")

/** Oldest first (by run time, then name). */
const byTime = (a: { readonly time: number; readonly id: string }, b: { readonly time: number; readonly id: string }) =>
  a.time - b.time || a.id.localeCompare(b.id)

/**
 * Applies a retention to the backups of one resource, after a successful run
 * whose manifest is `current`: lists the resource's prefix, keeps what
 * {@link Retention.selectRetained} keeps (a backup is a manifest and the dump
 * it names; only those are successful backups), and deletes the rest, oldest
 * first, each manifest before its dump, so an interrupted deletion never
 * leaves a manifest describing a dump that is gone. Dumps without a manifest
 * older than this run (runs that failed after their upload) are deleted too,
 * oldest first. Nothing outside the resource's prefix is touched, and this
 * run's objects never are.
 *
 * One pass deletes at most `maxBackups` backups (default and most
 * {@link maxDeletionsPerPass}, 100), so that their stamps fit in the
 * termination message, and at most 100 dumps of failed runs, so that a pass
 * stays short; it logs when it stops early, and the rest is left for the next
 * successful run (a bucket with a long backlog, e.g. after a retention was
 * shortened, is pruned over a few runs).
 *
 * Never fails: a store error ends the pass with what was done (its
 * `deletedRuns` are the backups whose manifest is gone) and the error; the
 * next successful run tries again.
 *
 * @example
 * ```ts
 * const result = yield* applyRetention({
 *   bucket: "backups",
 *   resource: { namespace: "team-a", name: "orders" },
 *   current: "backups/team-a/orders/backup-20260104-000000.json",
 *   retention: { keepLast: 7 },
 *   timeZone: "UTC",
 *   now: Date.now()
 * })
 * result.deleted // objects deleted by this pass
 * result.deletedRuns // ["20251228-000000"]: the backups it deleted
 * ```
 */
export const applyRetention = (run: {
  readonly bucket: string
  readonly resource: { readonly namespace: string; readonly name: string }
  readonly current: string
  readonly retention: Retention.Retention
  readonly timeZone: string
  readonly now: number
  /** Most backups to delete (at most {@link maxDeletionsPerPass}, the default). */
  readonly maxBackups?: number
}): Effect.Effect<RetentionResult, never, ObjectStore> =>
  Effect.gen(function* () {
    const store = yield* ObjectStore
    const maxBackups = Math.max(0, Math.min(run.maxBackups ?? maxDeletionsPerPass, maxDeletionsPerPass))
    let deleted = 0
    let backups = 0
    const deletedRuns: Array<string> = []
    const pass = Effect.gen(function* () {
      const objects = yield* store.list(run.bucket, { prefix: StorageLocation.resourcePrefix(run.resource) })
      const names = new Set(objects.map((info) => info.object))
      const candidates: Array<Retention.Candidate> = []
      for (const name of names) {
        const time = runTimeOf(name)
        if (isManifest(name) && time !== undefined) candidates.push({ id: name, time })
      }
      backups = candidates.length
      const { remove } = Retention.selectRetained(candidates, run.retention, run.timeZone, run.now)
      const removed = new Set(remove)
      const toDelete = candidates.filter((backup) => removed.has(backup.id) && backup.id !== run.current).sort(byTime)
      const dumpsOf = (manifest: string) =>
        [...names].filter((name) => !isManifest(name) && StorageLocation.manifestObjectOf(name) === manifest)
      for (const { id: manifest } of toDelete.slice(0, maxBackups)) {
        yield* store.remove(run.bucket, manifest)
        // Without its manifest it is no longer a backup: deleted, even if its dump stays (the next pass deletes it).
        deleted += 1
        deletedRuns.push(runStampOf(manifest) ?? "")
        for (const dump of dumpsOf(manifest)) yield* store.remove(run.bucket, dump)
        yield* Effect.logInfo("retention deleted a backup").pipe(Effect.annotateLogs({ bucket: run.bucket, manifest }))
      }
      if (toDelete.length > maxBackups) {
        yield* Effect.logInfo(
          `retention stops early: it deleted ${maxBackups} backups, the most this run deletes; the other ${toDelete.length - maxBackups} it would delete are left for the next successful run`
        ).pipe(Effect.annotateLogs({ bucket: run.bucket, left: toDelete.length - maxBackups }))
      }
      const currentTime = runTimeOf(run.current) ?? run.now
      const orphans: Array<{ readonly id: string; readonly time: number }> = []
      for (const name of names) {
        const time = runTimeOf(name)
        if (isManifest(name) || time === undefined || time >= currentTime) continue
        if (names.has(StorageLocation.manifestObjectOf(name))) continue
        orphans.push({ id: name, time })
      }
      orphans.sort(byTime)
      for (const { id: object } of orphans.slice(0, maxDeletionsPerPass)) {
        yield* store.remove(run.bucket, object)
        deleted += 1
        yield* Effect.logInfo("retention deleted the dump of a failed run").pipe(
          Effect.annotateLogs({ bucket: run.bucket, object })
        )
      }
      if (orphans.length > maxDeletionsPerPass) {
        yield* Effect.logInfo(
          `retention stops early: it deleted ${maxDeletionsPerPass} dumps of failed runs, the most one run deletes; the other ${orphans.length - maxDeletionsPerPass} are left for the next successful run`
        ).pipe(Effect.annotateLogs({ bucket: run.bucket, left: orphans.length - maxDeletionsPerPass }))
      }
    })
    // Read when the pass ends: the counts are of what it did.
    const result = (error?: string): RetentionResult => ({
      retained: backups - deletedRuns.length,
      deleted,
      deletedRuns: [...deletedRuns],
      ...(error === undefined ? {} : { error })
    })
    return yield* pass.pipe(
      Effect.map(() => result()),
      Effect.catch((error) => Effect.succeed(result(oneLine(`retention: ${error.message}`)))),
      Effect.tap(({ deletedRuns: runs, ...counts }) =>
        Effect.logInfo("retention applied").pipe(Effect.annotateLogs({ ...counts, deletedRuns: runs.join(",") }))
      )
    )
  })
