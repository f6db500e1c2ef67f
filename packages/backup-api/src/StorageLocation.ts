import { Option } from "effect"
import { type Compression, extensionOf } from "./Compression.ts"

/**
 * Where backups live in a bucket:
 *
 * ```
 * backups/<namespace>/<name>/backup-YYYYMMDD-HHMMSS.sql.gz   the dump (.sql when uncompressed)
 * backups/<namespace>/<name>/backup-YYYYMMDD-HHMMSS.json     its manifest, written last
 * ```
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
 * The dump and manifest object names of a run.
 *
 * @example
 * ```ts
 * backupObjects({ namespace: "team", name: "api", startedAt: new Date("2025-03-04T05:06:07Z"), compression: "gzip" })
 * // { object: "backups/team/api/backup-20250304-050607.sql.gz", manifest: "backups/team/api/backup-20250304-050607.json" }
 * ```
 */
export const backupObjects = (run: {
  readonly namespace: string
  readonly name: string
  readonly startedAt: Date
  readonly compression: Compression
}): BackupObjects => {
  const base = `${resourcePrefix(run)}backup-${runTimestamp(run.startedAt)}`
  return { object: `${base}${extensionOf(run.compression)}`, manifest: `${base}.json` }
}

/**
 * The manifest object that belongs to a dump object (same base name, `.json`).
 *
 * @example
 * ```ts
 * manifestObjectOf("backups/team/api/backup-20250304-050607.sql.gz") // "backups/team/api/backup-20250304-050607.json"
 * ```
 */
export const manifestObjectOf = (object: string): string => `${object.replace(/\.sql(\.gz|\.zst)?$/u, "")}.json`

/** A parsed dump object name. */
export interface ParsedBackupObject {
  readonly namespace: string
  readonly name: string
  /** Start of the run (UTC, second precision). */
  readonly startedAt: Date
  readonly compression: Compression
}

const objectPattern =
  /^backups\/([^/]+)\/([^/]+)\/backup-(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})\.sql(\.gz|\.zst)?$/u

/**
 * Parses a dump object name written by {@link backupObjects}; `None` for any
 * other object (manifests, foreign files).
 *
 * @example
 * ```ts
 * parseBackupObject("backups/team/api/backup-20250304-050607.sql") // Some({ namespace: "team", name: "api", compression: "none", ... })
 * ```
 */
export const parseBackupObject = (object: string): Option.Option<ParsedBackupObject> => {
  const match = objectPattern.exec(object)
  if (match === null) return Option.none()
  const [, namespace = "", name = "", y, mo, d, h, mi, s, suffix] = match
  const startedAt = new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)))
  if (runTimestamp(startedAt) !== `${y}${mo}${d}-${h}${mi}${s}`) return Option.none()
  return Option.some({
    namespace,
    name,
    startedAt,
    compression: suffix === ".gz" ? "gzip" : suffix === ".zst" ? "zstd" : "none"
  })
}

/**
 * `gs://bucket/object`, the form `status.backupLocation` and `gcloud storage` use.
 *
 * @example
 * ```ts
 * gsUrl("my-bucket", "backups/team/api/backup-20250304-050607.sql.gz")
 * // "gs://my-bucket/backups/team/api/backup-20250304-050607.sql.gz"
 * ```
 */
export const gsUrl = (bucket: string, object: string): string => `gs://${bucket}/${object}`

/**
 * Splits a `gs://bucket/object` URL; `None` if it is not one.
 *
 * @example
 * ```ts
 * parseGsUrl("gs://b/backups/x.sql") // Some({ bucket: "b", object: "backups/x.sql" })
 * ```
 */
export const parseGsUrl = (url: string): Option.Option<{ readonly bucket: string; readonly object: string }> => {
  const match = /^gs:\/\/([^/]+)\/(.+)$/u.exec(url)
  return match === null ? Option.none() : Option.some({ bucket: match[1] ?? "", object: match[2] ?? "" })
}
