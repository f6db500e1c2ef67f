import { createHash, randomBytes } from "node:crypto"
import { createGunzip, createZstdDecompress } from "node:zlib"
import {
  type BackupManifest,
  decodeManifest,
  type ManifestTable,
  StorageLocation,
  type Tls
} from "@db-backup-operator/backup-api/contract"
import { ObjectStore } from "@db-backup-operator/storage"
import { NodeStream } from "@effect/platform-node"
import { type Duration, Effect, type FileSystem, type Path, type Redacted, Schedule, Stream } from "effect"
import type { ChildProcessSpawner } from "effect/process"
import { type DecryptionFailed, decryptStream } from "../encrypt.ts"
import {
  BackupNotFound,
  InvalidConfiguration,
  RestoreFailed,
  SchemaExists,
  type ServerNotTrusted,
  type ServerUnreachable,
  type TemporaryFileError,
  ToolUnavailable,
  VerificationFailed
} from "../errors.ts"
import { oneLine, reasonFromStderr } from "../oneLine.ts"
import { type Connection, psqlQueryArgs, psqlTransactionArgs, quoteIdentifier } from "../postgres/commands.ts"
import type { ConnectionTls } from "../postgres/connectionFailure.ts"
import { libpqEnv, oldLibpqWarning, rootCertSource, toolsMajorOf } from "../postgres/libpq.ts"
import { writeRootCert } from "../postgres/rootCert.ts"
import { discoverPgDumps, pgRestoreBeside, psqlBeside, serverVersionNum } from "../postgres/tools.ts"
import { majorOf } from "../postgres/version.ts"
import { type ChildEnv, runCaptured } from "../process.ts"
import { archiveToSql } from "./pgRestoreProcess.ts"
import { type PsqlExit, spawnPsqlTransaction } from "./psqlProcess.ts"
import { dropsAnything, filterStatements, type StatementRules, unknownSettingsOf } from "./statements.ts"

/** What to do when the target database already has the backup's schema. */
export type SchemaExistsPolicy = "fail" | "replace"

/** A restore: which backup, into which database, how. */
export interface RestoreRequest {
  /** The backup: its manifest's or its dump's object. */
  readonly bucket: string
  readonly object: string
  /**
   * Where to restore; each field left out is the backup's own (its manifest's
   * host, port and database). The user has no default: the manifest does not
   * record who dumped.
   */
  readonly target: Partial<Omit<Connection, "user">> & { readonly user: string }
  readonly password: Redacted.Redacted<string>
  readonly sslMode: Tls.SslMode
  /** The CA the server's certificate must chain to: a file, or PEM text written to a private one. */
  readonly sslRootCert?: { readonly file: string } | { readonly pem: string } | undefined
  readonly schemaExists: SchemaExistsPolicy
  /** Skip the dump's `ALTER … OWNER TO`: everything belongs to `target.user`. */
  readonly noOwner: boolean
  /** Skip the dump's `GRANT`, `REVOKE` and default privileges. */
  readonly noPrivileges: boolean
  /** age identities (`AGE-SECRET-KEY-1…`) for an encrypted backup. */
  readonly identities?: ReadonlyArray<string> | undefined
  /**
   * A verification: restore into a database of its own, created on the target
   * server for this restore (connecting to `target.database` to create it) and
   * dropped after it, whatever the outcome. It proves the backup restores and
   * holds the rows its manifest counted, and leaves the server as it was. The
   * role needs `CREATEDB`.
   */
  readonly scratch?: boolean | undefined
}

/** Knobs for tests and benchmarks; production uses the defaults. */
export interface RestoreOptions {
  /** Where to look for `<major>/bin/psql` (default `/usr/lib/postgresql`, then PATH). */
  readonly toolRoots?: ReadonlyArray<string>
  /** How often progress is logged (default 5 seconds). */
  readonly progressInterval?: Duration.Input
}

