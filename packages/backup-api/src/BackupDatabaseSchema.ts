import { Condition, CrdSchema, Resource } from "@db-backup-operator/kube"
import { Schema } from "effect"
import { BackupRunPhase } from "./Backup.ts"
import { Compression } from "./Compression.ts"
import { DumpFormat } from "./DumpFormat.ts"
import { Retention } from "./Retention.ts"
import { SslMode } from "./Tls.ts"
import {
  AgeRecipient,
  DnsLabel,
  DnsSubdomain,
  GcpServiceAccount,
  GcsBucketName,
  gcsBucketRules,
  Host,
  NonNegativeInt,
  nameValidations,
  nonEmpty,
  PgIdentifier,
  Port,
  ScheduleText,
  SecretKey,
  Sha256Hex,
  Timestamp,
  TimeZoneName
} from "./Validation.ts"

/** Failed runs' `Backup` records kept when `spec.failedBackupsHistoryLimit` is not set. */
export const defaultFailedBackupsHistoryLimit = 3

/** One key of a ConfigMap or Secret in the backup Job's namespace. */
export const KeySelector = Schema.Struct({
  name: DnsSubdomain.annotate({ description: "Name of the object, in the backup Job's namespace." }),
  key: SecretKey.annotate({ description: "Key in the object's data." })
})
export type KeySelector = typeof KeySelector.Type

/** Client-side encryption of the dump with age: public keys in the resource, in a Secret, or both. */
export const Encryption = Schema.Struct({
  ageRecipients: Schema.optionalKey(
    Schema.Array(AgeRecipient).check(Schema.isMinLength(1), Schema.isMaxLength(20)).annotate({
      description:
        "age public keys (age1..., or post-quantum age1pq1...) the dump is encrypted to; any one of their private identities decrypts it."
    })
  ),
  ageRecipientsSecretRef: Schema.optionalKey(
    KeySelector.annotate({
      description:
        "A Secret key holding more recipients, one per line (# comments allowed). Subject to the same opt-in rules as the password Secret."
    })
  )
}).annotate({
  description:
    "Encrypt each dump with age before it leaves the backup Pod (.age after the compression's suffix). The operator and the store never see a key that decrypts it: keep an identity safe for restores.",
  ...CrdSchema.validations([
    {
      rule: "has(self.ageRecipients) || has(self.ageRecipientsSecretRef)",
      message: "give ageRecipients, ageRecipientsSecretRef, or both"
    }
  ])
})
export type Encryption = typeof Encryption.Type

/** A `BackupStorage` of the resource's namespace. */
export const StorageRef = Schema.Struct({
  name: DnsSubdomain.annotate({ description: "Name of the BackupStorage, in this resource's namespace." })
}).annotate({
  description:
    "A BackupStorage (GCS, S3, Azure Blob or a PersistentVolumeClaim) the backups are written to. Set this or gcsBucket."
})
export type StorageRef = typeof StorageRef.Type

/** Where the CA certificate for `verify-ca`/`verify-full` comes from: exactly one of the two. */
export const SslRootCert = Schema.Struct({
  configMapKeyRef: Schema.optionalKey(
    KeySelector.annotate({ description: "A ConfigMap key holding the CA certificate(s), PEM." })
  ),
  secretKeyRef: Schema.optionalKey(
    KeySelector.annotate({
      description:
        "A Secret key holding the CA certificate(s), PEM. Subject to the same opt-in rules as the password Secret."
    })
  )
}).annotate({
  description:
    "PEM CA certificate(s) the server's certificate must chain to. Default, under verify-ca/verify-full: the runner image's system CAs.",
  ...CrdSchema.validations([
    {
      rule: "has(self.configMapKeyRef) != has(self.secretKeyRef)",
      message: "set exactly one of configMapKeyRef and secretKeyRef"
    }
  ])
})
export type SslRootCert = typeof SslRootCert.Type

/**
 * A database server and role to restore into (a `Restore`'s target, a
 * verification's server), each field left out being the backup resource's own.
 */
