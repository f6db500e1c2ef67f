import { RunnerContract } from "@db-backup-operator/backup-api"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"

const contract: RunnerContract.Contract = {
  host: "pg-postgresql.postgres.svc.cluster.local",
  port: 5432,
  user: "team03",
  database: "api",
  schema: "api",
  sslMode: "verify-full",
  allowCleartextPassword: false,
  store: "gcs",
  bucket: "operator-db-backups-bucket",
  object: "backups/ns/db/backup-20250304-050607.sql.gz",
  manifestObject: "backups/ns/db/backup-20250304-050607.json",
  format: "plain",
  compression: "gzip",
  gzipLevel: 1,
  terminationMessagePath: "/dev/termination-log",
  s3ForcePathStyle: false,
  resource: { namespace: "ns", name: "db" }
}

const envRecord = (c: RunnerContract.Contract): Record<string, string> =>
  Object.fromEntries(RunnerContract.toEnv(c).map(({ name, value }) => [name, value]))

describe("RunnerContract", () => {
  it("writes every field as a named variable, in a stable order, without the password", () => {
    expect(RunnerContract.toEnv(contract)).toEqual([
      { name: "DB_HOST", value: "pg-postgresql.postgres.svc.cluster.local" },
      { name: "DB_PORT", value: "5432" },
      { name: "DB_USER", value: "team03" },
      { name: "DB_NAME", value: "api" },
      { name: "DB_SCHEMA", value: "api" },
      { name: "DB_SSL_MODE", value: "verify-full" },
      { name: "DB_ALLOW_CLEARTEXT_PASSWORD", value: "false" },
      { name: "BACKUP_BUCKET", value: "operator-db-backups-bucket" },
      { name: "BACKUP_OBJECT", value: "backups/ns/db/backup-20250304-050607.sql.gz" },
      { name: "BACKUP_MANIFEST_OBJECT", value: "backups/ns/db/backup-20250304-050607.json" },
      { name: "BACKUP_FORMAT", value: "plain" },
      { name: "BACKUP_COMPRESSION", value: "gzip" },
      { name: "BACKUP_GZIP_LEVEL", value: "1" },
      { name: "BACKUP_STORE", value: "gcs" },
      { name: "S3_FORCE_PATH_STYLE", value: "false" },
      { name: "TERMINATION_MESSAGE_PATH", value: "/dev/termination-log" },
      { name: "BACKUP_RESOURCE", value: "ns/db" }
    ])
    expect(RunnerContract.toEnv(contract).some(({ name }) => name === RunnerContract.PASSWORD_ENV)).toBe(false)
  })

  it("adds the password only as a secretKeyRef", () => {
    expect(RunnerContract.passwordEnvVar({ name: "backup-secret", key: "password" })).toEqual({
      name: "PGPASSWORD",
      valueFrom: { secretKeyRef: { name: "backup-secret", key: "password" } }
    })
  })

  it.effect("reads back what the controller wrote", () =>
    Effect.gen(function* () {
      expect(yield* RunnerContract.fromEnv(envRecord(contract))).toEqual(contract)
      const withEndpoint = { ...contract, compression: "none" as const, gcsEndpoint: "http://127.0.0.1:4443" }
      expect(yield* RunnerContract.fromEnv(envRecord(withEndpoint))).toEqual(withEndpoint)
      const custom = {
        ...contract,
        format: "custom" as const,
        object: "backups/ns/db/backup-20250304-050607.dump.gz"
      }
      expect(envRecord(custom)).toMatchObject({ BACKUP_FORMAT: "custom" })
      expect(yield* RunnerContract.fromEnv(envRecord(custom))).toEqual(custom)
    })
  )

  it.effect("applies defaults and ignores unrelated and empty variables", () =>
    Effect.gen(function* () {
      const {
        DB_SSL_MODE: _s,
        DB_ALLOW_CLEARTEXT_PASSWORD: _a,
        BACKUP_FORMAT: _f,
        BACKUP_COMPRESSION: _c,
        BACKUP_GZIP_LEVEL: _l,
        TERMINATION_MESSAGE_PATH: _t,
        ...required
      } = envRecord(contract)
      const read = yield* RunnerContract.fromEnv({ ...required, PATH: "/usr/bin", GCS_ENDPOINT: "" })
      // libpq's own default; the runner still refuses to send the password in cleartext.
      expect(read.sslMode).toBe("prefer")
      expect(read.allowCleartextPassword).toBe(false)
      // A Job of a controller from before formats: a plain dump, as it always was.
      expect(read.format).toBe("plain")
      expect(read.compression).toBe("gzip")
      expect(read.gzipLevel).toBe(1)
      expect(read.terminationMessagePath).toBe("/dev/termination-log")
      expect(read.gcsEndpoint).toBeUndefined()
    })
  )

  it.effect.each([
    "DB_HOST",
    "DB_PORT",
    "DB_USER",
    "DB_NAME",
    "DB_SCHEMA",
    "BACKUP_BUCKET",
    "BACKUP_OBJECT",
    "BACKUP_MANIFEST_OBJECT",
    "BACKUP_RESOURCE"
  ])("names the missing variable %s", (variable) =>
    Effect.gen(function* () {
      for (const value of [undefined, ""]) {
        const error = yield* RunnerContract.fromEnv({ ...envRecord(contract), [variable]: value }).pipe(Effect.flip)
        expect(error._tag).toBe("MissingEnvironmentVariable")
        expect(error.variable).toBe(variable)
        expect(error.message).toBe(`environment variable ${variable} is required but not set`)
      }
    })
  )

  it.effect.each([
    ["DB_PORT", "abc", 'environment variable DB_PORT is invalid: expected an integer from 1 to 65535, got "abc"'],
    ["DB_PORT", "0", 'environment variable DB_PORT is invalid: expected an integer from 1 to 65535, got "0"'],
    ["DB_PORT", "5432.5", 'environment variable DB_PORT is invalid: expected an integer from 1 to 65535, got "5432.5"'],
    [
      "BACKUP_FORMAT",
      "directory",
      'environment variable BACKUP_FORMAT is invalid: expected plain or custom, got "directory"'
    ],
    [
      "BACKUP_COMPRESSION",
      "brotli",
      'environment variable BACKUP_COMPRESSION is invalid: expected gzip, zstd or none, got "brotli"'
    ],
    [
      "BACKUP_GZIP_LEVEL",
      "10",
      'environment variable BACKUP_GZIP_LEVEL is invalid: expected an integer from 1 to 9, got "10"'
    ],
    [
      "BACKUP_RESOURCE",
      "just-a-name",
      'environment variable BACKUP_RESOURCE is invalid: expected namespace/name of a BackupDatabaseSchema, got "just-a-name"'
    ],
    [
      "GCS_ENDPOINT",
      "localhost:4443",
      'environment variable GCS_ENDPOINT is invalid: expected an http:// or https:// URL, got "localhost:4443"'
    ],
    [
      "DB_SSL_MODE",
      "verify_full",
      'environment variable DB_SSL_MODE is invalid: expected disable, allow, prefer, require, verify-ca or verify-full, got "verify_full"'
    ],
    [
      "DB_SSL_MODE",
      "REQUIRE",
      'environment variable DB_SSL_MODE is invalid: expected disable, allow, prefer, require, verify-ca or verify-full, got "REQUIRE"'
    ],
    [
      "DB_ALLOW_CLEARTEXT_PASSWORD",
      "yes",
      'environment variable DB_ALLOW_CLEARTEXT_PASSWORD is invalid: expected true or false, got "yes"'
    ],
    [
      "DB_ALLOW_CLEARTEXT_PASSWORD",
      "1",
      'environment variable DB_ALLOW_CLEARTEXT_PASSWORD is invalid: expected true or false, got "1"'
    ],
    [
      "DB_HOST",
      "two words",
      'environment variable DB_HOST is invalid: expected a host name or IP address without spaces, got "two words"'
    ]
  ] as const)("names the invalid variable %s=%s", ([variable, value, message]) =>
    Effect.gen(function* () {
      const error = yield* RunnerContract.fromEnv({ ...envRecord(contract), [variable]: value }).pipe(Effect.flip)
      expect(error._tag).toBe("InvalidEnvironmentVariable")
      expect(error.variable).toBe(variable)
      expect(error.message).toBe(message)
      expect(error.message).not.toContain("\n")
    })
  )

  it.effect.each(["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] as const)(
    "round-trips sslMode %s",
    (sslMode) =>
      Effect.gen(function* () {
        const withMode = { ...contract, sslMode }
        expect(envRecord(withMode).DB_SSL_MODE).toBe(sslMode)
        expect(yield* RunnerContract.fromEnv(envRecord(withMode))).toEqual(withMode)
      })
  )

  it.effect("reads allowCleartextPassword from true and false", () =>
    Effect.gen(function* () {
      const allowed = { ...contract, sslMode: "require" as const, allowCleartextPassword: true }
      expect(envRecord(allowed).DB_ALLOW_CLEARTEXT_PASSWORD).toBe("true")
      expect(yield* RunnerContract.fromEnv(envRecord(allowed))).toEqual(allowed)
      const read = yield* RunnerContract.fromEnv({ ...envRecord(contract), DB_ALLOW_CLEARTEXT_PASSWORD: "false" })
      expect(read.allowCleartextPassword).toBe(false)
    })
  )

  it("adds the CA only through valueFrom, and reads it back when set", () => {
    expect(RunnerContract.sslRootCertEnvVar({ configMapKeyRef: { name: "db-ca", key: "ca.crt" } })).toEqual({
      name: "DB_SSL_ROOT_CERT",
      valueFrom: { configMapKeyRef: { name: "db-ca", key: "ca.crt" } }
    })
    expect(RunnerContract.sslRootCertEnvVar({ secretKeyRef: { name: "db-tls", key: "ca.crt" } })).toEqual({
      name: "DB_SSL_ROOT_CERT",
      valueFrom: { secretKeyRef: { name: "db-tls", key: "ca.crt" } }
    })
    expect(RunnerContract.toEnv(contract).some(({ name }) => name === RunnerContract.SSL_ROOT_CERT_ENV)).toBe(false)
    const pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    expect(RunnerContract.sslRootCertFromEnv({ DB_SSL_ROOT_CERT: pem })).toBe(pem)
    expect(RunnerContract.sslRootCertFromEnv({})).toBeUndefined()
    expect(RunnerContract.sslRootCertFromEnv({ DB_SSL_ROOT_CERT: "" })).toBeUndefined()
    expect(RunnerContract.sslRootCertFromEnv({ DB_SSL_ROOT_CERT: " \n\t" })).toBeUndefined()
  })

  it.effect("reads the password redacted, and requires it", () =>
    Effect.gen(function* () {
      const password = yield* RunnerContract.passwordFromEnv({ PGPASSWORD: "s3cret" })
      expect(Redacted.value(password)).toBe("s3cret")
      expect(String(password)).not.toContain("s3cret")
      expect(JSON.stringify({ password })).not.toContain("s3cret")
      const error = yield* RunnerContract.passwordFromEnv({ PGPASSWORD: "" }).pipe(Effect.flip)
      expect(error.variable).toBe("PGPASSWORD")
    })
  )
})