/** A restore that committed. */
export interface RestoreResult {
  readonly location: string
  readonly manifest: BackupManifest
  readonly target: Connection
  /** Bytes read from the store (the stored object's size). */
  readonly storedBytes: number
  /** Bytes of SQL psql ran. */
  readonly sqlBytes: number
  /** Tables in the schema after the restore. */
  readonly tables: number
  /** Whether every table was checked to have the rows the manifest records (manifests before row counts have none). */
  readonly rowsVerified: boolean
  readonly seconds: number
}

export type RestoreError =
  | BackupNotFound
  | InvalidConfiguration
  | SchemaExists
  | RestoreFailed
  | VerificationFailed
  | DecryptionFailed
  | ServerUnreachable
  | ServerNotTrusted
  | ToolUnavailable
  | TemporaryFileError

/**
 * A database made for one verification and dropped with the restore's scope
 * (`WITH (FORCE)`: a psql killed midway may still hold a connection). Its name
 * is new each time, so a verification never meets another's, nor a user's.
 */
const scratchDatabase = <R>(
  query: (sql: string) => Effect.Effect<ReadonlyArray<string>, RestoreFailed | ToolUnavailable, R>,
  schema: string
) => {
  const name = `db_backup_verify_${Date.now().toString(36)}_${randomBytes(4).toString("hex")}`
  return Effect.acquireRelease(
    query(`CREATE DATABASE ${quoteIdentifier(name)}`).pipe(
      Effect.mapError(
        (e) =>
          new RestoreFailed({
            message: oneLine(
              `cannot create the scratch database to verify the backup of schema "${schema}" in (the role needs CREATEDB): ${e.message}`
            )
          })
      ),
      Effect.as(name),
      Effect.tap(() => Effect.logInfo("scratch database created").pipe(Effect.annotateLogs({ database: name })))
    ),
    () =>
      query(`DROP DATABASE IF EXISTS ${quoteIdentifier(name)} WITH (FORCE)`).pipe(
        Effect.andThen(Effect.logInfo("scratch database dropped").pipe(Effect.annotateLogs({ database: name }))),
        Effect.catch((e) =>
          Effect.logWarning("could not drop the scratch database: drop it by hand").pipe(
            Effect.annotateLogs({ database: name, reason: e.message })
          )
        )
      )
  )
}

const readManifest = (store: ObjectStore["Service"], bucket: string, object: string) =>
  Effect.gen(function* () {
    const location = store.url(bucket, object)
    const bytes = yield* store.read(bucket, object).pipe(
      Effect.catchTags({
        ObjectNotFound: () =>
          Effect.fail(
            new BackupNotFound({
              message: `${location} does not exist: no complete backup there (a backup is complete once its manifest is written)`
            })
          ),
        StorageError: (e) =>
          Effect.fail(new BackupNotFound({ message: oneLine(`cannot read ${location}: ${e.message}`) }))
      })
    )
    return yield* decodeManifest(Buffer.from(bytes).toString("utf8")).pipe(
      Effect.mapError(
        (e) => new BackupNotFound({ message: oneLine(`${location} is not a backup manifest: ${e.message}`) })
      )
    )
  })

/** Whether a manifest describes the dump object named, or it names its own manifest. */
const manifestObjectFor = (object: string): string =>
  object.endsWith(".json") ? object : StorageLocation.manifestObjectOf(object)

const decompressor = (compression: BackupManifest["compression"]) =>
  compression === "gzip" ? createGunzip() : createZstdDecompress()

/** A psql error line as a reason: without psql's `psql:<stdin>:LINE:` prefix. */
const psqlReason = (stderr: string): string =>
  (reasonFromStderr(stderr) ?? "no error output").replace(/^psql:<stdin>:\d+:\s*/u, "")

const explainStatementFailure = (reason: string, user: string): string =>
  /role ".*" does not exist/u.test(reason)
    ? `${reason}: the dump gives its objects to roles this server does not have; restore with --no-owner and --no-privileges (in a Restore, noOwner and noPrivileges: true) to give everything to ${user}`
    : reason

/**
 * Every schema, with how many tables (and other relations), functions and
 * types of its own it holds, as `<schema>|<count>` lines (the name in hex).
 */