export const DatabaseTarget = Schema.Struct({
  dbHost: Schema.optionalKey(Host.annotate({ description: "PostgreSQL server host (default: the backup's)." })),
  dbPort: Schema.optionalKey(Port.annotate({ description: "PostgreSQL server port (default: the backup's)." })),
  dbName: Schema.optionalKey(
    PgIdentifier.annotate({ description: "Database to restore into (default: the backup's)." })
  ),
  dbUser: Schema.optionalKey(
    PgIdentifier.annotate({
      description: "Role to restore as (default: the BackupDatabaseSchema's dbUser). Needs dbPasswordSecretName."
    })
  ),
  dbPasswordSecretName: Schema.optionalKey(
    DnsSubdomain.annotate({ description: "Secret holding that role's password, in the restore Job's namespace." })
  ),
  dbPasswordSecretKey: Schema.optionalKey(
    SecretKey.annotate({ description: "Key in that Secret's data that holds the password." })
  ),
  sslMode: Schema.optionalKey(
    SslMode.annotate({ description: "libpq sslmode of the connection (default: the BackupDatabaseSchema's)." })
  ),
  sslRootCert: Schema.optionalKey(SslRootCert)
}).annotate({
  description:
    "Where to restore: by default the database, role and password Secret of the backup's BackupDatabaseSchema. Secrets are read in the Job's namespace (the BackupDatabaseSchema's backupJobNamespace, else this one).",
  ...CrdSchema.validations([
    {
      rule: "has(self.dbPasswordSecretName) == has(self.dbPasswordSecretKey)",
      message: "set dbPasswordSecretName and dbPasswordSecretKey together"
    },
    {
      rule: "!has(self.dbUser) || has(self.dbPasswordSecretName)",
      message: "dbUser needs its own password: set dbPasswordSecretName and dbPasswordSecretKey",
      fieldPath: ".dbPasswordSecretName"
    },
    {
      rule: "!has(self.sslMode) || self.sslMode != 'verify-ca' || has(self.sslRootCert)",
      message: "sslMode verify-ca needs sslRootCert (the CA that issued the server's certificate)",
      fieldPath: ".sslRootCert"
    }
  ])
})
export type DatabaseTarget = typeof DatabaseTarget.Type

/** Opt-in verification of each successful backup. */
export const Verification = Schema.Struct({
  target: Schema.optionalKey(
    DatabaseTarget.annotate({
      description:
        "The server to verify on and the role (it needs CREATEDB); dbName is the database the scratch one is created from. Default: the resource's server, database and role. Another server needs its own dbUser and password Secret."
    })
  ),
  ageIdentitySecretRef: Schema.optionalKey(
    KeySelector.annotate({
      description: "With spec.encryption: a Secret key holding an age identity that decrypts the backups."
    })
  ),
  schedule: Schema.optionalKey(
    ScheduleText.annotate({
      description:
        "Verify on this schedule instead of after each backup: at each slot, the newest successful backup (if not verified yet). Same syntax as spec.schedule, in spec.timeZone."
    })
  )
}).annotate({
  description:
    "Verify each successful backup (or, with schedule, the newest at each slot): the operator creates a Restore <backup>-verify with verify: true, which restores it into a scratch database (created, then dropped) and checks every table's rows against the manifest. The outcome is the Backup's Verified condition and status.lastVerifiedTime."
})
export type Verification = typeof Verification.Type

/** A resource quantity as Kubernetes writes it: `500m`, `1`, `256Mi`, `2Gi` (a string or a whole number). */
const Quantity = Schema.Union([
  Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  Schema.String.check(
    Schema.isMaxCodePoints(32),
    Schema.isPattern(/^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei)?$/u)
  )
]).annotate({
  ...CrdSchema.intOrString,
  ...CrdSchema.validations([
    {
      rule: "type(self) == int ? self >= 0 : self.matches('^[0-9]+([.][0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei)?$')",
      message: "must be a quantity such as 500m, 1, 256Mi or 2Gi"
    }
  ])
})

