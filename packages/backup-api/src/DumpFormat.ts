import { Schema } from "effect"

/**
 * The format pg_dump writes: `plain` (default), a SQL script that `psql` runs,
 * or `custom`, pg_dump's archive format, which `pg_restore` reads (list its
 * contents, restore single tables, or in parallel). Either way the runner
 * compresses the dump itself (pg_dump's own compression is off), and
 * `db-backup-runner restore` restores both in one transaction.
 */
export const DumpFormat = Schema.Literals(["plain", "custom"])
export type DumpFormat = typeof DumpFormat.Type

/** The format used when none is configured: a plain SQL script, as the original operator wrote. */
export const defaultDumpFormat: DumpFormat = "plain"

/**
 * The part of a dump object's name that says its format, before the
 * compression's suffix: `.sql` for a SQL script, `.dump` for a custom-format
 * archive (the name the PostgreSQL documentation uses for them).
 *
 * @example
 * ```ts
 * formatExtensionOf("plain") // ".sql"
 * formatExtensionOf("custom") // ".dump"
 * ```
 */
export const formatExtensionOf = (format: DumpFormat): string => (format === "custom" ? ".dump" : ".sql")