const schemasQuery = `SELECT pg_catalog.encode(pg_catalog.convert_to(n.nspname, 'UTF8'), 'hex') || '|' ||
       ((SELECT count(*) FROM pg_catalog.pg_class c WHERE c.relnamespace = n.oid) +
        (SELECT count(*) FROM pg_catalog.pg_proc p WHERE p.pronamespace = n.oid) +
        (SELECT count(*) FROM pg_catalog.pg_type t WHERE t.typnamespace = n.oid AND t.typrelid = 0 AND t.typelem = 0))
  FROM pg_catalog.pg_namespace n`

/**
 * Views and foreign keys in other schemas that depend on a schema's tables, as
 * `<schema>|<what>` lines, both hex (names may hold any character). A fixed
 * text: the schema is picked out of the answer, not put into the query.
 */
const dependentsQuery = `SELECT pg_catalog.encode(pg_catalog.convert_to(r.nspname, 'UTF8'), 'hex') || '|' ||
       pg_catalog.encode(pg_catalog.convert_to(r.what, 'UTF8'), 'hex')
  FROM (SELECT rn.nspname, pg_catalog.format('view %I.%I', vn.nspname, vc.relname) AS what
          FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_rewrite w ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND w.oid = d.objid
          JOIN pg_catalog.pg_class vc ON vc.oid = w.ev_class
          JOIN pg_catalog.pg_namespace vn ON vn.oid = vc.relnamespace
          JOIN pg_catalog.pg_class rc ON d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND rc.oid = d.refobjid
          JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace
         WHERE vn.oid <> rn.oid
        UNION
        SELECT rn.nspname, pg_catalog.format('foreign key %I of %I.%I', c.conname, cn.nspname, cc.relname)
          FROM pg_catalog.pg_constraint c
          JOIN pg_catalog.pg_class cc ON cc.oid = c.conrelid
          JOIN pg_catalog.pg_namespace cn ON cn.oid = cc.relnamespace
          JOIN pg_catalog.pg_class rc ON rc.oid = c.confrelid
          JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace
         WHERE c.contype = 'f' AND cn.oid <> rn.oid) AS r`

/** What starts each line of row counts psql prints for the restore. */
const rowsMarker = "db-backup-runner-rows|"

/**
 * psql input that prints, for each table, `<marker><index>|<rows>`. Names are
 * quoted identifiers (psql substitutes no variables inside them).
 */
const rowCountQueries = (schema: string, tables: ReadonlyArray<ManifestTable>): string =>
  [
    "\\pset tuples_only on",
    "\\pset format unaligned",
    "\\pset fieldsep '|'",
    ...tables.map(
      (table, index) =>
        `SELECT '${rowsMarker}${index}', pg_catalog.count(*) FROM ${quoteIdentifier(schema)}.${quoteIdentifier(table.name)};`
    ),
    ""
  ].join("\n")

/** The rows psql printed for table `index`, if it did. */
const rowsOf = (lines: ReadonlyArray<string>, index: number): number | undefined => {
  const prefix = `${rowsMarker}${index}|`
  const line = lines.find((candidate) => candidate.startsWith(prefix))
  return line === undefined ? undefined : Number(line.slice(prefix.length))
}

/** The sha256 and size of a stored object, or undefined when it cannot be read to the end. */
const storedChecksum = (store: ObjectStore["Service"], bucket: string, object: string) =>
  Effect.suspend(() => {
    const hash = createHash("sha256")
    let sizeBytes = 0
    return store.readStream(bucket, object).pipe(
      Stream.runForEach((chunk) =>
        Effect.sync(() => {
          sizeBytes += chunk.byteLength
          hash.update(chunk)
        })
      ),
      Effect.map(() => ({ sha256: hash.digest("hex"), sizeBytes })),
      Effect.orElseSucceed(() => undefined)
    )
  })

