import { Option, Schema } from "effect"
import { type Compression, extensionOf } from "./Compression.ts"
import type { DumpFormat } from "./DumpFormat.ts"

/**
 * Where backups live in a bucket:
 *
 * ```
 * backups/<namespace>/<name>/backup-YYYYMMDD-HHMMSS.sql.gz   the dump (.sql when uncompressed)
 * backups/<namespace>/<name>/backup-YYYYMMDD-HHMMSS.json     its manifest, written last
 * ```
 *
 * A custom-format dump (pg_dump's archive) is named `.dump` instead of `.sql`
 * (`backup-YYYYMMDD-HHMMSS.dump.gz`), and an encrypted one ends with `.age`.
 *
 * Namespace and name are both in the path, so resources sharing a bucket never
 * overwrite each other; times are UTC. The controller computes these names
 * before a run starts and hands them to the runner, so `status.backupLocation`
 * is exactly where the dump lands.
 */

/** The objects of one backup run. */
export interface BackupObjects {
  /** Object name of the dump. */
  readonly object: string
  /** Object name of the manifest. */
  readonly manifest: string
}

const pad = (n: number, width = 2): string => String(n).padStart(width, "0")

/**
 * `YYYYMMDD-HHMMSS` of a time, in UTC.
 *
 * @example
 * ```ts
 * runTimestamp(new Date("2025-03-04T05:06:07Z")) // "20250304-050607"
 * ```
 */
export const runTimestamp = (at: Date): string =>
  `${pad(at.getUTCFullYear(), 4)}${pad(at.getUTCMonth() + 1)}${pad(at.getUTCDate())}-` +
  `${pad(at.getUTCHours())}${pad(at.getUTCMinutes())}${pad(at.getUTCSeconds())}`

/**
 * The time a run stamp `YYYYMMDD-HHMMSS` (UTC) names, in milliseconds: the
 * inverse of {@link runTimestamp}; undefined for any other text.
 *
 * @example
 * ```ts
 * runStampTime("20250304-050607") // Date.parse("2025-03-04T05:06:07Z")
 * ```
 */
export const runStampTime = (stamp: string): number | undefined => {
  const match = /^(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})$/u.exec(stamp)
  if (match === null) return undefined
  const [, year, month, day, hour, minute, second] = match.map(Number)
  return Date.UTC(year ?? 0, (month ?? 1) - 1, day ?? 0, hour ?? 0, minute ?? 0, second ?? 0)
}

/**
 * The run stamp of a backup's manifest, from its object name or URL
 * (`…/backup-YYYYMMDD-HHMMSS.json`); undefined for anything else (a dump).
 *
 * @example
 * ```ts
 * manifestStampOf("gs://b/backups/team/api/backup-20250304-050607.json") // "20250304-050607"
 * manifestStampOf("backups/team/api/backup-20250304-050607.sql.gz") // undefined
 * ```
 */
export const manifestStampOf = (objectOrUrl: string): string | undefined =>
  /\/backup-(\d{8}-\d{6})\.json$/u.exec(objectOrUrl)?.[1]

/**
 * The prefix under which all backups of one resource live (ends with `/`), for
 * listing and retention.
 *
 * @example
 * ```ts
 * resourcePrefix({ namespace: "team", name: "api" }) // "backups/team/api/"
 * ```
 */
export const resourcePrefix = (resource: { readonly namespace: string; readonly name: string }): string =>
  `backups/${resource.namespace}/${resource.name}/`

/**
 * The object a run writes (empty) and removes before it dumps, to learn that
 * the location exists and takes writes from its identity. Every run of a
 * resource uses the same name, so at most one is left where removing is not
 * allowed; it is no backup ({@link parseBackupObject} ignores it).
 *
 * @example
 * ```ts
 * writeCheckObject({ namespace: "team", name: "api" }) // "backups/team/api/.write-check"
 * ```
 */
export const writeCheckObject = (resource: { readonly namespace: string; readonly name: string }): string =>
  `${resourcePrefix(resource)}.write-check`

