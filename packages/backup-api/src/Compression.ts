import { Schema } from "effect"

/**
 * How the dump is compressed before upload: `gzip` (default), `zstd` (smaller
 * and faster; read with `zstd -d` or Node's zlib), or `none`.
 */
export const Compression = Schema.Literals(["gzip", "zstd", "none"])
export type Compression = typeof Compression.Type

/** The compression used when none is configured. */
export const defaultCompression: Compression = "gzip"

/**
 * File extension of a dump object for a compression.
 *
 * @example
 * ```ts
 * extensionOf("gzip") // ".sql.gz"
 * extensionOf("zstd") // ".sql.zst"
 * extensionOf("none") // ".sql"
 * ```
 */
export const extensionOf = (compression: Compression): string =>
  compression === "gzip" ? ".sql.gz" : compression === "zstd" ? ".sql.zst" : ".sql"

/**
 * `Content-Type` of a dump object for a compression. Gzip dumps are stored as
 * `application/gzip` (not as `Content-Encoding: gzip`), so GCS never decompresses
 * them on download and the stored bytes are the ones the manifest's sha256 covers.
 */
export const contentTypeOf = (compression: Compression): string =>
  compression === "gzip" ? "application/gzip" : compression === "zstd" ? "application/zstd" : "application/sql"
