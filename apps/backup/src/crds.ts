import {
  Backup,
  BackupDatabaseSchema,
  BackupStorage,
  backupCrdFile,
  backupCrdOptions,
  backupDatabaseSchemaCrdFile,
  backupDatabaseSchemaCrdOptions,
  backupStorageCrdFile,
  backupStorageCrdOptions,
  Restore,
  restoreCrdFile,
  restoreCrdOptions
} from "@db-backup-operator/backup-api"
import { Crd } from "@db-backup-operator/operator"

/**
 * Every CRD of the backup API with the file it is generated into (`npm run crds`
 * writes them to `crds/` and the chart). Built when called, not when imported:
 * only the CRD script and tests need them, and generating walks every Schema.
 *
 * @example
 * ```ts
 * import { CrdFiles } from "@db-backup-operator/operator"
 * CrdFiles.write("crds", customResourceDefinitions(), { source: "packages/backup-api" })
 * ```
 */
export const customResourceDefinitions = (): ReadonlyArray<{
  readonly file: string
  readonly crd: Crd.CustomResourceDefinition
}> => [
  {
    file: backupDatabaseSchemaCrdFile,
    crd: Crd.make(BackupDatabaseSchema, backupDatabaseSchemaCrdOptions)
  },
  { file: backupCrdFile, crd: Crd.make(Backup, backupCrdOptions) },
  { file: backupStorageCrdFile, crd: Crd.make(BackupStorage, backupStorageCrdOptions) },
  { file: restoreCrdFile, crd: Crd.make(Restore, restoreCrdOptions) }
]
