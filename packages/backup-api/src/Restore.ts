import { Condition, CrdSchema, Resource } from "@db-backup-operator/kube"
import { Schema } from "effect"
import { DatabaseTarget, KeySelector } from "./BackupDatabaseSchema.ts"
import { DnsSubdomain, NonNegativeInt, nonEmpty, Timestamp } from "./Validation.ts"

/**
 * The phase of a restore: `Pending` while its source is not ready (no
 * successful backup yet, a Backup still running), `Running` while its Job
 * runs, then `Succeeded` (committed) or `Failed` (nothing committed).
 */
export const RestorePhase = Schema.Literals(["Pending", "Running", "Succeeded", "Failed"])
export type RestorePhase = typeof RestorePhase.Type

/** What to do when the target database already has the schema (and it is not empty). */
export const SchemaExistsPolicy = Schema.Literals(["Fail", "Replace"])
export type SchemaExistsPolicy = typeof SchemaExistsPolicy.Type

/** Which backup to restore: exactly one of the three. */
export const RestoreSource = Schema.Struct({
  backupName: Schema.optionalKey(
    DnsSubdomain.annotate({ description: "A Backup (one run) in this namespace; it must have Succeeded." })
  ),
  backupDatabaseSchemaName: Schema.optionalKey(
    DnsSubdomain.annotate({
      description:
        "A BackupDatabaseSchema in this namespace: its latest Succeeded Backup (the newest when the Restore is created)."
    })
  ),
  location: Schema.optionalKey(
    nonEmpty(1024)
      .check(Schema.isPattern(/^(gs|s3|azblob):\/\/\S+\/backups\/\S+\/backup-\d{8}-\d{6}\.\S+$/u))
      .annotate({
        description:
          "The URL of a backup's manifest (or dump) in a store, for a cluster that has no Backup records of it: gs://BUCKET/backups/NAMESPACE/NAME/backup-YYYYMMDD-HHMMSS.json (s3://, azblob://ACCOUNT/CONTAINER/ alike). Needs target.dbUser and its password Secret."
      })
  ),
  storageRef: Schema.optionalKey(
    Schema.Struct({
      name: DnsSubdomain.annotate({ description: "Name of the BackupStorage, in this namespace." })
    }).annotate({
      description:
        "With location: the BackupStorage whose endpoint and credentials reach that store (default: the store's own defaults and the Pod's workload identity)."
    })
  )
}).annotate({
  description: "The backup to restore: set exactly one of backupName, backupDatabaseSchemaName and location.",
  ...CrdSchema.validations([
    {
      rule: "(has(self.backupName) ? 1 : 0) + (has(self.backupDatabaseSchemaName) ? 1 : 0) + (has(self.location) ? 1 : 0) == 1",
      message: "set exactly one of backupName, backupDatabaseSchemaName and location"
    },
    {
      rule: "!has(self.storageRef) || has(self.location)",
      message: "storageRef goes with location (a Backup's own storage is its BackupDatabaseSchema's)",
      fieldPath: ".storageRef"
    }
  ])
})
export type RestoreSource = typeof RestoreSource.Type

/** Where to restore, each field left out being the source's own: a {@link DatabaseTarget}. */
export const RestoreTarget = DatabaseTarget
export type RestoreTarget = typeof RestoreTarget.Type

/** One restore. Immutable: create another Restore to restore again. */
export const RestoreSpec = Schema.Struct({
  source: RestoreSource,
  target: Schema.optionalKey(RestoreTarget),
  schemaExists: Schema.optionalKey(
    SchemaExistsPolicy.annotate({
      description:
        "Fail (default): restore nothing when the target database has the schema and it is not empty. Replace: drop the schema and restore it, in the same transaction (refused while views or foreign keys in other schemas use it)."
    })
  ),
  noOwner: Schema.optionalKey(
    Schema.Boolean.annotate({
      description:
        "Skip the dump's ownership (ALTER ... OWNER TO): everything restored belongs to the restoring role. For a server without the backup's roles."
    })
  ),
  noPrivileges: Schema.optionalKey(
    Schema.Boolean.annotate({ description: "Skip the dump's GRANT, REVOKE and default privileges." })
  ),
  decryption: Schema.optionalKey(
    Schema.Struct({
      ageIdentitySecretRef: KeySelector.annotate({
        description:
          "A Secret key holding an age identity (age-keygen's key file, AGE-SECRET-KEY-1...) of one of the backup's recipients, in the Job's namespace."
      })
    }).annotate({ description: "How to decrypt an encrypted backup." })
  ),
  verify: Schema.optionalKey(
    Schema.Boolean.annotate({
      description:
        "A verification instead of a restore: restore the backup into a scratch database created on the target server (from target.dbName, default the backup's database) and dropped afterwards, checking every byte and every table's rows; the target database is never changed. The role needs CREATEDB. schemaExists, noOwner and noPrivileges do not apply."
    })
  ),
  kubeServiceAccount: Schema.optionalKey(
    DnsSubdomain.annotate({
      description:
        "ServiceAccount the restore Pod runs as, for the store's workload identity (default: the BackupDatabaseSchema's kubeServiceAccount, else the namespace's default)."
    })
  ),
  activeDeadlineSeconds: Schema.optionalKey(
    Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 604800 })).annotate({
      description: "Kills the restore after this many seconds, committing nothing (default: the operator's, 1 hour)."
    })
  )
}).annotate({
  description: "The backup to restore, where to, and how.",
  ...CrdSchema.validations([
    { rule: "self == oldSelf", message: "spec is immutable: create another Restore" },
    {
      rule: "!has(self.verify) || !self.verify || (!has(self.schemaExists) && !has(self.noOwner) && !has(self.noPrivileges))",
      message:
        "verify restores into a scratch database of its own: schemaExists, noOwner and noPrivileges do not apply",
      fieldPath: ".verify"
    },
    {
      rule: "!has(self.source.location) || (has(self.target) && has(self.target.dbUser))",
      message:
        "source.location has no BackupDatabaseSchema to take the role from: set target.dbUser and its password Secret",
      fieldPath: ".target"
    }
  ])
})
export type RestoreSpec = typeof RestoreSpec.Type