const ResourceList = Schema.Struct({
  cpu: Schema.optionalKey(Quantity),
  memory: Schema.optionalKey(Quantity),
  "ephemeral-storage": Schema.optionalKey(Quantity)
})

/** One kind of Pod affinity (core/v1), kept as written: the API server validates it on the Job. */
const AffinityTerms = Schema.Record(Schema.String, Schema.Unknown).annotate(CrdSchema.preserveUnknownFields)

/** The backup Pod's container resources; each list replaces the operator's default list of the same kind. */
export const PodResources = Schema.Struct({
  requests: Schema.optionalKey(ResourceList.annotate({ description: "Requests (cpu, memory, ephemeral-storage)." })),
  limits: Schema.optionalKey(ResourceList.annotate({ description: "Limits (cpu, memory, ephemeral-storage)." }))
}).annotate({
  description:
    "Container resources of the backup Pod. Default: the operator's (requests cpu 100m, memory 128Mi; limits memory 512Mi)."
})

/** A toleration of the backup Pod, as a Pod's. */
export const PodToleration = Schema.Struct({
  key: Schema.optionalKey(nonEmpty(317)),
  operator: Schema.optionalKey(Schema.Literals(["Exists", "Equal"])),
  value: Schema.optionalKey(Schema.String.check(Schema.isMaxCodePoints(63))),
  effect: Schema.optionalKey(Schema.Literals(["NoSchedule", "PreferNoSchedule", "NoExecute"])),
  tolerationSeconds: Schema.optionalKey(Schema.Int)
})

/**
 * The spec of a `BackupDatabaseSchema`: every field of the original operator's
 * API, with the same names and JSON types, so existing resources apply unchanged.
 * Unlike the original, every field is validated at `kubectl apply` time, and the
 * optional ones have documented defaults.
 */
