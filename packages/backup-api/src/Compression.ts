import { Schema } from "effect"
import { type DumpFormat, defaultDumpFormat, formatExtensionOf } from "./DumpFormat.ts"

/**
 * How the dump is compressed before upload: `gzip` (default), `zstd` (smaller
 * and faster; read with `zstd -d` or Node's zlib), or `none`.
 */
export const Compression = Schema.Literals(["gzip", "zstd", "none"])
export type Compression = typeof Compression.Type

/** The compression used when none is configured. */
export const defaultCompression: Compression = "gzip"

/**
 * File extension of a dump object for a compression and a format (plain when
 * not given): the format's (`.sql`, `.dump`), then the compression's.
 *
 * @example
 * ```ts
 * extensionOf("gzip") // ".sql.gz"
 * extensionOf("zstd") // ".sql.zst"
 * extensionOf("none") // ".sql"
 * extensionOf("gzip", "custom") // ".dump.gz"
 * extensionOf("none", "custom") // ".dump"
 * ```
 */
export const extensionOf = (compression: Compression, format: DumpFormat = defaultDumpFormat): string =>
  `${formatExtensionOf(format)}${compression === "gzip" ? ".gz" : compression === "zstd" ? ".zst" : ""}`

/**
 * `Content-Type` of a dump object for a compression and a format (plain when
 * not given). Gzip dumps are stored as `application/gzip` (not as
 * `Content-Encoding: gzip`), so GCS never decompresses them on download and the
 * stored bytes are the ones the manifest's sha256 covers. An uncompressed
 * custom-format archive is binary, with no type of its own.
 *
 * @example
 * ```ts
 * contentTypeOf("none") // "application/sql"
 * contentTypeOf("none", "custom") // "application/octet-stream"
 * ```
 */
export const contentTypeOf = (compression: Compression, format: DumpFormat = defaultDumpFormat): string =>
  compression === "gzip"
    ? "application/gzip"
    : compression === "zstd"
      ? "application/zstd"
      : format === "custom"
        ? "application/octet-stream"
        : "application/sql"
