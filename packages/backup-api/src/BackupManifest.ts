import { Schema } from "effect"
import { Compression } from "./Compression.ts"
import { DumpFormat } from "./DumpFormat.ts"
import { StoreKind } from "./StorageLocation.ts"
import {
  DnsLabel,
  DnsSubdomain,
  NonNegativeInt,
  nonEmpty,
  PgIdentifier,
  Port,
  Sha256Hex,
  Timestamp
} from "./Validation.ts"

/**
 * A dump's encryption as its manifest records it: the format and the public
 * keys it was encrypted to, so a restore knows which identity it needs.
 */
export const ManifestEncryption = Schema.Struct({
  format: Schema.Literal("age"),
  recipients: Schema.Array(nonEmpty(2048))
})
export type ManifestEncryption = typeof ManifestEncryption.Type

/**
 * One table of the dumped schema and its rows, counted in the snapshot the dump
 * was taken in: a restore of the dump has exactly these.
 */
export const ManifestTable = Schema.Struct({
  name: nonEmpty(128).annotate({ description: "The table's name (in the manifest's schema)." }),
  rows: NonNegativeInt.annotate({ description: "Its rows in the dump." })
})
export type ManifestTable = typeof ManifestTable.Type

/**
 * The manifest written beside every dump object, last, once the dump object is
 * complete. A dump without its manifest is an incomplete backup and is never
 * counted. `sha256` and `sizeBytes` describe the stored bytes (compressed, when
 * compressed; encrypted, when encrypted), so `gcloud storage cat ... | sha256sum`
 * verifies it.
 *
 * @example
 * ```ts
 * declare const manifestText: string
 * const manifest = Schema.decodeUnknownSync(BackupManifest)(JSON.parse(manifestText))
 * manifest.sha256 // "9f86d08..."
 * ```
 */
export const BackupManifest = Schema.Struct({
  manifestVersion: Schema.Literal(1).annotate({ description: "Version of this manifest format." }),
  resource: Schema.Struct({ namespace: DnsLabel, name: DnsSubdomain }).annotate({
    description: "The BackupDatabaseSchema this run belongs to."
  }),
  bucket: nonEmpty(1024).annotate({
    description: "Bucket holding the dump object (the Azure container; a volume's directory)."
  }),
  store: Schema.optionalKey(
    StoreKind.annotate({ description: "The store: gcs, s3, azure or file (absent in manifests before stores: gcs)." })
  ),
  object: nonEmpty(1024).annotate({ description: "Object name of the dump." }),
  sizeBytes: NonNegativeInt.annotate({ description: "Size of the dump object in bytes." }),
  sha256: Sha256Hex.annotate({ description: "SHA-256 of the dump object's bytes, hex." }),
  compression: Compression.annotate({ description: "Compression of the dump object." }),
  format: Schema.optionalKey(
    DumpFormat.annotate({
      description:
        "pg_dump's format: plain (a SQL script) or custom (an archive pg_restore reads). Absent in manifests before formats: plain."
    })
  ),
  host: nonEmpty(253).annotate({ description: "PostgreSQL host the dump was taken from." }),
  port: Port.annotate({ description: "PostgreSQL port." }),
  database: PgIdentifier.annotate({ description: "Database dumped." }),
  schema: PgIdentifier.annotate({ description: "Schema dumped." }),
  serverVersion: nonEmpty(64).annotate({ description: "PostgreSQL server version (server_version_num)." }),
  pgDumpVersion: nonEmpty(256).annotate({ description: "Output of pg_dump --version." }),
  encryption: Schema.optionalKey(
    ManifestEncryption.annotate({ description: "How the dump object is encrypted (absent: it is not)." })
  ),
  tables: Schema.optionalKey(
    Schema.Array(ManifestTable).annotate({
      description:
        "Every table of the schema (partitions counted in their parent) with its rows, read in the dump's own snapshot (absent in manifests before row counts, or when they could not be read)."
    })
  ),
  startedAt: Timestamp.annotate({ description: "When the run started." }),
  finishedAt: Timestamp.annotate({ description: "When the dump object was complete." })
})
export type BackupManifest = typeof BackupManifest.Type

/** Encodes a manifest as the JSON text stored in the bucket. */
export const encodeManifest = (manifest: BackupManifest): string =>
  `${JSON.stringify(Schema.encodeSync(BackupManifest)(manifest), null, 2)}\n`

/** Decodes a manifest read from the bucket. */
export const decodeManifest = Schema.decodeUnknownEffect(Schema.fromJsonString(BackupManifest))