export const BackupDatabaseSchemaSpec = Schema.Struct({
  dbHost: Host.annotate({
    description: "PostgreSQL server: a DNS name or an IP address (IPv6 without brackets); no socket paths or lists."
  }),
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
  sslMode: Schema.optionalKey(
    SslMode.annotate({
      description:
        "TLS to the database, as libpq's sslmode: disable, allow, prefer, require (encrypted), verify-ca (and the certificate is signed by the CA), verify-full (and it names dbHost). Defaults to prefer, or to the operator's --min-ssl-mode when that is stricter. Whatever the mode, the password is never sent in cleartext over a connection that is not encrypted."
    })
  ),
  sslRootCert: Schema.optionalKey(SslRootCert),
  gcsBucket: Schema.optionalKey(
    GcsBucketName.annotate({
      description:
        "Google Cloud Storage bucket the backups are written to, as backups/<namespace>/<name>/backup-YYYYMMDD-HHMMSS.sql.gz plus a .json manifest. Set this (with gcpServiceAccount) or storageRef."
    })
  ),
  storageRef: Schema.optionalKey(StorageRef),
  kubeServiceAccount: Schema.optionalKey(
    DnsSubdomain.annotate({
      description:
        "Kubernetes ServiceAccount the backup Pod runs as (bound to the GCP service account through workload identity). Defaults to the namespace's default ServiceAccount."
    })
  ),
  gcpServiceAccount: Schema.optionalKey(
    GcpServiceAccount.annotate({
      description:
        "GCP service account with write access to the bucket: an account id (db-operator-gsa) or a full email (db-operator-gsa@project.iam.gserviceaccount.com). Required with gcsBucket."
    })
  ),
  backupJobNamespace: Schema.optionalKey(
    DnsLabel.annotate({
      description:
        "Namespace the backup Jobs run in. Defaults to the resource's namespace; another namespace must be allowed by the operator's administrator."
    })
  ),
  schedule: Schema.optionalKey(
    ScheduleText.annotate({
      description:
        "When to back up: five cron fields (minute hour day-of-month month day-of-week, as a Kubernetes CronJob), @hourly, @daily, @weekly, @monthly or @yearly, their spread forms @hourly-random ... @yearly-random (a fixed time picked from the resource's namespace and name, so many resources do not all start at once), or @every <duration> (such as @every 6h or @every 1h30m, at least 10s, counted from the resource's creation). Defaults to every interval of the operator's --backup-interval (5 minutes), the first run at once."
    })
  ),
  timeZone: Schema.optionalKey(
    TimeZoneName.annotate({
      description: "IANA time zone the schedule is read in, such as Europe/Berlin. Defaults to UTC."
    })
  ),
  suspend: Schema.optionalKey(
    Schema.Boolean.annotate({
      description:
        "True: start no new runs (a run in progress finishes). Slots missed while suspended get at most one catch-up run once resumed, within startingDeadlineSeconds."
    })
  ),
  retention: Schema.optionalKey(
    Retention.annotate(
      CrdSchema.validations([
        {
          rule: "has(self.keepLast) || has(self.keepHourly) || has(self.keepDaily) || has(self.keepWeekly) || has(self.keepMonthly) || has(self.keepYearly) || has(self.maxAge)",
          message: "set at least one of keepLast, keepHourly, keepDaily, keepWeekly, keepMonthly, keepYearly and maxAge"
        }
      ])
    )
  ),
  resources: Schema.optionalKey(PodResources),
  nodeSelector: Schema.optionalKey(
    Schema.Record(Schema.String, Schema.String.check(Schema.isMaxCodePoints(63))).annotate({
      description: "Node labels the backup Pod must run on (the Pod's nodeSelector)."
    })
  ),
  tolerations: Schema.optionalKey(
    Schema.Array(PodToleration)
      .check(Schema.isMaxLength(32))
      .annotate({ description: "Taints the backup Pod tolerates (the Pod's tolerations)." })
  ),
  affinity: Schema.optionalKey(
    Schema.Struct({
      nodeAffinity: Schema.optionalKey(AffinityTerms),
      podAffinity: Schema.optionalKey(AffinityTerms),
      podAntiAffinity: Schema.optionalKey(AffinityTerms)
    }).annotate({
      description:
        "The backup Pod's affinity, as a Pod's (nodeAffinity, podAffinity, podAntiAffinity). The API server checks it when the Job is created; one it refuses makes Ready=False JobInvalid."
    })
  ),
  priorityClassName: Schema.optionalKey(DnsSubdomain.annotate({ description: "PriorityClass of the backup Pod." })),
  activeDeadlineSeconds: Schema.optionalKey(
    Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 604_800 })).annotate({
      description:
        "A run taking longer is stopped and fails (the Job's activeDeadlineSeconds; at most 7 days). Default: the operator's (3600)."
    })
  ),
  backoffLimit: Schema.optionalKey(
    Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 10 })).annotate({
      description: "How often a failed backup Pod is retried within one run (the Job's backoffLimit). Default: 1."
    })
  ),
  startingDeadlineSeconds: Schema.optionalKey(
    NonNegativeInt.annotate({
      description:
        "How late a run may still start after its slot (the operator was down, the resource suspended, the previous run still running). A later slot is skipped, with an Event. Default: no limit; either way only the latest missed slot runs, once."
    })
  ),
  compression: Schema.optionalKey(
    Compression.annotate({
      description:
        "How the dump is compressed: gzip (default, .sql.gz), zstd (.sql.zst: smaller and faster; read it with zstd -d) or none (.sql). Recorded in the manifest."
    })
  ),
  format: Schema.optionalKey(
    DumpFormat.annotate({
      description:
        "pg_dump's format: plain (default, a SQL script psql runs: .sql.gz) or custom (pg_dump's archive, .dump.gz: pg_restore lists it and restores single tables from it). Compressed as compression says either way; db-backup-runner restore restores both in one transaction. Recorded in the manifest."
    })
  ),
  encryption: Schema.optionalKey(Encryption),
  verification: Schema.optionalKey(Verification),
  failedBackupsHistoryLimit: Schema.optionalKey(
    Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 100 })).annotate({
      description: `How many Backup records of failed runs to keep, newest first (default ${defaultFailedBackupsHistoryLimit}). Successful runs' records follow retention.`
    })
  )
}).annotate({
  description: "What to back up, where to, and with which identities.",
  ...CrdSchema.validations([
    {
      // libpq accepts the system's CAs only with verify-full: under verify-ca any publicly certified server would pass.
      rule: "!has(self.sslMode) || self.sslMode != 'verify-ca' || has(self.sslRootCert)",
      message:
        "sslMode verify-ca needs sslRootCert (the CA that issued the server's certificate); verify-full can use the system's CAs",
      fieldPath: ".sslRootCert"
    },
    ...nameValidations(gcsBucketRules, "gcsBucket"),
    {
      rule: "has(self.gcsBucket) != has(self.storageRef)",
      message: "set exactly one of gcsBucket and storageRef"
    },
    {
      rule: "!has(self.gcsBucket) || has(self.gcpServiceAccount)",
      message: "gcsBucket needs gcpServiceAccount (the GCP service account that writes to it)",
      fieldPath: ".gcpServiceAccount"
    }
  ])
})
export type BackupDatabaseSchemaSpec = typeof BackupDatabaseSchemaSpec.Type