/** What the restore did, written by the operator. */
export const RestoreStatus = Schema.Struct({
  phase: Schema.optionalKey(RestorePhase.annotate({ description: "Pending, Running, Succeeded or Failed." })),
  backupName: Schema.optionalKey(
    DnsSubdomain.annotate({ description: "The Backup restored (absent for a location)." })
  ),
  location: Schema.optionalKey(
    nonEmpty(1024).annotate({ description: "URL of the backup restored (its manifest, or its dump)." })
  ),
  target: Schema.optionalKey(
    nonEmpty(2048).annotate({ description: "Where to: host:port/database/schema (the backup's host when not set)." })
  ),
  startTime: Schema.optionalKey(Timestamp.annotate({ description: "When its Job was created." })),
  completionTime: Schema.optionalKey(Timestamp.annotate({ description: "When it succeeded or failed." })),
  tables: Schema.optionalKey(NonNegativeInt.annotate({ description: "Tables in the schema after the restore." })),
  rowsVerified: Schema.optionalKey(
    Schema.Boolean.annotate({
      description: "Whether every table was checked to hold the rows the backup's manifest counted, before the commit."
    })
  ),
  sizeBytes: Schema.optionalKey(NonNegativeInt.annotate({ description: "Bytes read from the store." })),
  jobName: Schema.optionalKey(DnsSubdomain.annotate({ description: "The Job that runs (ran) the restore." })),
  jobNamespace: Schema.optionalKey(DnsSubdomain.annotate({ description: "The namespace of that Job." })),
  message: Schema.optionalKey(
    nonEmpty(4096).annotate({ description: "What happened, in a sentence: why it waits, or why it failed." })
  ),
  observedGeneration: Schema.optionalKey(
    NonNegativeInt.annotate({ description: "metadata.generation this status was written for." })
  ),
  conditions: Schema.optionalKey(
    Schema.Array(Condition).annotate({
      description: "Conditions of the restore (Succeeded), one entry per type.",
      ...CrdSchema.listType("map", ["type"])
    })
  )
}).annotate({ description: "What the restore did." })
export type RestoreStatus = typeof RestoreStatus.Type

/**
 * The `Restore` kind (`backup.csyeteam03.xyz/v1`): one restore of one backup
 * into a database, run by a Job of the runner image (`db-backup-runner
 * restore`) and committed only when every byte matched the backup's manifest,
 * every statement succeeded and every table holds the rows the manifest counted.
 *
 * @example
 * ```ts
 * declare const objectFromTheApiServer: unknown
 * const restore = Schema.decodeUnknownSync(Restore.schema)(objectFromTheApiServer)
 * restore.status?.phase // "Succeeded"
 * ```
 */
export const Restore = Resource.custom({
  group: "backup.csyeteam03.xyz",
  version: "v1",
  kind: "Restore",
  plural: "restores",
  namespaced: true,
  spec: RestoreSpec,
  status: RestoreStatus
})
export type Restore = Resource.Type<typeof Restore>

/**
 * How the `Restore` CRD presents itself in kubectl.
 *
 * ```
 * $ kubectl get restores
 * NAME          BACKUP                            PHASE       TARGET                    TABLES   STARTED   COMPLETED   AGE
 * api-restore   database-backup-20261203000000   Succeeded   pg:5432/api/api           12       2m        1m          2m
 * ```
 */
export const restoreCrdOptions = {
  description: "One restore of a backup into a PostgreSQL database: all or nothing, verified against its manifest.",
  shortNames: ["rst"],
  categories: ["backups"],
  printerColumns: [
    { name: "Backup", type: "string", jsonPath: ".status.backupName", description: "The Backup restored." },
    { name: "Phase", type: "string", jsonPath: ".status.phase", description: "Pending, Running, Succeeded or Failed." },
    { name: "Target", type: "string", jsonPath: ".status.target", description: "host:port/database/schema." },
    { name: "Tables", type: "integer", jsonPath: ".status.tables", description: "Tables restored." },
    { name: "Started", type: "date", jsonPath: ".status.startTime", description: "When its Job was created." },
    {
      name: "Completed",
      type: "date",
      jsonPath: ".status.completionTime",
      description: "When it succeeded or failed."
    },
    {
      name: "Location",
      type: "string",
      jsonPath: ".status.location",
      description: "The backup's URL.",
      priority: 1
    },
    {
      name: "Message",
      type: "string",
      jsonPath: ".status.message",
      description: "Why it waits or failed.",
      priority: 1
    },
    { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" }
  ]
} as const

/** File name of the generated CRD under `crds/`. */
export const restoreCrdFile = "backup.csyeteam03.xyz_restores.yaml"
