import { Effect, Redacted, Schema, SchemaIssue, SchemaTransformation } from "effect"
import { Compression, defaultCompression } from "./Compression.ts"
import { DumpFormat, defaultDumpFormat } from "./DumpFormat.ts"
import { RetentionFromString } from "./Retention.ts"
import { StoreKind } from "./StorageLocation.ts"
import { defaultSslMode, SslMode } from "./Tls.ts"
import {
  DnsLabel,
  DnsSubdomain,
  Host,
  NonNegativeInt,
  nonEmpty,
  PgIdentifier,
  Port,
  Sha256Hex,
  TimeZoneName
} from "./Validation.ts"

/**
 * The contract between the controller, which builds a backup Job, and the
 * runner, which the Job runs: the environment variables the runner reads.
 * Defined once here; the controller writes it with {@link toEnv}, the runner
 * reads it with {@link fromEnv}.
 *
 * The password is not part of it: the controller adds {@link passwordEnvVar}
 * (a `secretKeyRef`), and the runner reads it with {@link passwordFromEnv}. It
 * never appears in args, logs, status or events.
 */

/** Names of the environment variables, by contract field. */
export const EnvVar = {
  host: "DB_HOST",
  port: "DB_PORT",
  user: "DB_USER",
  database: "DB_NAME",
  schema: "DB_SCHEMA",
  sslMode: "DB_SSL_MODE",
  allowCleartextPassword: "DB_ALLOW_CLEARTEXT_PASSWORD",
  bucket: "BACKUP_BUCKET",
  object: "BACKUP_OBJECT",
  manifestObject: "BACKUP_MANIFEST_OBJECT",
  format: "BACKUP_FORMAT",
  compression: "BACKUP_COMPRESSION",
  gzipLevel: "BACKUP_GZIP_LEVEL",
  store: "BACKUP_STORE",
  gcsEndpoint: "GCS_ENDPOINT",
  s3Region: "S3_REGION",
  s3Endpoint: "S3_ENDPOINT",
  s3ForcePathStyle: "S3_FORCE_PATH_STYLE",
  azureAccount: "AZURE_STORAGE_ACCOUNT",
  azureEndpoint: "AZURE_BLOB_ENDPOINT",
  ageRecipients: "BACKUP_AGE_RECIPIENTS",
  terminationMessagePath: "TERMINATION_MESSAGE_PATH",
  resource: "BACKUP_RESOURCE",
  retention: "BACKUP_RETENTION",
  timeZone: "BACKUP_TIME_ZONE"
} as const

/** The variable holding the database password (libpq reads it natively). */
export const PASSWORD_ENV = "PGPASSWORD"

/**
 * The variable holding age recipients from a Secret (`spec.encryption.ageRecipientsSecretRef`),
 * one per line; the runner encrypts to these and to {@link Env}'s `ageRecipients`.
 */
export const AGE_RECIPIENTS_SECRET_ENV = "BACKUP_AGE_RECIPIENTS_SECRET"

/**
 * The variables holding a store's credentials, each from a Secret key
 * (`secretKeyRef`), never in the contract: the AWS SDK reads its two
 * natively; the runner reads the Azure account key. Without them the store
 * clients use the Pod's workload identity.
 */
export const StoreSecretEnv = {
  s3AccessKeyId: "AWS_ACCESS_KEY_ID",
  s3SecretAccessKey: "AWS_SECRET_ACCESS_KEY",
  azureAccountKey: "AZURE_STORAGE_KEY"
} as const

/**
 * The variable holding the PEM of the CA the server's certificate must chain
 * to (`verify-ca`, `verify-full`): from a ConfigMap or Secret key through
 * `valueFrom`, like the password, so the controller never reads it.
 */
export const SSL_ROOT_CERT_ENV = "DB_SSL_ROOT_CERT"

/**
 * Default gzip level: 1, the fastest. A plain SQL dump still shrinks about 3x
 * at level 1, and even at level 1 compression, not pg_dump, usually sets the
 * pace; higher levels cost much more time for a few percent.
 */
export const defaultGzipLevel = 1

/** Default path of the container's termination message (the kubelet's default). */
export const defaultTerminationMessagePath = "/dev/termination-log"