/**
 * The dump and manifest object names of a run.
 *
 * @example
 * ```ts
 * backupObjects({ namespace: "team", name: "api", startedAt: new Date("2025-03-04T05:06:07Z"), compression: "gzip" })
 * // { object: "backups/team/api/backup-20250304-050607.sql.gz", manifest: "backups/team/api/backup-20250304-050607.json" }
 * backupObjects({ namespace: "team", name: "api", startedAt: new Date("2025-03-04T05:06:07Z"), compression: "zstd", format: "custom" })
 * // { object: "backups/team/api/backup-20250304-050607.dump.zst", manifest: "backups/team/api/backup-20250304-050607.json" }
 * ```
 */
export const backupObjects = (run: {
  readonly namespace: string
  readonly name: string
  readonly startedAt: Date
  readonly compression: Compression
  /** pg_dump's format (default plain): `.dump` instead of `.sql` for a custom-format archive. */
  readonly format?: DumpFormat | undefined
  /** Encrypted with age: `.age` follows the compression's suffix. */
  readonly encrypted?: boolean | undefined
}): BackupObjects => {
  const base = `${resourcePrefix(run)}backup-${runTimestamp(run.startedAt)}`
  return {
    object: `${base}${extensionOf(run.compression, run.format)}${run.encrypted === true ? encryptedSuffix : ""}`,
    manifest: `${base}.json`
  }
}

/** The suffix of an age-encrypted dump (`backup-….sql.gz.age`), as the `age` tool names its files. */
export const encryptedSuffix = ".age"

/**
 * The manifest object that belongs to a dump object (same base name, `.json`),
 * whatever its format, compression and encryption.
 *
 * @example
 * ```ts
 * manifestObjectOf("backups/team/api/backup-20250304-050607.sql.gz") // "backups/team/api/backup-20250304-050607.json"
 * manifestObjectOf("backups/team/api/backup-20250304-050607.dump.zst.age") // "backups/team/api/backup-20250304-050607.json"
 * ```
 */
export const manifestObjectOf = (object: string): string =>
  `${object.replace(/\.(?:sql|dump)(\.gz|\.zst)?(\.age)?$/u, "")}.json`

/** A parsed dump object name. */
export interface ParsedBackupObject {
  readonly namespace: string
  readonly name: string
  /** Start of the run (UTC, second precision). */
  readonly startedAt: Date
  readonly format: DumpFormat
  readonly compression: Compression
  readonly encrypted: boolean
}

const objectPattern =
  /^backups\/([^/]+)\/([^/]+)\/backup-(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})\.(sql|dump)(\.gz|\.zst)?(\.age)?$/u

/**
 * Parses a dump object name written by {@link backupObjects}; `None` for any
 * other object (manifests, foreign files).
 *
 * @example
 * ```ts
 * parseBackupObject("backups/team/api/backup-20250304-050607.sql") // Some({ namespace: "team", name: "api", format: "plain", compression: "none", ... })
 * parseBackupObject("backups/team/api/backup-20250304-050607.dump.gz") // Some({ ..., format: "custom", compression: "gzip", ... })
 * ```
 */
export const parseBackupObject = (object: string): Option.Option<ParsedBackupObject> => {
  const match = objectPattern.exec(object)
  if (match === null) return Option.none()
  const [, namespace = "", name = "", y, mo, d, h, mi, s, kind, suffix, age] = match
  const startedAt = new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)))
  if (runTimestamp(startedAt) !== `${y}${mo}${d}-${h}${mi}${s}`) return Option.none()
  return Option.some({
    namespace,
    name,
    startedAt,
    format: kind === "dump" ? "custom" : "plain",
    compression: suffix === ".gz" ? "gzip" : suffix === ".zst" ? "zstd" : "none",
    encrypted: age !== undefined
  })
}

/** The kinds of store a backup can go to. */
export const StoreKind = Schema.Literals(["gcs", "s3", "azure", "file"])
export type StoreKind = typeof StoreKind.Type

/**
 * Where a run's objects go: the kind of store, its bucket (the Azure
 * container; for a volume, the directory it is mounted at in the backup Pod)
 * and, for Azure, the storage account.
 */
export interface Store {
  readonly kind: StoreKind
  readonly bucket: string
  readonly account?: string | undefined
}

/**
 * Where a volume store is mounted in the backup Pod: `/var/lib/db-backup/<claim>`
 * (then the `subPath`, if any), so a location names its claim.
 *
 * @example
 * ```ts
 * volumeDirectory("backups", "team-a") // "/var/lib/db-backup/backups/team-a"
 * ```
 */
