/**
 * Object stores behind one interface: GCS today (S3, Azure Blob and a
 * filesystem later).
 *
 * @example
 * ```ts
 * import { GcsObjectStore, ObjectStore } from "@db-backup-operator/storage"
 * const exists = ObjectStore.use((store) => store.exists("bucket", "backups/a.json"))
 * await Effect.runPromise(exists.pipe(Effect.provide(GcsObjectStore.layer())))
 * ```
 */
export * as GcsObjectStore from "./GcsObjectStore.ts"
export * from "./ObjectStore.ts"
export * from "./StorageError.ts"
