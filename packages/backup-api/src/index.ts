/**
 * The backup operator's API: the `BackupDatabaseSchema` kind, where backups are
 * stored, what a backup's manifest says, and the contract between the
 * controller and the runner.
 *
 * @example
 * ```ts
 * import { BackupDatabaseSchema, StorageLocation, RunnerContract } from "@db-backup-operator/backup-api"
 * const objects = StorageLocation.backupObjects({ namespace: "team", name: "api", startedAt: new Date(), compression: "gzip" })
 * ```
 */
export * from "./Backup.ts"
export * from "./BackupDatabaseSchema.ts"
export * from "./BackupStorage.ts"
export * from "./CrdOptions.ts"
export * from "./contract.ts"
export * as JobLabels from "./JobLabels.ts"
export * from "./Restore.ts"