export const volumeDirectory = (claim: string, subPath?: string): string =>
  `/var/lib/db-backup/${claim}${subPath === undefined ? "" : `/${subPath}`}`

/**
 * An object's URL in its store's scheme, the form status, manifests and
 * messages use: `gs://bucket/object` (as `gcloud storage`), `s3://bucket/object`
 * (as `aws s3`), `azblob://account/container/object`, and `file://` with the
 * file's path in the backup Pod.
 *
 * @example
 * ```ts
 * objectUrl({ kind: "gcs", bucket: "my-bucket" }, "backups/team/api/backup-20250304-050607.sql.gz")
 * // "gs://my-bucket/backups/team/api/backup-20250304-050607.sql.gz"
 * objectUrl({ kind: "azure", account: "acme", bucket: "dumps" }, "backups/a.sql.gz") // "azblob://acme/dumps/backups/a.sql.gz"
 * objectUrl({ kind: "file", bucket: "/var/lib/db-backup/pvc" }, "backups/a.sql.gz") // "file:///var/lib/db-backup/pvc/backups/a.sql.gz"
 * ```
 */
export const objectUrl = (store: Store, object: string): string => `${storeUrl(store)}/${object}`

/**
 * The store's own URL, without an object: what a run's target names.
 *
 * @example
 * ```ts
 * storeUrl({ kind: "s3", bucket: "dumps" }) // "s3://dumps"
 * ```
 */
export const storeUrl = (store: Store): string => {
  switch (store.kind) {
    case "gcs":
      return `gs://${store.bucket}`
    case "s3":
      return `s3://${store.bucket}`
    case "azure":
      return `azblob://${store.account ?? ""}/${store.bucket}`
    case "file":
      return `file://${store.bucket}`
  }
}

/**
 * The object name of a dump at a location written by {@link objectUrl} and
 * {@link backupObjects} (whatever the store); `None` for any other URL.
 *
 * @example
 * ```ts
 * backupObjectOfUrl("s3://b/backups/team/api/backup-20250304-050607.sql.gz")
 * // Some("backups/team/api/backup-20250304-050607.sql.gz")
 * ```
 */
export const backupObjectOfUrl = (url: string): Option.Option<string> => {
  const match = /(?:^|\/)(backups\/[^/]+\/[^/]+\/backup-[^/]+)$/u.exec(url)
  return match?.[1] === undefined ? Option.none() : Option.some(match[1])
}

/**
 * The store and object of a backup's URL, as {@link objectUrl} writes it (a
 * dump's, of either format, or a manifest's); `None` for any other URL.
 *
 * @example
 * ```ts
 * backupOfUrl("gs://dumps/backups/team/api/backup-20250304-050607.json")
 * // Some({ store: { kind: "gcs", bucket: "dumps" }, object: "backups/team/api/backup-20250304-050607.json" })
 * backupOfUrl("s3://dumps/backups/team/api/backup-20250304-050607.dump.gz")
 * // Some({ store: { kind: "s3", bucket: "dumps" }, object: "backups/team/api/backup-20250304-050607.dump.gz" })
 * backupOfUrl("azblob://acme/dumps/backups/team/api/backup-20250304-050607.sql.gz")
 * // Some({ store: { kind: "azure", account: "acme", bucket: "dumps" }, object: "backups/team/api/backup-20250304-050607.sql.gz" })
 * ```
 */
export const backupOfUrl = (url: string): Option.Option<{ readonly store: Store; readonly object: string }> => {
  const object = backupObjectOfUrl(url)
  if (Option.isNone(object)) return Option.none()
  const prefix = url.slice(0, url.length - object.value.length - 1)
  const of = (store: Store) => Option.some({ store, object: object.value })
  const bucketed = /^(gs|s3):\/\/([^/]+)$/u.exec(prefix)
  if (bucketed?.[2] !== undefined) return of({ kind: bucketed[1] === "gs" ? "gcs" : "s3", bucket: bucketed[2] })
  const azure = /^azblob:\/\/([^/]+)\/([^/]+)$/u.exec(prefix)
  if (azure?.[1] !== undefined && azure[2] !== undefined)
    return of({ kind: "azure", account: azure[1], bucket: azure[2] })
  const file = /^file:\/\/(\/.*)?$/u.exec(prefix)
  if (file !== null) return of({ kind: "file", bucket: file[1] ?? "/" })
  return Option.none()
}
