/**
 * The contract between the controller, the runner and the bucket, without the
 * Kubernetes kind: the runner's environment, where backups are stored, what a
 * manifest says. A separate entry point (`@db-backup-operator/backup-api/contract`)
 * so the runner does not load the Kubernetes client that the kind's module
 * brings in (about 90 MB of resident memory and seconds of start-up).
 *
 * @example
 * ```ts
 * import { RunnerContract, StorageLocation } from "@db-backup-operator/backup-api/contract"
 * const contract = yield* RunnerContract.fromEnv(process.env)
 * ```
 */
export * from "./BackupManifest.ts"
export * from "./Compression.ts"
export * from "./DumpFormat.ts"
export * as Retention from "./Retention.ts"
export * as RunnerContract from "./RunnerContract.ts"
export * as StorageLocation from "./StorageLocation.ts"
export * as Tls from "./Tls.ts"
export * as Validation from "./Validation.ts"