/** psql ended without committing: why, from its stderr. */
const psqlFailed = (exit: PsqlExit, user: string) =>
  new RestoreFailed({
    message: oneLine(
      `psql failed (${exit.code === undefined ? `killed by ${exit.signal}` : `exit code ${exit.code}`}): ${explainStatementFailure(psqlReason(exit.stderr), user)}; nothing was restored`
    )
  })

const mb = (bytes: number) => Math.round((bytes / 1_000_000) * 10) / 10

/**
 * Restores one backup into a database, all or nothing. Reads its manifest,
 * then streams the dump object from the store through age decryption (with
 * `identities`), decompression, for a custom-format archive `pg_restore`
 * (which turns it into the SQL script it holds; the one beside psql, of its
 * major) and the statement filter (`noOwner`, `noPrivileges`) into one
 * `psql --single-transaction`, hashing the stored bytes as they go by. psql
 * commits only after the last byte matched the manifest's size and sha256
 * and every statement succeeded; otherwise it is killed with its transaction
 * open, and the target is exactly as it was: a changed byte, a wrong key, a
 * missing role, a damaged archive or a schema that exists (with
 * `schemaExists: "fail"`) restores nothing. With `replace`, the schema is
 * dropped and made again inside that same transaction.
 *
 * @example
 * ```ts
 * const result = yield* runRestore({
 *   bucket: "dumps",
 *   object: "backups/team/api/backup-20250304-050607.json",
 *   target: { user: "app", database: "api_copy" },
 *   password: Redacted.make("secret"),
 *   sslMode: "verify-full",
 *   schemaExists: "fail",
 *   noOwner: true,
 *   noPrivileges: true
 * }).pipe(Effect.provide(GcsObjectStore.layer()))
 * result.tables // 12
 * ```
 */
export const runRestore = (
  request: RestoreRequest,
  options: RestoreOptions = {}
): Effect.Effect<
  RestoreResult,
  RestoreError,
  ObjectStore | ChildProcessSpawner.ChildProcessSpawner | FileSystem.FileSystem | Path.Path
