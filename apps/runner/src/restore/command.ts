import { parseArgs } from "node:util"
import { RunnerContract, StorageLocation, Tls } from "@db-backup-operator/backup-api/contract"
import { Effect, FileSystem, type Path, Redacted, Schema } from "effect"
import type { ChildProcessSpawner } from "effect/process"
import { identitiesFromKeyFile } from "../encrypt.ts"
import { InvalidConfiguration, Stopped } from "../errors.ts"
import { ExitCode, reportFailure } from "../exitCode.ts"
import { oneLine } from "../oneLine.ts"
import { storeLayer } from "../store.ts"
import { writeTerminationMessage } from "../terminationMessage.ts"
import { type RestoreOptions, type RestoreRequest, runRestore, type SchemaExistsPolicy } from "./restore.ts"

/** `db-backup-runner restore --help`. */
export const restoreUsage = `Usage: db-backup-runner restore <backup URL> [options]

Restores one backup into a PostgreSQL database, all or nothing: in one
transaction, committed only once every byte matched the backup's manifest
(size and sha256) and every statement succeeded. A custom-format backup
(.dump...) is turned into SQL by the pg_restore beside psql on the way.

<backup URL>  the backup's manifest or dump, as its status and manifest name it:
              gs://BUCKET/backups/NS/NAME/backup-YYYYMMDD-HHMMSS.json
              s3://BUCKET/...   azblob://ACCOUNT/CONTAINER/...   file:///DIR/...

Options:
  --username=NAME          role to restore as (default: PGUSER)
  --host=HOST              server (default: the backup's)
  --port=PORT              port (default: the backup's)
  --dbname=NAME            database (default: the backup's)
  --schema-exists=POLICY   fail (default): restore nothing if the schema exists
                           and is not empty;
                           replace: drop it and restore it, in the same transaction
                           (refused while views or foreign keys elsewhere use it)
  --no-owner               skip ownership (ALTER ... OWNER TO): everything belongs
                           to --username; for a server without the backup's roles
  --no-privileges          skip GRANT, REVOKE and default privileges
  --identity-file=FILE     age identity (age-keygen's key file) of an encrypted backup
                           (default: the key in BACKUP_AGE_IDENTITY, if set)
  --sslmode=MODE           disable, allow, prefer, require, verify-ca, verify-full
                           (default: PGSSLMODE, else prefer)
  --sslrootcert=FILE       CA the server's certificate must chain to (default: the
                           PEM in DB_SSL_ROOT_CERT, if set)
  --help                   this text

The password is read from PGPASSWORD, never from an argument. The store is
reached as a backup Job reaches it: GCS_ENDPOINT, S3_REGION, S3_ENDPOINT,
S3_FORCE_PATH_STYLE, AZURE_BLOB_ENDPOINT and AZURE_STORAGE_KEY if set, else
each cloud's default credentials.

Exit codes: 0 restored, 1 failed (nothing was committed), 2 invalid arguments.
Logs are JSON lines on stdout; the last says what was restored.
`

/** `db-backup-runner verify --help`. */
export const verifyUsage = `Usage: db-backup-runner verify <backup URL> [options]

Proves that a backup restores: restores it, as restore does (every byte checked
against the manifest, every table's rows counted), into a database of its own
that it creates on the server for this and drops afterwards, whatever the
outcome. The server is left as it was. The role needs CREATEDB.

<backup URL>  as for restore.

Options:
  --username=NAME          role to verify as (default: PGUSER); needs CREATEDB
  --host=HOST              server (default: the backup's)
  --port=PORT              port (default: the backup's)
  --dbname=NAME            database to connect to to create the scratch one
                           (default: the backup's)
  --identity-file=FILE     as for restore (default: BACKUP_AGE_IDENTITY)
  --sslmode=MODE           as for restore
  --sslrootcert=FILE       as for restore (default: DB_SSL_ROOT_CERT)
  --help                   this text

Ownership and grants are left out (everything belongs to the verifying role).
Exit codes: 0 verified, 1 failed, 2 invalid arguments.
`

/** What a command line runs: a restore, or a verification (a restore into a scratch database). */
export type RestoreMode = "restore" | "verify"

const invalid = (message: string) => new InvalidConfiguration({ message })

const SslModeOption = Schema.decodeUnknownOption(Tls.SslMode)

