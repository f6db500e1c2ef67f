/**
 * How the `BackupDatabaseSchema` CRD presents itself in kubectl: short name,
 * category and printer columns, for the operator package's CRD generator
 * (`Crd.make(BackupDatabaseSchema, backupDatabaseSchemaCrdOptions)`,
 * in `@db-backup-operator/backup`'s `customResourceDefinitions`). Plain data, so this
 * package does not load the operator runtime.
 *
 * ```
 * $ kubectl get bds
 * NAME              SCHEDULE    STATUS    READY             LAST SUCCESS   NEXT BACKUP            AGE
 * database-backup               Success   BackupSucceeded   4m             2026-12-03T05:20:07Z   2d
 * nightly           @daily      Running   BackupSucceeded   23h            2026-12-04T00:00:00Z   9d
 * ```
 *
 * `-o wide` adds when the last run started and where its dump goes. The next
 * backup is a plain timestamp: kubectl shows a future `date` as `<invalid>`.
 */
export const backupDatabaseSchemaCrdOptions = {
  description:
    "A PostgreSQL schema backed up by Kubernetes Jobs to Google Cloud Storage or a BackupStorage (S3, Azure Blob, a volume).",
  shortNames: ["bds"],
  categories: ["backups"],
  printerColumns: [
    {
      name: "Schedule",
      type: "string",
      jsonPath: ".spec.schedule",
      description: "When it backs up (empty: the operator's default interval)."
    },
    { name: "Status", type: "string", jsonPath: ".status.status", description: "Outcome of the last backup run." },
    {
      name: "Ready",
      type: "string",
      jsonPath: '.status.conditions[?(@.type=="Ready")].reason',
      description: "Why the resource is or is not ready (the Ready condition's reason)."
    },
    {
      name: "Last Success",
      type: "date",
      jsonPath: ".status.lastSuccessfulBackupTime",
      description: "When the last successful backup finished."
    },
    {
      name: "Next Backup",
      type: "string",
      jsonPath: ".status.nextScheduleTime",
      description: "When the next run starts (empty while suspended)."
    },
    {
      name: "Last Backup",
      type: "date",
      jsonPath: ".status.lastBackupTime",
      description: "When the last backup run started.",
      priority: 1
    },
    {
      name: "Location",
      type: "string",
      jsonPath: ".status.backupLocation",
      description: "Where the last backup's dump is stored.",
      priority: 1
    },
    { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" }
  ]
} as const

/** File name of the generated CRD under `crds/`. */
export const backupDatabaseSchemaCrdFile = "backup.csyeteam03.xyz_backupdatabaseschemas.yaml"