/** How many runs `status.recentBackups` summarises. */
export const maxRecentBackups = 5

/** One line of `status.recentBackups`: a `Backup` record's name, phase and times. */
export const RecentBackup = Schema.Struct({
  name: DnsSubdomain.annotate({ description: "The Backup record." }),
  phase: Schema.optionalKey(BackupRunPhase),
  startTime: Schema.optionalKey(Timestamp),
  completionTime: Schema.optionalKey(Timestamp)
})
export type RecentBackup = typeof RecentBackup.Type

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
      description:
        "URL of the latest run's dump object (gs://, s3://, azblob:// or file://): the one being written while Running (decided before the run starts, so it is exact), the finished one after Success; after a failure, the last successful backup's (absent if there is none), never an object that does not exist."
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
      ...CrdSchema.listType("map", ["type"])
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
  ),
  lastFailedBackupTime: Schema.optionalKey(
    Timestamp.annotate({ description: "When the last failed backup run ended." })
  ),
  lastBackupDurationSeconds: Schema.optionalKey(
    NonNegativeInt.annotate({ description: "How long the last finished backup run took, in seconds." })
  ),
  retainedBackups: Schema.optionalKey(
    NonNegativeInt.annotate({
      description:
        "Successful backups in the bucket after the last run's retention (spec.retention or the operator's default)."
    })
  ),
  lastVerificationScheduleTime: Schema.optionalKey(
    Timestamp.annotate({ description: "The slot of spec.verification.schedule last acted on." })
  ),
  lastVerifiedTime: Schema.optionalKey(
    Timestamp.annotate({
      description: "When a backup of the resource last passed verification (spec.verification): its Verified condition."
    })
  ),
  lastSuccessfulBackupLocation: Schema.optionalKey(
    nonEmpty(1024).annotate({ description: "URL of the last successful backup's dump object." })
  ),
  lastScheduleTime: Schema.optionalKey(
    Timestamp.annotate({
      description: "The schedule slot of the last run started (lastBackupTime is when it started)."
    })
  ),
  nextScheduleTime: Schema.optionalKey(
    Timestamp.annotate({ description: "The next slot a run will start at; absent while suspended." })
  ),
  recentBackups: Schema.optionalKey(
    Schema.Array(RecentBackup)
      .check(Schema.isMaxLength(maxRecentBackups))
      .annotate({
        description: `The newest ${maxRecentBackups} Backup records of the resource, newest first (kubectl get backups has them all).`
      })
  )
}).annotate({ description: "Observed state of the backups." })
export type BackupDatabaseSchemaStatus = typeof BackupDatabaseSchemaStatus.Type

/**
 * The `BackupDatabaseSchema` kind (`backup.csyeteam03.xyz/v1`): a PostgreSQL
 * schema backed up to a GCS bucket through Kubernetes Jobs.
 *
 * @example
 * ```ts
 * declare const objectFromTheApiServer: unknown
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
