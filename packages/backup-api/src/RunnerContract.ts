import { Effect, Redacted, Schema, SchemaIssue, SchemaTransformation } from "effect"
import { Compression, defaultCompression } from "./Compression.ts"
import { RetentionFromString } from "./Retention.ts"
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
  compression: "BACKUP_COMPRESSION",
  gzipLevel: "BACKUP_GZIP_LEVEL",
  gcsEndpoint: "GCS_ENDPOINT",
  terminationMessagePath: "TERMINATION_MESSAGE_PATH",
  resource: "BACKUP_RESOURCE",
  retention: "BACKUP_RETENTION",
  timeZone: "BACKUP_TIME_ZONE"
} as const

/** The variable holding the database password (libpq reads it natively). */
export const PASSWORD_ENV = "PGPASSWORD"

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
  bucket: nonEmpty(222),
  object: nonEmpty(1024),
  manifestObject: nonEmpty(1024),
  compression: Compression.pipe(Schema.withDecodingDefaultKey(Effect.succeed(defaultCompression))),
  gzipLevel: IntFromString(GzipLevel).pipe(Schema.withDecodingDefaultKey(Effect.succeed(String(defaultGzipLevel)))),
  gcsEndpoint: Schema.optionalKey(HttpUrl),
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
 *   bucket: "backups", object: "backups/team/api/backup-20250304-050607.sql.gz",
 *   manifestObject: "backups/team/api/backup-20250304-050607.json",
 *   compression: "gzip", gzipLevel: 1, terminationMessagePath: "/dev/termination-log",
 *   resource: { namespace: "team", name: "api" }
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
  ({
    name: PASSWORD_ENV,
    valueFrom: { secretKeyRef: { name: secret.name, key: secret.key } }
  }) as const

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
  [EnvVar.compression]: "gzip or none",
  [EnvVar.gzipLevel]: "an integer from 1 to 9",
  [EnvVar.gcsEndpoint]: "an http:// or https:// URL",
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
  const picked: Record<string, string> = {}
  for (const name of variableNames) {
    const value = env[name]
    if (value !== undefined && value !== "") picked[name] = value
  }
  return Schema.decodeUnknownEffect(Env)(picked).pipe(Effect.mapError((error) => envErrorOf(error.issue, picked)))
}

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
 * The runner's termination message when a backup succeeded: the controller reads
 * it from the finished Pod and records size and checksum in the status.
 *
 * @example
 * ```ts
 * encodeSuccessMessage({ result: "Success", location: "gs://b/o.sql.gz", manifest: "gs://b/o.json", sizeBytes: 42, sha256 })
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
  /** Backups retention deleted in this run. */
  deletedBackups: Schema.optionalKey(NonNegativeInt),
  /** Why retention could not finish (the backup itself succeeded). */
  retentionError: Schema.optionalKey(Schema.String)
})
export type SuccessMessage = typeof SuccessMessage.Type

const SuccessMessageJson = Schema.fromJsonString(SuccessMessage)

/** Runner side: the one-line JSON termination message of a successful run. */
export const encodeSuccessMessage = (message: SuccessMessage): string => Schema.encodeSync(SuccessMessageJson)(message)

/** Controller side: the summary, if the termination message is one. */
export const decodeSuccessMessage = Schema.decodeUnknownOption(SuccessMessageJson)
