/**
 * Object stores behind one interface, one module (and Layer) each: Google
 * Cloud Storage, S3 and S3-compatible servers, Azure Blob Storage, and a
 * filesystem (a mounted volume). Each also has its own entry point
 * (`@db-backup-operator/storage/s3`, ...) so a program loads only the SDK it
 * uses.
 *
 * @example
 * ```ts
 * import { GcsObjectStore, ObjectStore } from "@db-backup-operator/storage"
 * const exists = ObjectStore.use((store) => store.exists("bucket", "backups/a.json"))
 * await Effect.runPromise(exists.pipe(Effect.provide(GcsObjectStore.layer())))
 * ```
 */
export * as AzureBlobObjectStore from "./AzureBlobObjectStore.ts"
export * as FileObjectStore from "./FileObjectStore.ts"
export * as GcsObjectStore from "./GcsObjectStore.ts"
export * from "./ObjectStore.ts"
export * as S3ObjectStore from "./S3ObjectStore.ts"
export * from "./StorageError.ts"
