import { Retention, StorageLocation } from "@db-backup-operator/backup-api/contract"
import { ObjectStore } from "@db-backup-operator/storage"
import { Effect } from "effect"
import { oneLine } from "./oneLine.ts"

/** What retention did after a successful run; `error` when it could not finish (the backup itself stands). */
export interface RetentionResult {
  /** Successful backups (with a manifest) left in the bucket, this run's included. */
  readonly retained: number
  /** Backups deleted (dump and manifest), and dumps of failed runs that had no manifest. */
  readonly deleted: number
  readonly error?: string
}

/** `backup-YYYYMMDD-HHMMSS` of an object name, as milliseconds (the run's slot, UTC). */
const runTimeOf = (object: string): number | undefined => {
  const match = /\/backup-(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})\.[^/]+$/u.exec(object)
  if (match === null) return undefined
  const [, year, month, day, hour, minute, second] = match.map(Number)
  return Date.UTC(year ?? 0, (month ?? 1) - 1, day ?? 0, hour ?? 0, minute ?? 0, second ?? 0)
}

const isManifest = (object: string) => object.endsWith(".json")

/**
 * Applies a retention to the backups of one resource, after a successful run
 * whose manifest is `current`: lists the resource's prefix, keeps what
 * {@link Retention.selectRetained} keeps (a backup is a manifest and the dump
 * it names; only those are successful backups), and deletes the rest, each
 * manifest before its dump, so an interrupted deletion never leaves a manifest
 * describing a dump that is gone. Dumps without a manifest older than this run
 * (runs that failed after their upload) are deleted too. Nothing outside the
 * resource's prefix is touched, and this run's objects never are.
 *
 * Never fails: a store error ends the pass with what was done and the error;
 * the next successful run tries again.
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
 * result.deleted // backups deleted by this pass
 * ```
 */
export const applyRetention = (run: {
  readonly bucket: string
  readonly resource: { readonly namespace: string; readonly name: string }
  readonly current: string
  readonly retention: Retention.Retention
  readonly timeZone: string
  readonly now: number
}): Effect.Effect<RetentionResult, never, ObjectStore> =>
  Effect.gen(function* () {
    const store = yield* ObjectStore
    let deleted = 0
    let retained = 0
    const pass = Effect.gen(function* () {
      const objects = yield* store.list(run.bucket, { prefix: StorageLocation.resourcePrefix(run.resource) })
      const names = new Set(objects.map((info) => info.object))
      const candidates: Array<Retention.Candidate> = []
      for (const name of names) {
        const time = runTimeOf(name)
        if (isManifest(name) && time !== undefined) candidates.push({ id: name, time })
      }
      const { keep, remove } = Retention.selectRetained(candidates, run.retention, run.timeZone, run.now)
      retained = keep.length
      const dumpsOf = (manifest: string) =>
        [...names].filter((name) => !isManifest(name) && StorageLocation.manifestObjectOf(name) === manifest)
      for (const manifest of remove) {
        if (manifest === run.current) continue
        yield* store.remove(run.bucket, manifest)
        for (const dump of dumpsOf(manifest)) yield* store.remove(run.bucket, dump)
        deleted += 1
        yield* Effect.logInfo("retention deleted a backup").pipe(Effect.annotateLogs({ bucket: run.bucket, manifest }))
      }
      const currentTime = runTimeOf(run.current) ?? run.now
      for (const name of names) {
        const time = runTimeOf(name)
        if (isManifest(name) || time === undefined || time >= currentTime) continue
        if (names.has(StorageLocation.manifestObjectOf(name))) continue
        yield* store.remove(run.bucket, name)
        deleted += 1
        yield* Effect.logInfo("retention deleted the dump of a failed run").pipe(
          Effect.annotateLogs({ bucket: run.bucket, object: name })
        )
      }
    })
    return yield* pass.pipe(
      // Read when the pass ends: the counts are of what it did.
      Effect.map((): RetentionResult => ({ retained, deleted })),
      Effect.catch((error) =>
        Effect.succeed<RetentionResult>({ retained, deleted, error: oneLine(`retention: ${error.message}`) })
      ),
      Effect.tap((result) => Effect.logInfo("retention applied").pipe(Effect.annotateLogs({ ...result })))
    )
  })
