import { Condition, CrdSchema, Resource } from "@db-backup-operator/kube"
import { Schema } from "effect"
import { DnsSubdomain, NonNegativeInt, nonEmpty, Sha256Hex, Timestamp } from "./Validation.ts"

/**
 * The phase of one run: `Pending` until its Job is created (waiting for its
 * resource's run in progress, or for a place under the concurrency limits),
 * `Running` while the Job runs, then `Succeeded` or `Failed`.
 */
export const BackupRunPhase = Schema.Literals(["Pending", "Running", "Succeeded", "Failed"])
export type BackupRunPhase = typeof BackupRunPhase.Type

/** Which resource a run backs up: a `BackupDatabaseSchema` of the record's own namespace. Immutable. */
export const BackupSpec = Schema.Struct({
  backupDatabaseSchemaName: DnsSubdomain.annotate({
    description: "Name of the BackupDatabaseSchema (in this namespace) to back up."
  })
}).annotate({
  description: "The run to make. Create one with kubectl for a backup now (it waits for a run in progress).",
  ...CrdSchema.validations([{ rule: "self == oldSelf", message: "spec is immutable: create another Backup" }])
})
export type BackupSpec = typeof BackupSpec.Type

/** What one run did, written by the operator. */
export const BackupStatus = Schema.Struct({
  phase: Schema.optionalKey(BackupRunPhase.annotate({ description: "Pending, Running, Succeeded or Failed." })),
  scheduledTime: Schema.optionalKey(
    Timestamp.annotate({ description: "The schedule slot this run is for (absent for an on-demand run)." })
  ),
  startTime: Schema.optionalKey(Timestamp.annotate({ description: "When its Job was created." })),
  completionTime: Schema.optionalKey(Timestamp.annotate({ description: "When it succeeded or failed." })),
  location: Schema.optionalKey(
    nonEmpty(1024).annotate({
      description:
        "URL of the dump object (gs://, s3://, azblob:// or file://; being written while Running; only a Succeeded run's is complete)."
    })
  ),
  manifestLocation: Schema.optionalKey(
    nonEmpty(1024).annotate({ description: "URL of the manifest that describes the dump (Succeeded only)." })
  ),
  sizeBytes: Schema.optionalKey(NonNegativeInt.annotate({ description: "Size in bytes of the dump object." })),
  sha256: Schema.optionalKey(Sha256Hex.annotate({ description: "SHA-256 (hex) of the dump object." })),
  serverVersion: Schema.optionalKey(nonEmpty(64).annotate({ description: "The PostgreSQL server's version." })),
  pgDumpVersion: Schema.optionalKey(nonEmpty(256).annotate({ description: "The pg_dump that made the dump." })),
  target: Schema.optionalKey(
    nonEmpty(2048).annotate({
      description:
        "What the run backs up and where to: host:port/database/schema -> gs://bucket (or s3://, azblob://, file://)."
    })
  ),
  jobName: Schema.optionalKey(DnsSubdomain.annotate({ description: "The Job that runs (ran) the backup." })),
  jobNamespace: Schema.optionalKey(DnsSubdomain.annotate({ description: "The namespace of that Job." })),
  message: Schema.optionalKey(
    nonEmpty(4096).annotate({ description: "What happened, in a sentence: why it waits, or why it failed." })
  ),
  observedGeneration: Schema.optionalKey(
    NonNegativeInt.annotate({ description: "metadata.generation this status was written for." })
  ),
  conditions: Schema.optionalKey(
    Schema.Array(Condition).annotate({
      description: "Conditions of the run, one entry per type.",
      ...CrdSchema.listType("map", ["type"])
    })
  )
}).annotate({ description: "What the run did." })
export type BackupStatus = typeof BackupStatus.Type

/**
 * The `Backup` kind (`backup.csyeteam03.xyz/v1`): one run of a
 * `BackupDatabaseSchema`. The operator creates one per schedule slot (named
 * `<resource>-<YYYYMMDDHHMMSS>` after the slot, so a repeated create is a
 * harmless `AlreadyExists`); a user creates one for a backup now. Retention
 * deletes a successful run's record after its objects; failed runs' records
 * beyond the resource's `failedBackupsHistoryLimit` are deleted.
 *
 * @example
 * ```ts
 * declare const objectFromTheApiServer: unknown
 * const run = Schema.decodeUnknownSync(Backup.schema)(objectFromTheApiServer)
 * run.status?.phase // "Succeeded"
 * ```
 */
export const Backup = Resource.custom({
  group: "backup.csyeteam03.xyz",
  version: "v1",
  kind: "Backup",
  plural: "backups",
  namespaced: true,
  spec: BackupSpec,
  status: BackupStatus
})
export type Backup = Resource.Type<typeof Backup>

/**
 * How the `Backup` CRD presents itself in kubectl (see
 * `backupDatabaseSchemaCrdOptions`).
 *
 * ```
 * $ kubectl get backups.backup.csyeteam03.xyz
 * NAME                             SOURCE    PHASE       STARTED   COMPLETED   SIZE    AGE
 * nightly-20261203000000           nightly   Succeeded   9h        9h          48213   9h
 * ```
 */
export const backupCrdOptions = {
  description: "One backup run of a BackupDatabaseSchema: scheduled, or created by a user for a backup now.",
  shortNames: ["bkp"],
  categories: ["backups"],
  printerColumns: [
    {
      name: "Source",
      type: "string",
      jsonPath: ".spec.backupDatabaseSchemaName",
      description: "The BackupDatabaseSchema it backs up."
    },
    { name: "Phase", type: "string", jsonPath: ".status.phase", description: "Pending, Running, Succeeded or Failed." },
    { name: "Started", type: "date", jsonPath: ".status.startTime", description: "When its Job was created." },
    {
      name: "Completed",
      type: "date",
      jsonPath: ".status.completionTime",
      description: "When it succeeded or failed."
    },
    { name: "Size", type: "integer", jsonPath: ".status.sizeBytes", description: "Bytes of the dump object." },
    {
      name: "Location",
      type: "string",
      jsonPath: ".status.location",
      description: "Where the dump is stored.",
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
export const backupCrdFile = "backup.csyeteam03.xyz_backups.yaml"
