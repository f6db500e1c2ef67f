import { StorageLocation } from "@db-backup-operator/backup-api/contract"
import { ObjectStore } from "@db-backup-operator/storage"
import { Effect } from "effect"
import { oneLine } from "./oneLine.ts"

/** The bucket's backups of one resource, as a successful run reports them for the controller's records. */
export interface Catalog {
  /** Run stamps (`YYYYMMDD-HHMMSS`) of the backups that have a manifest, newest first. */
  readonly stamps: ReadonlyArray<string>
}

/**
 * Lists the backups of one resource: its prefix's manifests (a manifest is
 * written only after its dump is complete, and retention deletes it first, so
 * each one is a complete backup). Never fails: a store error is logged and
 * gives no catalog; the next successful run lists again.
 *
 * @example
 * ```ts
 * const catalog = yield* listCatalog({ bucket: "backups", resource: { namespace: "team-a", name: "orders" } })
 * catalog?.stamps // ["20260104-000000", "20260103-000000"]
 * ```
 */
export const listCatalog = (run: {
  readonly bucket: string
  readonly resource: { readonly namespace: string; readonly name: string }
}): Effect.Effect<Catalog | undefined, never, ObjectStore> =>
  Effect.gen(function* () {
    const store = yield* ObjectStore
    const objects = yield* store.list(run.bucket, { prefix: StorageLocation.resourcePrefix(run.resource) })
    const stamps = objects
      .map((info) => StorageLocation.manifestStampOf(info.object))
      .filter((stamp): stamp is string => stamp !== undefined)
      .sort()
      .reverse()
    return { stamps }
  }).pipe(
    Effect.catch((error) =>
      Effect.logWarning("could not list the bucket's backups for the catalog").pipe(
        Effect.annotateLogs({ reason: oneLine(error.message) }),
        Effect.as(undefined)
      )
    )
  )