/** `namespace/name` of the BackupDatabaseSchema a run belongs to. */
export const ResourceRef = Schema.Struct({ namespace: DnsLabel, name: DnsSubdomain })
export type ResourceRef = typeof ResourceRef.Type

/** `namespace/name` text <-> {@link ResourceRef}. */
export const ResourceRefFromString = Schema.String.pipe(
  Schema.decodeTo(
    ResourceRef,
    SchemaTransformation.transform({
      decode: (text: string) => {
        const slash = text.indexOf("/")
        return slash < 0
          ? { namespace: "", name: text }
          : { namespace: text.slice(0, slash), name: text.slice(slash + 1) }
      },
      encode: (ref: ResourceRef) => `${ref.namespace}/${ref.name}`
    })
  )
).annotate({ description: "namespace/name of the BackupDatabaseSchema" })

const IntFromString = <S extends Schema.Codec<number, number>>(check: S) =>
  Schema.NumberFromString.pipe(Schema.decodeTo(check))

const GzipLevel = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 9 }))
const BooleanFromString = Schema.Literals(["true", "false"]).pipe(
  Schema.decodeTo(
    Schema.Boolean,
    SchemaTransformation.transform({
      decode: (text: "true" | "false") => text === "true",
      encode: (value: boolean) => (value ? "true" : "false")
    })
  )
)
const HttpUrl = Schema.String.check(Schema.isPattern(/^https?:\/\/[^\s/]+(\/\S*)?$/u))

/** How a store is reached, beyond its kind and bucket: endpoints, region, account. */
const storeFields = {
  gcsEndpoint: Schema.optionalKey(HttpUrl),
  s3Region: Schema.optionalKey(nonEmpty(64)),
  s3Endpoint: Schema.optionalKey(HttpUrl),
  s3ForcePathStyle: BooleanFromString.pipe(Schema.withDecodingDefaultKey(Effect.succeed("false" as const))),
  azureAccount: Schema.optionalKey(nonEmpty(24)),
  azureEndpoint: Schema.optionalKey(HttpUrl)
}

/**
 * The contract as env vars: decoding reads `process.env`-shaped records into a
 * {@link Contract}; encoding gives the variables' text values.
 */
export const Env = Schema.Struct({
  host: Host,
  port: IntFromString(Port),
  user: PgIdentifier,
  database: PgIdentifier,
  schema: PgIdentifier,
  sslMode: SslMode.pipe(Schema.withDecodingDefaultKey(Effect.succeed(defaultSslMode))),
  /**
   * Whether the server may ask for the password in cleartext (LDAP, PAM, RADIUS
   * or cloud IAM tokens). Only honoured on an encrypted connection (`sslMode`
   * require or stricter): without TLS libpq refuses such a request.
   */
  allowCleartextPassword: BooleanFromString.pipe(Schema.withDecodingDefaultKey(Effect.succeed("false" as const))),
  /** Which store `bucket` is in (default gcs, as the original operator). */
  store: StoreKind.pipe(Schema.withDecodingDefaultKey(Effect.succeed("gcs" as const))),
  /** The bucket; the Azure container; the directory a volume is mounted at. */
  bucket: nonEmpty(1024),
  object: nonEmpty(1024),
  manifestObject: nonEmpty(1024),
  /** pg_dump's format (default plain, as before formats): the controller names the object after it. */
  format: DumpFormat.pipe(Schema.withDecodingDefaultKey(Effect.succeed(defaultDumpFormat))),
  compression: Compression.pipe(Schema.withDecodingDefaultKey(Effect.succeed(defaultCompression))),
  gzipLevel: IntFromString(GzipLevel).pipe(Schema.withDecodingDefaultKey(Effect.succeed(String(defaultGzipLevel)))),
  ...storeFields,
  /** age recipients the dump is encrypted to, one per line (more may come from {@link AGE_RECIPIENTS_SECRET_ENV}). */
  ageRecipients: Schema.optionalKey(nonEmpty(65536)),
  terminationMessagePath: nonEmpty(4096).pipe(
    Schema.withDecodingDefaultKey(Effect.succeed(defaultTerminationMessagePath))
  ),
  resource: ResourceRefFromString,
  /** What to keep after a successful run (`keepLast=3,keepDaily=7`); absent: keep everything. */
  retention: Schema.optionalKey(RetentionFromString),
  /** The time zone retention's hours, days, weeks, months and years are counted in (default UTC). */
  timeZone: Schema.optionalKey(TimeZoneName)
}).pipe(Schema.encodeKeys(EnvVar))

