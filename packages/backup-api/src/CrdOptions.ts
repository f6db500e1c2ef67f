/**
 * How the `BackupDatabaseSchema` CRD presents itself in kubectl: short name,
 * category and printer columns, for the operator package's CRD generator
 * (`Crd.make(BackupDatabaseSchema, backupDatabaseSchemaCrdOptions)`,
 * in `@db-backup-operator/backup`'s `customResourceDefinitions`). Plain data, so this
 * package does not load the operator runtime.
 *
 * ```
 * $ kubectl get bds
 * NAME              STATUS    LAST BACKUP   LOCATION                                            AGE
 * database-backup   Success   4m            gs://bucket/backups/ns/database-backup/backup-...   2d
 * ```
 */
export const backupDatabaseSchemaCrdOptions = {
  description: "A PostgreSQL schema backed up to a Google Cloud Storage bucket by Kubernetes Jobs.",
  shortNames: ["bds"],
  categories: ["backups"],
  printerColumns: [
    { name: "Status", type: "string", jsonPath: ".status.status", description: "Outcome of the last backup run." },
    {
      name: "Last Backup",
      type: "date",
      jsonPath: ".status.lastBackupTime",
      description: "When the last backup run started."
    },
    {
      name: "Location",
      type: "string",
      jsonPath: ".status.backupLocation",
      description: "Where the last backup's dump is stored."
    },
    { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" }
  ]
} as const

/** File name of the generated CRD under `crds/`. */
export const backupDatabaseSchemaCrdFile = "backup.csyeteam03.xyz_backupdatabaseschemas.yaml"