/**
 * The restore a command line asks for: the backup's URL, then options (see
 * {@link restoreUsage}); the password from `PGPASSWORD`.
 *
 * @example
 * ```ts
 * const { request, store } = yield* parseRestoreArgs(
 *   ["gs://dumps/backups/team/api/backup-20250304-050607.json", "--username=app", "--no-owner"],
 *   { PGPASSWORD: "secret" }
 * )
 * request.noOwner // true
 * ```
 */
export const parseRestoreArgs = (
  args: ReadonlyArray<string>,
  env: Readonly<Record<string, string | undefined>>,
  mode: RestoreMode = "restore"
): Effect.Effect<
  { readonly request: RestoreRequest; readonly store: StorageLocation.Store },
  InvalidConfiguration,
  FileSystem.FileSystem
> =>
  Effect.gen(function* () {
    const parsed = yield* Effect.try({
      try: () =>
        parseArgs({
          args: [...args],
          allowPositionals: true,
          strict: true,
          options: {
            username: { type: "string" },
            host: { type: "string" },
            port: { type: "string" },
            dbname: { type: "string" },
            "schema-exists": { type: "string" },
            "no-owner": { type: "boolean" },
            "no-privileges": { type: "boolean" },
            "identity-file": { type: "string" },
            sslmode: { type: "string" },
            sslrootcert: { type: "string" }
          }
        }),
      catch: (error) => invalid(oneLine(`${error instanceof Error ? error.message : String(error)} (see --help)`))
    })
    const { values, positionals } = parsed
    if (mode === "verify") {
      const restoreOnly = (["schema-exists", "no-owner", "no-privileges"] as const).find(
        (option) => values[option] !== undefined
      )
      if (restoreOnly !== undefined) {
        return yield* invalid(
          `--${restoreOnly} is for restore: verify restores into a database of its own (see --help)`
        )
      }
    }
    if (positionals.length !== 1) {
      return yield* invalid(
        positionals.length === 0
          ? "the backup's URL is missing (see --help)"
          : `one backup URL expected, got ${positionals.length}: ${positionals.join(" ")}`
      )
    }
    const url = positionals[0] ?? ""
    const backup = StorageLocation.backupOfUrl(url)
    if (backup._tag === "None") {
      return yield* invalid(
        `${url} is not a backup's URL: expected gs://BUCKET/backups/NAMESPACE/NAME/backup-YYYYMMDD-HHMMSS.json (or its .sql… or .dump… dump; s3://, azblob://ACCOUNT/CONTAINER/, file:///DIR/ alike)`
      )
    }
    const user = values.username ?? env.PGUSER
    if (user === undefined || user === "") return yield* invalid("--username is required (or PGUSER)")
    let port: number | undefined
    if (values.port !== undefined) {
      port = Number(values.port)
      if (!Number.isInteger(port) || port < 1 || port > 65535) {
        return yield* invalid(`--port: ${values.port} is not a port (1-65535)`)
      }
    }
    const policy = values["schema-exists"] ?? "fail"
    if (policy !== "fail" && policy !== "replace") {
      return yield* invalid(`--schema-exists: ${policy} is neither fail nor replace`)
    }
    const sslModeText = values.sslmode ?? env.PGSSLMODE ?? Tls.defaultSslMode
    const sslMode = SslModeOption(sslModeText)
    if (sslMode._tag === "None") {
      return yield* invalid(
        `--sslmode: ${sslModeText} is not one of disable, allow, prefer, require, verify-ca, verify-full`
      )
    }
    const fs = yield* FileSystem.FileSystem
    const identityFile = values["identity-file"]
    const identityEnv = env[RunnerContract.AGE_IDENTITY_ENV]
    let identities: ReadonlyArray<string> | undefined
    if (identityFile !== undefined) {
      const text = yield* fs
        .readFileString(identityFile)
        .pipe(Effect.mapError((e) => invalid(oneLine(`--identity-file: cannot read ${identityFile}: ${e.message}`))))
      identities = identitiesFromKeyFile(text)
      if (identities.length === 0) return yield* invalid(`--identity-file: ${identityFile} holds no identity`)
    } else if (identityEnv !== undefined && identityEnv.trim() !== "") {
      // A Restore's Job: the identity comes from a Secret key; never quoted in an error.
      identities = identitiesFromKeyFile(identityEnv)
      if (identities.length === 0) {
        return yield* invalid(
          `${RunnerContract.AGE_IDENTITY_ENV} (from spec.decryption.ageIdentitySecretRef) holds no age identity (AGE-SECRET-KEY-1...)`
        )
      }
    }
    // A Restore's Job passes the CA as PEM text (from a ConfigMap or Secret key), as a backup Job does.
    const sslRootCertPem = RunnerContract.sslRootCertFromEnv(env)
    const sslRootCert =
      values.sslrootcert !== undefined
        ? { file: values.sslrootcert }
        : sslRootCertPem === undefined
          ? undefined
          : { pem: sslRootCertPem }
    const request: RestoreRequest = {
      bucket: backup.value.store.bucket,
      object: backup.value.object,
      target: {
        user,
        ...(values.host === undefined ? {} : { host: values.host }),
        ...(port === undefined ? {} : { port }),
        ...(values.dbname === undefined ? {} : { database: values.dbname })
      },
      password: Redacted.make(env.PGPASSWORD ?? "", { label: "PGPASSWORD" }),
      sslMode: sslMode.value,
      sslRootCert,
      schemaExists: policy satisfies SchemaExistsPolicy,
      // A scratch database belongs to the verifying role, which may not be a member of the backup's roles.
      noOwner: mode === "verify" || values["no-owner"] === true,
      noPrivileges: mode === "verify" || values["no-privileges"] === true,
      identities,
      scratch: mode === "verify"
    }
    return { request, store: backup.value.store }
  })