/**
 * What a backup run needs to know (everything but the password).
 *
 * @example
 * ```ts
 * const contract: Contract = {
 *   host: "pg.db.svc", port: 5432, user: "backup", database: "api", schema: "api",
 *   sslMode: "verify-full", allowCleartextPassword: false,
 *   store: "gcs", bucket: "backups", object: "backups/team/api/backup-20250304-050607.sql.gz",
 *   manifestObject: "backups/team/api/backup-20250304-050607.json",
 *   format: "plain", compression: "gzip", gzipLevel: 1, terminationMessagePath: "/dev/termination-log",
 *   s3ForcePathStyle: false, resource: { namespace: "team", name: "api" }
 * }
 * ```
 */
export type Contract = typeof Env.Type

/** A Kubernetes `EnvVar` with a literal value. */
export interface EnvVarValue {
  readonly name: string
  readonly value: string
}

/**
 * Controller side: the Job container's env entries for a contract, in a stable
 * order. The password is not among them; add {@link passwordEnvVar}.
 *
 * @example
 * ```ts
 * const env = [...toEnv(contract), passwordEnvVar({ name: "backup-secret", key: "password" })]
 * ```
 */
export const toEnv = (contract: Contract): ReadonlyArray<EnvVarValue> => {
  const encoded: Readonly<Record<string, string | undefined>> = Schema.encodeSync(Env)(contract)
  return Object.values(EnvVar).flatMap((name) => {
    const value = encoded[name]
    return value === undefined ? [] : [{ name, value }]
  })
}

/**
 * The password's env entry: a `secretKeyRef`, so the value never passes
 * through the controller, the Job's spec or its args.
 */
export const passwordEnvVar = (secret: { readonly name: string; readonly key: string }) =>
  secretEnvVar(PASSWORD_ENV, secret)

/**
 * An env entry from a Secret key (a store credential, see {@link StoreSecretEnv}).
 *
 * @example
 * ```ts
 * secretEnvVar(StoreSecretEnv.azureAccountKey, { name: "azure-backup", key: "key" })
 * ```
 */
export const secretEnvVar = (name: string, secret: { readonly name: string; readonly key: string }) =>
  ({ name, valueFrom: { secretKeyRef: { name: secret.name, key: secret.key } } }) as const

/** Where the CA certificate comes from: a key of a ConfigMap or of a Secret in the Job's namespace. */
export type KeyRef =
  | { readonly configMapKeyRef: { readonly name: string; readonly key: string } }
  | { readonly secretKeyRef: { readonly name: string; readonly key: string } }

/**
 * The CA's env entry: a `configMapKeyRef` or `secretKeyRef`, resolved by the
 * kubelet (a missing object or key keeps the Pod in `CreateContainerConfigError`).
 *
 * @example
 * ```ts
 * sslRootCertEnvVar({ configMapKeyRef: { name: "db-ca", key: "ca.crt" } })
 * ```
 */
export const sslRootCertEnvVar = (source: KeyRef) => ({ name: SSL_ROOT_CERT_ENV, valueFrom: source }) as const

/** Runner side: the CA's PEM, if the Job has one. */
export const sslRootCertFromEnv = (env: Readonly<Record<string, string | undefined>>): string | undefined => {
  const value = env[SSL_ROOT_CERT_ENV]
  return value === undefined || value.trim() === "" ? undefined : value
}

/** A required variable is not set (or is empty). */
export class MissingEnvironmentVariable extends Schema.TaggedError<MissingEnvironmentVariable>()(
  "MissingEnvironmentVariable",
  { variable: Schema.String, message: Schema.String }
) {
  static readonly of = (variable: string): MissingEnvironmentVariable =>
    new MissingEnvironmentVariable({ variable, message: `environment variable ${variable} is required but not set` })
}

/** A variable is set to a value the contract does not allow. */
export class InvalidEnvironmentVariable extends Schema.TaggedError<InvalidEnvironmentVariable>()(
  "InvalidEnvironmentVariable",
  { variable: Schema.String, message: Schema.String }
) {}

/** Why the runner's environment is unusable. */
export type RunnerEnvError = MissingEnvironmentVariable | InvalidEnvironmentVariable

