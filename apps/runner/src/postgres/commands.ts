import type { DumpFormat } from "@db-backup-operator/backup-api/contract"

/**
 * Argument lists for the PostgreSQL client tools. Always arrays (never a shell
 * line), values joined to their option with `=` so no value can be read as an
 * option, and never a password: libpq reads it from `PGPASSWORD`.
 */

/** Where and as whom to connect. */
export interface Connection {
  readonly host: string
  readonly port: number
  readonly user: string
  readonly database: string
}

/**
 * The value for `--dbname`. libpq treats a `--dbname` containing `=` or
 * starting with a `postgres://` URI as a whole connection string (which could
 * override the host or user); such names are passed as a quoted `dbname='...'`
 * connection string so they stay a database name.
 *
 * @example
 * ```ts
 * dbnameArg("api") // "api"
 * dbnameArg("a=b") // "dbname='a=b'"
 * ```
 */
export const dbnameArg = (database: string): string =>
  database.includes("=") || /^postgres(ql)?:\/\//u.test(database)
    ? `dbname='${database.replace(/\\/gu, "\\\\").replace(/'/gu, "\\'")}'`
    : database

/**
 * A pg_dump `--schema` pattern matching exactly one schema name. Patterns
 * treat `*`, `?`, `.` and upper case specially; inside double quotes they are
 * literal (and `"` is written twice).
 *
 * @example
 * ```ts
 * exactSchemaPattern("api") // "\"api\""
 * exactSchemaPattern("My*Schema") // "\"My*Schema\""
 * ```
 */
export const exactSchemaPattern = (schema: string): string => `"${schema.replaceAll('"', '""')}"`

/** How every tool connects: host, port, user and database as arguments (never the password). */
export const connectionArgs = (connection: Connection): ReadonlyArray<string> => [
  `--host=${connection.host}`,
  `--port=${connection.port}`,
  `--username=${connection.user}`,
  `--dbname=${dbnameArg(connection.database)}`
]

/**
 * `pg_dump` arguments: a dump of one schema to stdout, as a plain SQL script
 * (default) or a custom-format archive, in the snapshot `snapshot` if given.
 * A custom archive is left uncompressed (`--compress=0`, which pg_dump 15
 * reads as level 0 and 16 and later as the method none): the runner's own
 * gzip or zstd stage compresses it, in parallel, as it does a plain dump, and
 * compressing twice would only cost time.
 *
 * @example
 * ```ts
 * pgDumpArgs({ host: "db", port: 5432, user: "u", database: "api" }, "api")
 * // ["--host=db", "--port=5432", "--username=u", "--dbname=api", "--schema=\"api\"", "--no-password", "--format=plain"]
 * pgDumpArgs({ host: "db", port: 5432, user: "u", database: "api" }, "api", { format: "custom" })
 * // [..., "--no-password", "--format=custom", "--compress=0"]
 * ```
 */
export const pgDumpArgs = (
  connection: Connection,
  schema: string,
  options: { readonly snapshot?: string | undefined; readonly format?: DumpFormat | undefined } = {}
): ReadonlyArray<string> => [
  ...connectionArgs(connection),
  `--schema=${exactSchemaPattern(schema)}`,
  "--no-password",
  ...(options.format === "custom" ? ["--format=custom", "--compress=0"] : ["--format=plain"]),
  ...(options.snapshot === undefined ? [] : [`--snapshot=${options.snapshot}`])
]

/**
 * `pg_restore` arguments that turn the custom-format archive on stdin into
 * the SQL script it holds, on stdout: what a restore of a custom-format
 * backup runs through one psql transaction, like a plain dump. pg_restore
 * connects to no server this way.
 */
export const pgRestoreScriptArgs: ReadonlyArray<string> = ["--format=custom", "--file=-"]

/** `psql` arguments that print the server's `server_version_num` and nothing else. */
export const serverVersionArgs = (connection: Connection): ReadonlyArray<string> =>
  psqlQueryArgs(connection, "SHOW server_version_num")

/**
 * `psql` arguments that run the SQL on stdin as one transaction: the first
 * failing statement stops it, and nothing is committed unless every statement
 * succeeded and the input ended.
 *
 * @example
 * ```ts
 * psqlTransactionArgs({ host: "db", port: 5432, user: "u", database: "api" })
 * // ["--host=db", "--port=5432", "--username=u", "--dbname=api", "--no-password", "--no-psqlrc",
 * //  "--single-transaction", "--set=ON_ERROR_STOP=1", "--quiet", "--file=-"]
 * ```
 */
export const psqlTransactionArgs = (connection: Connection): ReadonlyArray<string> => [
  ...connectionArgs(connection),
  "--no-password",
  "--no-psqlrc",
  "--single-transaction",
  "--set=ON_ERROR_STOP=1",
  "--quiet",
  "--file=-"
]

/** `psql` arguments that print the result of `query` (a fixed text, no input in it), one row per line. */
export const psqlQueryArgs = (connection: Connection, query: string): ReadonlyArray<string> => [
  ...connectionArgs(connection),
  "--no-password",
  "--no-psqlrc",
  "--tuples-only",
  "--no-align",
  "--quiet",
  `--command=${query}`
]

/**
 * A SQL identifier, quoted: any name is safe inside double quotes once its own
 * double quotes are doubled.
 *
 * @example
 * ```ts
 * quoteIdentifier("shop") // "\"shop\""
 * quoteIdentifier('a"b') // "\"a\"\"b\""
 * ```
 */
export const quoteIdentifier = (name: string): string => `"${name.replaceAll('"', '""')}"`