/**
 * `db-backup-runner restore …`, from the arguments to an exit code (0
 * restored, 1 failed, 2 invalid arguments), as {@link runFromEnv} is for a
 * backup. Writes the outcome as its last log line and, where
 * `TERMINATION_MESSAGE_PATH` is set (a Job), as the termination message. A
 * stop request (SIGTERM) ends the restore with nothing committed.
 *
 * @example
 * ```ts
 * const code = yield* restoreFromArgs(process.argv.slice(3), process.env)
 * ```
 */
export const restoreFromArgs = (
  args: ReadonlyArray<string>,
  env: Readonly<Record<string, string | undefined>>,
  options: RestoreOptions & {
    readonly stopRequested?: Effect.Effect<void> | undefined
    /** `verify`: into a scratch database, dropped afterwards (`db-backup-runner verify`). */
    readonly mode?: RestoreMode | undefined
  } = {}
): Effect.Effect<number, never, ChildProcessSpawner.ChildProcessSpawner | FileSystem.FileSystem | Path.Path> => {
  const mode = options.mode ?? "restore"
  const terminationPath = env[RunnerContract.EnvVar.terminationMessagePath]
  const report = (message: string) =>
    terminationPath === undefined || terminationPath === ""
      ? Effect.void
      : writeTerminationMessage(terminationPath, message)
  if (args.includes("--help") || args.includes("-h")) {
    return Effect.sync(() => {
      process.stdout.write(mode === "verify" ? verifyUsage : restoreUsage)
      return ExitCode.success
    })
  }
  return Effect.gen(function* () {
    const { request, store } = yield* parseRestoreArgs(args, env, mode)
    const settings = yield* RunnerContract.storeSettingsFromEnv(env).pipe(Effect.mapError((e) => invalid(e.message)))
    const azureAccount = store.account === undefined ? {} : { azureAccount: store.account }
    return yield* Effect.raceFirst(
      runRestore(request, options),
      Effect.andThen(
        options.stopRequested ?? Effect.never,
        Effect.fail(
          new Stopped({
            message:
              mode === "verify"
                ? "stopped (SIGTERM) before the verification finished"
                : "stopped (SIGTERM) before the restore committed: nothing was restored"
          })
        )
      )
    ).pipe(Effect.provide(storeLayer({ ...settings, ...azureAccount, store: store.kind }, env)))
  }).pipe(
    Effect.matchCauseEffect({
      onSuccess: (result) =>
        report(
          RunnerContract.encodeRestoreSuccessMessage({
            result: mode === "verify" ? "Verified" : "Restored",
            location: result.location,
            database: result.target.database,
            schema: result.manifest.schema,
            tables: result.tables,
            rowsVerified: result.rowsVerified,
            storedBytes: result.storedBytes,
            sqlBytes: result.sqlBytes,
            seconds: result.seconds
          })
        ).pipe(Effect.as(ExitCode.success)),
      onFailure: (cause) => reportFailure(mode === "verify" ? "verification" : "restore", cause, report)
    })
  )
}