const variableNames: ReadonlyArray<string> = Object.values(EnvVar)

/** The variables of `names` that `env` sets to something (an empty one counts as unset). */
const setVariables = (env: Readonly<Record<string, string | undefined>>, names: ReadonlyArray<string>) => {
  const picked: Record<string, string> = {}
  for (const name of names) {
    const value = env[name]
    if (value !== undefined && value !== "") picked[name] = value
  }
  return picked
}
const formatter = SchemaIssue.makeFormatterStandardSchemaV1()

/** What each variable must look like, in words, for error messages. */
const expected: Readonly<Record<string, string>> = {
  [EnvVar.host]: "a host name or IP address without spaces",
  [EnvVar.port]: "an integer from 1 to 65535",
  [EnvVar.user]: "a PostgreSQL role name (1-63 characters)",
  [EnvVar.database]: "a PostgreSQL database name (1-63 characters)",
  [EnvVar.schema]: "a PostgreSQL schema name (1-63 characters)",
  [EnvVar.sslMode]: "disable, allow, prefer, require, verify-ca or verify-full",
  [EnvVar.allowCleartextPassword]: "true or false",
  [EnvVar.format]: "plain or custom",
  [EnvVar.compression]: "gzip, zstd or none",
  [EnvVar.gzipLevel]: "an integer from 1 to 9",
  [EnvVar.store]: "gcs, s3, azure or file",
  [EnvVar.gcsEndpoint]: "an http:// or https:// URL",
  [EnvVar.s3Endpoint]: "an http:// or https:// URL",
  [EnvVar.s3ForcePathStyle]: "true or false",
  [EnvVar.azureEndpoint]: "an http:// or https:// URL",
  [EnvVar.resource]: "namespace/name of a BackupDatabaseSchema"
}

const variableOf = (key: PropertyKey | undefined): string => {
  const name = String(key ?? "environment")
  return name in EnvVar ? EnvVar[name as keyof typeof EnvVar] : name
}

const envErrorOf = (issue: SchemaIssue.Issue, env: Readonly<Record<string, string>>): RunnerEnvError => {
  const first = formatter(issue).issues[0]
  const segment = first?.path?.[0]
  const variable = variableOf(typeof segment === "object" && segment !== null ? segment.key : segment)
  const detail = (first?.message ?? "invalid value").replace(/\s+/gu, " ")
  if (detail === "Missing key") return MissingEnvironmentVariable.of(variable)
  const value = env[variable]
  const got =
    value === undefined ? "" : `, got ${JSON.stringify(value.length > 100 ? `${value.slice(0, 100)}...` : value)}`
  return new InvalidEnvironmentVariable({
    variable,
    message: `environment variable ${variable} is invalid: ${
      expected[variable] === undefined ? detail : `expected ${expected[variable]}`
    }${got}`
  })
}

/**
 * Runner side: reads the contract from the environment. Empty variables count
 * as unset; unknown variables are ignored. Fails with the first missing or
 * invalid variable, named.
 *
 * @example
 * ```ts
 * const contract = yield* fromEnv(process.env)
 * // or: MissingEnvironmentVariable { variable: "DB_HOST", message: "environment variable DB_HOST is required but not set" }
 * ```
 */
export const fromEnv = (env: Readonly<Record<string, string | undefined>>): Effect.Effect<Contract, RunnerEnvError> => {
  const picked = setVariables(env, variableNames)
  return Schema.decodeUnknownEffect(Env)(picked).pipe(Effect.mapError((error) => envErrorOf(error.issue, picked)))
}

/**
 * The store settings alone, as env vars (the same variables as a backup Job's):
 * what `db-backup-runner restore` reads, since its URL names the store and
 * bucket.
 */
export const StoreEnv = Schema.Struct(storeFields).pipe(
  Schema.encodeKeys({
    gcsEndpoint: EnvVar.gcsEndpoint,
    s3Region: EnvVar.s3Region,
    s3Endpoint: EnvVar.s3Endpoint,
    s3ForcePathStyle: EnvVar.s3ForcePathStyle,
    azureAccount: EnvVar.azureAccount,
    azureEndpoint: EnvVar.azureEndpoint
  })
)
export type StoreSettings = typeof StoreEnv.Type