> =>
  Effect.gen(function* () {
    const started = performance.now()
    const store = yield* ObjectStore
    const manifestObject = manifestObjectFor(request.object)
    const manifest = yield* readManifest(store, request.bucket, manifestObject)
    if (!request.object.endsWith(".json") && manifest.object !== request.object) {
      return yield* new BackupNotFound({
        message: `${store.url(request.bucket, manifestObject)} describes ${manifest.object}, not ${request.object}`
      })
    }
    // The manifest's bucket is where the backup was written; the object is read where it is now
    // (a bucket copied or renamed for disaster recovery still restores).
    const location = store.url(request.bucket, manifest.object)
    const schema = manifest.schema
    // The server and the database connected to first (for a verification, the one the scratch database is made from).
    const server: Connection = {
      host: request.target.host ?? manifest.host,
      port: request.target.port ?? manifest.port,
      user: request.target.user,
      database: request.target.database ?? manifest.database
    }
    const identities = request.identities ?? []
    if (manifest.encryption !== undefined && identities.length === 0) {
      return yield* new InvalidConfiguration({
        message: `${location} is encrypted (age, to ${manifest.encryption.recipients.join(", ")}): give the identity of one of those recipients (--identity-file; in a Restore, spec.decryption.ageIdentitySecretRef)`
      })
    }

    const rootCertFile =
      request.sslRootCert === undefined
        ? undefined
        : "file" in request.sslRootCert
          ? request.sslRootCert.file
          : yield* writeRootCert(request.sslRootCert.pem)
    const tls: ConnectionTls = {
      sslMode: request.sslMode,
      rootCert: rootCertSource({ sslMode: request.sslMode, rootCertFile }),
      allowCleartextPassword: false
    }
    const candidates = yield* discoverPgDumps(options.toolRoots)
    const newest = [...candidates].sort((a, b) => b.versionNum - a.versionNum)[0]
    if (newest === undefined) {
      return yield* new ToolUnavailable({
        message: "psql is not installed (no PostgreSQL client tools on PATH or under /usr/lib/postgresql)"
      })
    }
    const psql = psqlBeside(newest.pgDump)
    const toolsMajor = toolsMajorOf(newest.versionNum)
    const env: ChildEnv = yield* Effect.fromResult(
      libpqEnv({
        password: request.password,
        sslMode: request.sslMode,
        rootCertFile,
        allowCleartextPassword: false,
        toolsMajor
      })
    )
    const warning = oldLibpqWarning({
      sslMode: request.sslMode,
      allowCleartextPassword: false,
      toolsMajor,
      toolVersion: newest.versionText
    })
    if (warning !== undefined) yield* Effect.logWarning(warning)

    const format = manifest.format ?? "plain"
    yield* Effect.logInfo("restore starting").pipe(
      Effect.annotateLogs({
        location,
        format,
        sizeBytes: manifest.sizeBytes,
        backedUpAt: manifest.finishedAt,
        from: `${manifest.host}:${manifest.port}/${manifest.database}`,
        schema,
        host: server.host,
        port: server.port,
        user: server.user,
        database: request.scratch === true ? `a scratch database (from ${server.database})` : server.database,
        schemaExists: request.schemaExists,
        noOwner: request.noOwner,
        noPrivileges: request.noPrivileges,
        encrypted: manifest.encryption !== undefined,
        sslMode: request.sslMode
      })
    )
    // Connects once first: an unreachable or untrusted server fails here, with its reason explained.
    const serverVersion = yield* serverVersionNum(psql, server, env, tls)

    const queryOn = (connection: Connection) => (sql: string) =>
      runCaptured(psql, psqlQueryArgs(connection, sql), { env, timeout: "2 minutes" }).pipe(
        Effect.catchTag("PlatformError", (e) =>
          Effect.fail(new ToolUnavailable({ message: oneLine(`cannot run ${psql}: ${e.message}`) }))
        ),
        Effect.catchTag("TimeoutError", () =>
          Effect.fail(new RestoreFailed({ message: `psql did not answer within 2 minutes (${sql})` }))
        ),
        Effect.flatMap((out) =>
          out.exitCode === 0
            ? Effect.succeed(out.stdout.split("\n").filter((line) => line !== ""))
            : Effect.fail(new RestoreFailed({ message: oneLine(`psql failed: ${psqlReason(out.stderr)}`) }))
        )
      )
    const target: Connection =
      request.scratch === true
        ? { ...server, database: yield* scratchDatabase(queryOn(server), manifest.schema) }
        : server
    const query = queryOn(target)
    // Every name, compared here: nothing of the backup goes into the query text.
    // An empty schema (`public` of a new database, one a migration tool made) is filled, not refused.
    const objects = (yield* query(schemasQuery)).flatMap((line) => {
      const [name, count] = line.split("|")
      return name !== undefined && Buffer.from(name, "hex").toString("utf8") === schema ? [Number(count)] : []
    })[0]
    if (request.schemaExists === "fail" && objects !== undefined && objects > 0) {
      return yield* new SchemaExists({
        message: `schema "${schema}" already exists in database "${target.database}" on ${target.host}:${target.port} (${objects} tables, functions and types); nothing was restored: drop it, or restore with --schema-exists=replace (in a Restore, schemaExists: Replace) to replace it`
      })
    }
    if (request.schemaExists === "replace") {
      // DROP SCHEMA … CASCADE would also drop what other schemas built on it, which the dump cannot bring back.
      const dependents = (yield* query(dependentsQuery)).flatMap((line) => {
        const [of, what] = line.split("|").map((hex) => Buffer.from(hex, "hex").toString("utf8"))
        return of === schema && what !== undefined ? [what] : []
      })
      if (dependents.length > 0) {
        return yield* new SchemaExists({
          message: `schema "${schema}" is used from outside it (${dependents.slice(0, 10).join("; ")}${dependents.length > 10 ? `; ${dependents.length - 10} more` : ""}), which replacing it would drop; nothing was restored: drop or change those first`
        })
      }
    }

    const rules: StatementRules = {
      noOwner: request.noOwner,
      noPrivileges: request.noPrivileges,
      // The schema is there (made again, or empty): the dump's CREATE SCHEMA would fail.
      ...(request.schemaExists === "replace" || objects === 0 ? { createdSchema: schema } : {}),
      // A dump by a newer pg_dump (the image's) sets what an older server does not have.
      unknownSettings: unknownSettingsOf(serverVersion)
    }
    // With replace: the schema goes, and comes back empty, in the restore's own transaction.
    const prologue =
      request.schemaExists === "replace"
        ? `DROP SCHEMA IF EXISTS ${quoteIdentifier(schema)} CASCADE;\nCREATE SCHEMA ${quoteIdentifier(schema)};\n`
        : ""

    const hash = createHash("sha256")
    let storedBytes = 0
    let sqlBytes = 0
    let rowsVerified = false
    const stored = store.readStream(request.bucket, manifest.object).pipe(
      Stream.mapError((e) =>
        e._tag === "ObjectNotFound"
          ? new BackupNotFound({ message: `${location} does not exist, though its manifest does` })
          : new RestoreFailed({ message: oneLine(`reading ${location} failed: ${e.message}`) })
      ),
      Stream.mapEffect((chunk) =>
        Effect.suspend(() => {
          storedBytes += chunk.byteLength
          if (storedBytes > manifest.sizeBytes) {
            return Effect.fail(
              new VerificationFailed({
                message: `${location} is longer than the ${manifest.sizeBytes} bytes its manifest records: it was changed or replaced; nothing was restored`
              })
            )
          }
          hash.update(chunk)
          return Effect.succeed(chunk)
        })
      )
    )
    const decrypted = manifest.encryption === undefined ? stored : stored.pipe(decryptStream(identities))
    const compression = manifest.compression
    const decompressed =
      compression === "none"
        ? decrypted
        : NodeStream.pipeThroughDuplex(decrypted, {
            evaluate: () => decompressor(compression),
            onError: (error) =>
              new RestoreFailed({
                message: oneLine(
                  `${location} does not decompress (${compression}): ${error instanceof Error ? error.message : String(error)}; the object is damaged or changed; nothing was restored`
                )
              })
          })
    // A custom-format archive becomes the SQL script it holds here, so that the same filter, transaction,
    // checksum and row checks apply, and a pg_restore that fails (a damaged archive) commits nothing either.
    const script =
      format === "custom"
        ? decompressed.pipe(
            archiveToSql({
              command: pgRestoreBeside(newest.pgDump),
              describeReason: (reason) =>
                /unsupported version/u.test(reason)
                  ? `${reason}: ${location} was made by ${manifest.pgDumpVersion}, and this pg_restore is of PostgreSQL ${majorOf(newest.versionNum)}; restore it with PostgreSQL client tools at least as new; nothing was restored`
                  : `${reason}; nothing was restored`
            })
          )
        : decompressed
    const sql = Stream.concat(
      prologue === "" ? Stream.empty : Stream.make(new TextEncoder().encode(prologue)),
      dropsAnything(rules) ? script.pipe(filterStatements(rules)) : script
    )

    const progress = Effect.suspend(() => {
      const seconds = Math.max((performance.now() - started) / 1000, 0.001)
      return Effect.logInfo("restore in progress").pipe(
        Effect.annotateLogs({
          storedBytes,
          ofBytes: manifest.sizeBytes,
          percent: Math.floor((storedBytes / Math.max(manifest.sizeBytes, 1)) * 100),
          sqlBytes,
          elapsedSeconds: Math.round(seconds * 10) / 10,
          sqlMBPerSecond: Math.round((mb(sqlBytes) / seconds) * 10) / 10
        })
      )
    })
    const interval = options.progressInterval ?? "5 seconds"

    yield* Effect.scoped(
      Effect.gen(function* () {
        const transaction = yield* spawnPsqlTransaction({
          command: psql,
          args: psqlTransactionArgs(target),
          env,
          marker: rowsMarker
        })
        yield* Effect.forkScoped(
          progress.pipe(Effect.delay(interval), Effect.repeat(Schedule.spaced(interval)), Effect.asVoid)
        )
        const statementFailed = Effect.flatMap(transaction.exited, (exit) => Effect.fail(psqlFailed(exit, target.user)))
        yield* Stream.runForEach(sql, (chunk) => {
          sqlBytes += chunk.byteLength
          return transaction.write(chunk)
        }).pipe(Effect.catchTag("PsqlExited", () => statementFailed))
        // Every byte is in; commit only if they are the bytes the manifest describes.
        const sha256 = hash.digest("hex")
        if (storedBytes !== manifest.sizeBytes || sha256 !== manifest.sha256) {
          return yield* new VerificationFailed({
            message:
              storedBytes !== manifest.sizeBytes
                ? `${location} has ${storedBytes} bytes but its manifest records ${manifest.sizeBytes}: it was changed or cut short; nothing was restored`
                : `${location} does not match its manifest's checksum (sha256 ${sha256}, manifest ${manifest.sha256}): it was changed; nothing was restored`
          })
        }
        // Before the commit, in the restore's own transaction: every table has the rows the backup counted.
        const expected = manifest.tables
        if (expected !== undefined) {
          yield* transaction
            .write(new TextEncoder().encode(rowCountQueries(schema, expected)))
            .pipe(Effect.catchTag("PsqlExited", () => statementFailed))
          const lines = yield* transaction
            .marked(expected.length)
            .pipe(Effect.catchTag("PsqlExited", () => statementFailed))
          const differing = expected.flatMap((table, index) => {
            const rows = rowsOf(lines, index)
            return rows === table.rows
              ? []
              : [`${table.name}: ${rows ?? "?"} rows restored, ${table.rows} in the backup`]
          })
          if (differing.length > 0) {
            return yield* new VerificationFailed({
              message: oneLine(
                `the restored tables do not have the rows the backup's manifest records (${differing.join("; ")}); nothing was restored`
              )
            })
          }
          rowsVerified = true
        }
        const exit = yield* transaction.commit
        if (exit.code !== 0) return yield* psqlFailed(exit, target.user)
      })
    ).pipe(
      // A failure midway (a statement, decompression, decryption) is often a changed object: then that is
      // the reason to give, so the stored object is read once more, to the end, and checked.
      Effect.catchIf(
        (e) => e._tag === "RestoreFailed" || e._tag === "DecryptionFailed",
        (e) =>
          Effect.flatMap(
            storedChecksum(store, request.bucket, manifest.object),
            (actual): Effect.Effect<never, RestoreFailed | DecryptionFailed | VerificationFailed> =>
              actual === undefined || (actual.sha256 === manifest.sha256 && actual.sizeBytes === manifest.sizeBytes)
                ? Effect.fail(e)
                : Effect.fail(
                    new VerificationFailed({
                      message: oneLine(
                        `${location} does not match its manifest's checksum (sha256 ${actual.sha256} of ${actual.sizeBytes} bytes, manifest ${manifest.sha256} of ${manifest.sizeBytes}): it was changed; nothing was restored (${e.message})`
                      )
                    })
                  )
          )
      )
    )
    const tables =
      manifest.tables?.length ??
      (yield* query("SELECT schemaname FROM pg_catalog.pg_tables")).filter((name) => name === schema).length
    const seconds = Math.round(((performance.now() - started) / 1000) * 10) / 10
    yield* Effect.logInfo("restore complete").pipe(
      Effect.annotateLogs({
        location,
        schema,
        database: target.database,
        host: target.host,
        serverVersionNum: serverVersion,
        tables,
        rowsVerified,
        storedBytes,
        sqlBytes,
        seconds,
        sqlMBPerSecond: Math.round((mb(sqlBytes) / Math.max(seconds, 0.001)) * 10) / 10
      })
    )
    return { location, manifest, target, storedBytes, sqlBytes, tables, rowsVerified, seconds } satisfies RestoreResult
  }).pipe(Effect.scoped)
