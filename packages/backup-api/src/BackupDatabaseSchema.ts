import { Resource } from "@db-backup-operator/kube"
import { CustomResourceDefinition } from "@db-backup-operator/operator"
import { Schema } from "effect"
import { Condition } from "./Condition.ts"
import {
  DnsLabel,
  DnsSubdomain,
  GcpServiceAccount,
  GcsBucketName,
  Host,
  NonNegativeInt,
  nonEmpty,
  PgIdentifier,
  Port,
  SecretKey,
  Sha256Hex,
  Timestamp
} from "./Validation.ts"

/**
 * The spec of a `BackupDatabaseSchema`: every field of the original operator's
 * API, with the same names and JSON types, so existing resources apply unchanged.
 * Unlike the original, every field is validated at `kubectl apply` time, and the
 * optional ones have documented defaults.
 */
export const BackupDatabaseSchemaSpec = Schema.Struct({
  dbHost: Host.annotate({ description: "PostgreSQL server host name or IP address." }),
  dbUser: PgIdentifier.annotate({ description: "PostgreSQL role the backup connects as." }),
  dbPasswordSecretName: DnsSubdomain.annotate({
    description: "Name of the Kubernetes Secret holding the database password."
  }),
  dbPasswordSecretNamespace: Schema.optionalKey(
    DnsLabel.annotate({
      description:
        "Namespace of the password Secret. Defaults to the resource's namespace; another namespace must be allowed by the operator's administrator."
    })
  ),
  dbPasswordSecretKey: SecretKey.annotate({ description: "Key in the Secret's data that holds the password." }),
  dbName: PgIdentifier.annotate({ description: "Database that contains the schema." }),
  dbSchema: PgIdentifier.annotate({
    description: "Schema to back up (an exact name, not a pattern; case-sensitive)."
  }),
  dbPort: Port.annotate({ description: "PostgreSQL server port (1-65535)." }),
  gcsBucket: GcsBucketName.annotate({
    description:
      "Google Cloud Storage bucket the backups are written to, as backups/<namespace>/<name>/backup-YYYYMMDD-HHMMSS.sql.gz plus a .json manifest."
  }),
  kubeServiceAccount: Schema.optionalKey(
    DnsSubdomain.annotate({
      description:
        "Kubernetes ServiceAccount the backup Pod runs as (bound to the GCP service account through workload identity). Defaults to the namespace's default ServiceAccount."
    })
  ),
  gcpServiceAccount: GcpServiceAccount.annotate({
    description:
      "GCP service account with write access to the bucket: an account id (db-operator-gsa) or a full email (db-operator-gsa@project.iam.gserviceaccount.com)."
  }),
  backupJobNamespace: Schema.optionalKey(
    DnsLabel.annotate({
      description:
        "Namespace the backup Jobs run in. Defaults to the resource's namespace; another namespace must be allowed by the operator's administrator."
    })
  )
}).annotate({ description: "What to back up, where to, and with which identities." })
export type BackupDatabaseSchemaSpec = typeof BackupDatabaseSchemaSpec.Type

/** The outcome of the last backup run, as the original API declared it. */
export const BackupPhase = Schema.Literals(["Running", "Success", "Failed"])
export type BackupPhase = typeof BackupPhase.Type

/**
 * The status of a `BackupDatabaseSchema`: the original four fields plus the
 * conventions users expect (observedGeneration, conditions) and what is needed
 * to alert on stale or failed backups. Every key is optional: the controller
 * fills them in as it learns them.
 */
export const BackupDatabaseSchemaStatus = Schema.Struct({
  lastBackupTime: Schema.optionalKey(Timestamp.annotate({ description: "When the last backup run started." })),
  backupLocation: Schema.optionalKey(
    nonEmpty(1024).annotate({
      description: "gs:// URL of the last backup's dump object (decided before the run starts, so it is exact)."
    })
  ),
  status: Schema.optionalKey(BackupPhase.annotate({ description: "Outcome of the last backup run." })),
  jobName: Schema.optionalKey(DnsSubdomain.annotate({ description: "Name of the Job that ran the last backup." })),
  observedGeneration: Schema.optionalKey(
    NonNegativeInt.annotate({ description: "metadata.generation this status was computed for." })
  ),
  conditions: Schema.optionalKey(
    Schema.Array(Condition).annotate({
      description: "Current state of the resource (Ready, BackupSucceeded, ...), one entry per type.",
      ...CustomResourceDefinition.listType("map", ["type"])
    })
  ),
  lastSuccessfulBackupTime: Schema.optionalKey(
    Timestamp.annotate({ description: "When the last successful backup finished." })
  ),
  lastBackupSizeBytes: Schema.optionalKey(
    NonNegativeInt.annotate({ description: "Size in bytes of the last successful backup's dump object." })
  ),
  lastBackupSha256: Schema.optionalKey(
    Sha256Hex.annotate({ description: "SHA-256 (hex) of the last successful backup's dump object." })
  )
}).annotate({ description: "Observed state of the backups." })
export type BackupDatabaseSchemaStatus = typeof BackupDatabaseSchemaStatus.Type

/**
 * The `BackupDatabaseSchema` kind (`backup.csyeteam03.xyz/v1`): a PostgreSQL
 * schema backed up to a GCS bucket through Kubernetes Jobs.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * const backup = Schema.decodeUnknownSync(BackupDatabaseSchema.schema)(objectFromTheApiServer)
 * backup.spec.dbSchema // "api"
 * ```
 */
export const BackupDatabaseSchema = Resource.custom({
  group: "backup.csyeteam03.xyz",
  version: "v1",
  kind: "BackupDatabaseSchema",
  plural: "backupdatabaseschemas",
  namespaced: true,
  spec: BackupDatabaseSchemaSpec,
  status: BackupDatabaseSchemaStatus
})
export type BackupDatabaseSchema = Resource.Type<typeof BackupDatabaseSchema>