/**
 * Runner side: the store settings in `env`; a malformed one fails naming its variable.
 *
 * @example
 * ```ts
 * const settings = yield* storeSettingsFromEnv({ S3_ENDPOINT: "http://127.0.0.1:7070", S3_FORCE_PATH_STYLE: "true" })
 * settings.s3ForcePathStyle // true
 * ```
 */
export const storeSettingsFromEnv = (
  env: Readonly<Record<string, string | undefined>>
): Effect.Effect<StoreSettings, RunnerEnvError> => {
  const picked = setVariables(env, storeVariableNames)
  return Schema.decodeUnknownEffect(StoreEnv)(picked).pipe(Effect.mapError((error) => envErrorOf(error.issue, picked)))
}

const storeVariableNames: ReadonlyArray<string> = [
  EnvVar.gcsEndpoint,
  EnvVar.s3Region,
  EnvVar.s3Endpoint,
  EnvVar.s3ForcePathStyle,
  EnvVar.azureAccount,
  EnvVar.azureEndpoint
]

/**
 * Runner side: the database password, redacted so it cannot reach a log line.
 */
export const passwordFromEnv = (
  env: Readonly<Record<string, string | undefined>>
): Effect.Effect<Redacted.Redacted<string>, MissingEnvironmentVariable> => {
  const value = env[PASSWORD_ENV]
  return value === undefined || value === ""
    ? Effect.fail(MissingEnvironmentVariable.of(PASSWORD_ENV))
    : Effect.succeed(Redacted.make(value, { label: PASSWORD_ENV }))
}

/**
 * The stamp of a run, `YYYYMMDD-HHMMSS` (UTC): the part of its object names
 * `backup-YYYYMMDD-HHMMSS.<ext>` that tells runs apart.
 *
 * @example
 * ```ts
 * Schema.decodeUnknownSync(RunStamp)("20250304-050607") // "20250304-050607"
 * ```
 */
export const RunStamp = Schema.String.check(Schema.isPattern(/^\d{8}-\d{6}$/u))
export type RunStamp = typeof RunStamp.Type

/**
 * The runner's termination message when a backup succeeded: the controller reads
 * it from the finished Pod and records size, checksum and versions in the
 * status, and forgets the runs retention deleted. Encode it with
 * {@link encodeSuccessMessage}, which keeps it within {@link maxSuccessMessageBytes}.
 *
 * @example
 * ```ts
 * declare const sha256: string
 * encodeSuccessMessage({
 *   result: "Success", location: "gs://b/o.sql.gz", manifest: "gs://b/o.json", sizeBytes: 42, sha256,
 *   retainedBackups: 7, deletedBackups: 2, deletedRuns: ["20250101-000000"], serverVersion: "160004"
 * })
 * ```
 */
export const SuccessMessage = Schema.Struct({
  result: Schema.Literal("Success"),
  location: Schema.String,
  manifest: Schema.String,
  sizeBytes: NonNegativeInt,
  sha256: Sha256Hex,
  /** Successful backups in the bucket after retention, when it ran. */
  retainedBackups: Schema.optionalKey(NonNegativeInt),
  /** Backups retention deleted in this run, and dumps of failed runs (each counts one). */
  deletedBackups: Schema.optionalKey(NonNegativeInt),
  /**
   * The stamps of the successful backups (manifest and dump) retention deleted
   * in this run, at most {@link maxDeletedRuns}; a backup whose manifest is
   * gone counts, even if deleting its dump failed. Not the dumps of failed runs.
   */
  deletedRuns: Schema.optionalKey(Schema.Array(RunStamp)),
  /** Why retention could not finish (the backup itself succeeded). */
  retentionError: Schema.optionalKey(Schema.String),
  /** The PostgreSQL server's version (`server_version_num`), as in the manifest. */
  serverVersion: Schema.optionalKey(nonEmpty(64)),
  /** The output of `pg_dump --version` of the pg_dump that made the dump, as in the manifest. */
  pgDumpVersion: Schema.optionalKey(nonEmpty(256)),
  /**
   * The catalog: the stamps of the successful backups (those with a manifest)
   * the resource's prefix holds after this run and its retention, newest
   * first. The controller rebuilds the `Backup` records missing for them (a
   * new cluster on an old bucket, records deleted by hand). Cut, oldest
   * first, to what fits the message.
   */
  catalog: Schema.optionalKey(Schema.Array(RunStamp)),
  /** How many successful backups the prefix holds: more than `catalog` lists when it was cut. */
  catalogSize: Schema.optionalKey(NonNegativeInt)
})
export type SuccessMessage = typeof SuccessMessage.Type

const SuccessMessageJson = Schema.fromJsonString(SuccessMessage)
const encodeJson = Schema.encodeSync(SuccessMessageJson)

/**
 * Most bytes (UTF-8) of an encoded {@link SuccessMessage}. The kubelet keeps
 * the last 4096 bytes of a termination message; this leaves room for the
 * newline, and the runner's writer, which cuts at 3900 characters, never cuts
 * a message this long.
 */
export const maxSuccessMessageBytes = 3900

/** Most stamps in {@link SuccessMessage}'s `deletedRuns`: retention deletes at most this many backups per run. */
export const maxDeletedRuns = 100

const utf8 = new TextEncoder()
const bytesOf = (text: string): number => utf8.encode(text).length

/** `text` cut to `max` characters (code points), ending with `...` when cut. */
const cut = (text: string, max: number): string => {
  const chars = Array.from(text)
  return chars.length > max ? `${chars.slice(0, Math.max(0, max - 3)).join("")}...` : text
}

/** The shortest `retentionError` kept: enough to say that retention failed and how. */
const shortestRetentionError = 60

/** Ways to shorten a message, least useful information first; each applies only if the last did not suffice. */
const shortenings: ReadonlyArray<(message: SuccessMessage) => SuccessMessage> = [
  (message) =>
    message.retentionError === undefined ? message : { ...message, retentionError: cut(message.retentionError, 300) },
  ({ pgDumpVersion: _, ...message }) => message,
  ({ serverVersion: _, ...message }) => message,
  (message) =>
    message.retentionError === undefined
      ? message
      : { ...message, retentionError: cut(message.retentionError, shortestRetentionError) }
]

/** Bytes `deletedRuns` adds to a message that has it empty, per stamp: `"YYYYMMDD-HHMMSS",`. */
const bytesPerRun = '"YYYYMMDD-HHMMSS",'.length

/**
 * The message with its catalog cut, oldest first, to what fits beside
 * everything else: the catalog is the least needed part (the next run reports
 * it again), and never costs another field its place.
 */
const withCatalogThatFits = (message: SuccessMessage): SuccessMessage => {
  const catalog = message.catalog
  if (catalog === undefined || bytesOf(encodeJson(message)) <= maxSuccessMessageBytes) return message
  const room = Math.floor((maxSuccessMessageBytes - bytesOf(encodeJson({ ...message, catalog: [] })) + 1) / bytesPerRun)
  return { ...message, catalog: catalog.slice(0, Math.max(0, room)) }
}

/**
 * Runner side: the one-line JSON termination message of a successful run, at
 * most {@link maxSuccessMessageBytes} long. When the message would be longer
 * (long bucket and object names, a long retention error), this is the one
 * place it is shortened, least useful first: the `catalog` loses its oldest
 * stamps, then `retentionError` is cut to 300
 * characters, then `pgDumpVersion` and then `serverVersion` are left out
 * (both are in the manifest), then `retentionError` is cut to 60 characters;
 * last, `deletedRuns` loses its last stamps (the newest: the runner lists
 * them oldest first), which never happens when the run deleted at most
 * {@link deletedRunsRoom} backups. `location`, `manifest`,
 * size, checksum and counts are never changed: if they alone exceed the limit
 * (object names of more than about 1,000 bytes of characters JSON escapes,
 * which the controller never builds), the message is returned as it is.
 *
 * @example
 * ```ts
 * declare const sha256: string
 * const line = encodeSuccessMessage({ result: "Success", location: "gs://b/o.sql.gz", manifest: "gs://b/o.json", sizeBytes: 42, sha256 })
 * new TextEncoder().encode(line).length <= maxSuccessMessageBytes // true
 * ```
 */
export const encodeSuccessMessage = (message: SuccessMessage): string => {
  let current = withCatalogThatFits(message)
  let text = encodeJson(current)
  for (const shorten of shortenings) {
    if (bytesOf(text) <= maxSuccessMessageBytes) return text
    current = shorten(current)
    text = encodeJson(current)
  }
  const runs = current.deletedRuns
  if (runs === undefined || bytesOf(text) <= maxSuccessMessageBytes) return text
  const excess = Math.ceil((bytesOf(text) - maxSuccessMessageBytes) / bytesPerRun)
  return encodeJson({ ...current, deletedRuns: runs.slice(0, Math.max(0, runs.length - excess)) })
}

/**
 * How many stamps `deletedRuns` can list in the success message of a run
 * with this location, manifest, size and checksum, however many backups the
 * bucket then holds and whatever else the message says: at most
 * {@link maxDeletedRuns}, fewer only with bucket and object names far longer
 * than the controller builds. The runner lets retention delete at most this
 * many backups, so every deleted backup is reported.
 *
 * @example
 * ```ts
 * declare const sha256: string
 * deletedRunsRoom({ location: "gs://b/o.sql.gz", manifest: "gs://b/o.json", sizeBytes: 42, sha256 }) // 100
 * ```
 */
export const deletedRunsRoom = (
  message: Pick<SuccessMessage, "location" | "manifest" | "sizeBytes" | "sha256">
): number => {
  const largest = Number.MAX_SAFE_INTEGER
  const base = encodeJson({
    result: "Success",
    location: message.location,
    manifest: message.manifest,
    sizeBytes: message.sizeBytes,
    sha256: message.sha256,
    retainedBackups: largest,
    deletedBackups: largest,
    deletedRuns: [],
    // The longest a cut error can encode to: six bytes (a `\u0000` escape) per character.
    retentionError: "\u0000".repeat(shortestRetentionError)
  })
  // n stamps add n * bytesPerRun - 1 bytes (no comma after the last).
  const room = Math.floor((maxSuccessMessageBytes - bytesOf(base) + 1) / bytesPerRun)
  return Math.max(0, Math.min(maxDeletedRuns, room))
}

/** Controller side: the summary, if the termination message is one. */
export const decodeSuccessMessage = Schema.decodeUnknownOption(SuccessMessageJson)

/**
 * The variable holding the age identity (age-keygen's key file, or its
 * `AGE-SECRET-KEY-1…` line) that decrypts an encrypted backup, from a Secret
 * key (a Restore's `spec.decryption.ageIdentitySecretRef`): what
 * `db-backup-runner restore` uses when no `--identity-file` is given.
 */
export const AGE_IDENTITY_ENV = "BACKUP_AGE_IDENTITY"

/**
 * The runner's termination message when a restore committed (or a
 * verification passed): the controller
 * reads it from the finished Pod into the `Restore`'s status.
 *
 * @example
 * ```ts
 * encodeRestoreSuccessMessage({
 *   result: "Restored", location: "gs://b/backups/team/api/backup-20250304-050607.sql.gz",
 *   database: "api", schema: "api", tables: 12, rowsVerified: true, storedBytes: 4096, sqlBytes: 20480, seconds: 1.5
 * })
 * ```
 */
export const RestoreSuccessMessage = Schema.Struct({
  /** `Restored` (committed), or `Verified` (`db-backup-runner verify`: restored into a scratch database, dropped). */
  result: Schema.Literals(["Restored", "Verified"]),
  /** URL of the dump restored. */
  location: Schema.String,
  database: Schema.String,
  schema: Schema.String,
  /** Tables in the schema after the restore. */
  tables: NonNegativeInt,
  /** Whether every table was checked to hold the rows the manifest counted. */
  rowsVerified: Schema.Boolean,
  /** Bytes read from the store. */
  storedBytes: NonNegativeInt,
  /** Bytes of SQL run. */
  sqlBytes: NonNegativeInt,
  seconds: Schema.Number.check(Schema.isGreaterThanOrEqualTo(0))
})
export type RestoreSuccessMessage = typeof RestoreSuccessMessage.Type

const RestoreSuccessMessageJson = Schema.fromJsonString(RestoreSuccessMessage)

/** Runner side: the one-line JSON termination message of a committed restore (well under 4096 bytes: names are at most 1024). */
export const encodeRestoreSuccessMessage = Schema.encodeSync(RestoreSuccessMessageJson)

/** Controller side: the summary, if the termination message is one. */
export const decodeRestoreSuccessMessage = Schema.decodeUnknownOption(RestoreSuccessMessageJson)
