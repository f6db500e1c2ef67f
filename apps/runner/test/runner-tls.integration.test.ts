import { GcsObjectStore } from "@db-backup-operator/storage"
import { FakePostgres, GcsEmulator, makeTestPki, Postgres } from "@db-backup-operator/testing"
import { NodeServices } from "@effect/platform-node"
import { assert, describe, expect, layer } from "@effect/vitest"
import { Effect, FileSystem, Layer, Path } from "effect"
import { appRoleOnce, describeRun, expectJsonLogs, expectNoSecrets, type RunnerRun, runRunner } from "./runRunner.ts"

// The runner against a PostgreSQL that serves TLS with a certificate from a test CA, and against
// the attacker's server (FakePostgres): it must connect only as the resource's sslMode says, and
// never hand the password to a server that failed a check. The host's client tools are
// PostgreSQL 15, whose libpq cannot refuse a cleartext password request (require_auth is 16+):
// that refusal is covered by the end-to-end test with the runner image (PostgreSQL 17).
const TestEnv = Layer.mergeAll(
  Postgres.layerWith({ tls: true }),
  GcsEmulator.layer,
  FakePostgres.layer,
  NodeServices.layer
)

const appPassword = "app-TLS-Pa55word-never-sent"
const oldLibpqWarning = "cannot refuse to send the password in cleartext"

const ensureAppRole = appRoleOnce(appPassword)
/** A database with a small schema `shop` owned by `app`, and an empty bucket. */
const setup = (suffix: string) =>
  Effect.gen(function* () {
    const pg = yield* Postgres
    const gcs = yield* GcsEmulator
    yield* ensureAppRole
    const database = `tls_${suffix}`
    const bucket = `tls-${suffix}`
    yield* pg.createDatabase(database, { owner: "app" })
    yield* pg.psql(
      "CREATE SCHEMA shop; CREATE TABLE shop.items (id int PRIMARY KEY, name text); INSERT INTO shop.items SELECT g, 'item ' || g FROM generate_series(1, 100) AS g;",
      { database, user: "app", password: appPassword }
    )
    yield* gcs.createBucket(bucket)
    const prefix = "backups/team/shop-backup/"
    return {
      database,
      bucket,
      object: `${prefix}backup-20250304-050607.sql.gz`,
      manifest: `${prefix}backup-20250304-050607.json`
    }
  })

/** The contract for a run against `target` (the real server unless told otherwise). */
const contractEnv = (
  target: { readonly database: string; readonly bucket: string; readonly object: string; readonly manifest: string },
  tls: Record<string, string>,
  server?: { readonly host: string; readonly port: number }
) =>
  Effect.gen(function* () {
    const pg = yield* Postgres
    const gcs = yield* GcsEmulator
    return {
      DB_HOST: server?.host ?? pg.host,
      DB_PORT: String(server?.port ?? pg.port),
      DB_USER: "app",
      DB_NAME: target.database,
      DB_SCHEMA: "shop",
      PGPASSWORD: appPassword,
      BACKUP_BUCKET: target.bucket,
      BACKUP_OBJECT: target.object,
      BACKUP_MANIFEST_OBJECT: target.manifest,
      BACKUP_RESOURCE: "team/shop-backup",
      GCS_ENDPOINT: gcs.endpoint,
      ...tls
    }
  })

const objectsIn = (bucket: string) =>
  Effect.gen(function* () {
    const gcs = yield* GcsEmulator
    const listed = yield* GcsObjectStore.make({ apiEndpoint: gcs.endpoint }).list(bucket)
    return listed.map((o) => o.object).sort()
  })

const warnings = (run: RunnerRun, text: string) => run.logs.filter((line) => line.includes(text))

describe("db-backup-runner with TLS", () => {
  layer(TestEnv, { timeout: "170 seconds", excludeTestServices: true })((it) => {
    it.effect("backs up over verify-full with the CA from DB_SSL_ROOT_CERT", () =>
      Effect.gen(function* () {
        const pg = yield* Postgres
        const target = yield* setup("verified")
        const run = yield* runRunner(
          yield* contractEnv(target, { DB_SSL_MODE: "verify-full", DB_SSL_ROOT_CERT: pg.tls?.caPem ?? "" })
        )
        assert.strictEqual(run.exitCode, 0, describeRun(run))
        expectJsonLogs(run)
        expectNoSecrets(run, [appPassword])
        expect(yield* objectsIn(target.bucket)).toEqual([target.manifest, target.object].sort())
        const starting = run.logs.find((line) => line.includes('"backup starting"')) ?? ""
        expect(JSON.parse(starting).annotations).toMatchObject({
          sslMode: "verify-full",
          sslRootCert: "spec.sslRootCert",
          allowCleartextPassword: false
        })
        // libpq 15 here: the runner says once, clearly, that it cannot refuse a cleartext request.
        const warned = warnings(run, oldLibpqWarning)
        expect(warned).toHaveLength(1)
        expect(warned[0]).toMatch(/PostgreSQL\) 15\.\d+.*libpq 15.*the runner image ships PostgreSQL 17 client tools/u)
      })
    )

    it.effect("leaves nothing in its temporary directory: the CA file goes with the run", () =>
      Effect.gen(function* () {
        const pg = yield* Postgres
        const fs = yield* FileSystem.FileSystem
        const tmp = yield* fs.makeTempDirectoryScoped({ prefix: "runner-tmp-" })
        const target = yield* setup("cleanup")
        const run = yield* runRunner({
          ...(yield* contractEnv(target, { DB_SSL_MODE: "verify-full", DB_SSL_ROOT_CERT: pg.tls?.caPem ?? "" })),
          TMPDIR: tmp
        })
        assert.strictEqual(run.exitCode, 0, describeRun(run))
        expect(yield* fs.readDirectory(tmp)).toEqual([])
      })
    )

    it.effect("refuses a server whose certificate another CA signed, and uploads nothing", () =>
      Effect.gen(function* () {
        const pg = yield* Postgres
        const other = yield* makeTestPki({ commonName: "someone-elses-ca" })
        const target = yield* setup("wrongca")
        const run = yield* runRunner(
          yield* contractEnv(target, { DB_SSL_MODE: "verify-full", DB_SSL_ROOT_CERT: other.ca.certPem })
        )
        assert.strictEqual(run.exitCode, 1, describeRun(run))
        expect(run.terminationMessage).toBe(
          `backup failed: cannot connect to PostgreSQL at 127.0.0.1:${pg.port}: the server's TLS certificate is not signed by the CA in spec.sslRootCert; the password was not sent. Set spec.sslRootCert to the CA that issued the server's certificate, or check that spec.dbHost names your database server (libpq: connection to server at "127.0.0.1", port ${pg.port} failed: SSL error: certificate verify failed)\n`
        )
        expectJsonLogs(run)
        expectNoSecrets(run, [appPassword])
        expect(yield* objectsIn(target.bucket)).toEqual([])
      })
    )

    it.effect("with sslMode require, refuses the attacker's server that declines TLS: it never gets the password", () =>
      Effect.gen(function* () {
        const fake = yield* FakePostgres
        const fs = yield* FileSystem.FileSystem
        const path = yield* Path.Path
        const before = yield* fake.connections
        // A libpq service file on the runner's own environment would beat PGSSLMODE (libpq reads
        // the service before the environment): the runner must not let it through to its tools.
        const dir = yield* fs.makeTempDirectoryScoped({ prefix: "runner-pgservice-" })
        const serviceFile = path.join(dir, "pg_service.conf")
        yield* fs.writeFileString(serviceFile, "[weak]\nsslmode=disable\n")
        const target = yield* setup("fake")
        const run = yield* runRunner({
          ...(yield* contractEnv(target, { DB_SSL_MODE: "require" }, fake)),
          PGSERVICEFILE: serviceFile,
          PGSERVICE: "weak",
          PGSSLMODE: "disable"
        })
        assert.strictEqual(run.exitCode, 1, describeRun(run))
        expect(run.terminationMessage).toBe(
          `backup failed: cannot connect to PostgreSQL at 127.0.0.1:${fake.port}: the server does not accept TLS, but spec.sslMode require requires it; the password was not sent. Enable TLS on the server, or check that spec.dbHost names your database server (libpq: connection to server at "127.0.0.1", port ${fake.port} failed: server does not support SSL, but SSL was required)\n`
        )
        expect(yield* fake.passwords).toEqual([])
        expect((yield* fake.connections) - before).toBeGreaterThanOrEqual(1)
        expectNoSecrets(run, [appPassword])
        expect(yield* objectsIn(target.bucket)).toEqual([])
      })
    )

    it.effect("rejects a DB_SSL_ROOT_CERT that is not PEM without echoing it, with exit code 2", () =>
      Effect.gen(function* () {
        const target = yield* setup("badpem")
        const notPem = "-----BEGIN PRIVATE KEY-----\nTOTALLY-SECRET-KEY\n-----END PRIVATE KEY-----\n"
        const run = yield* runRunner(
          yield* contractEnv(target, { DB_SSL_MODE: "verify-full", DB_SSL_ROOT_CERT: notPem })
        )
        assert.strictEqual(run.exitCode, 2, describeRun(run))
        expect(run.terminationMessage).toMatch(
          /^backup failed: DB_SSL_ROOT_CERT \(from spec\.sslRootCert\) has no PEM certificate: .*\n$/u
        )
        expectNoSecrets(run, ["TOTALLY-SECRET-KEY", appPassword])
        expect(yield* objectsIn(target.bucket)).toEqual([])
      })
    )

    it.effect("asks for spec.sslRootCert when verify-full has no CA and the tools cannot read the system's", () =>
      Effect.gen(function* () {
        const target = yield* setup("nosystem")
        const run = yield* runRunner(yield* contractEnv(target, { DB_SSL_MODE: "verify-full" }))
        assert.strictEqual(run.exitCode, 2, describeRun(run))
        expect(run.terminationMessage).toMatch(
          /^backup failed: spec\.sslMode is verify-full but spec\.sslRootCert is not set, and the PostgreSQL 15 client tools here cannot use the system's trusted CAs .*: set spec\.sslRootCert to the CA that issued the server's certificate\n$/u
        )
      })
    )
  })
})

describe("db-backup-runner with TLS, against a certificate for another name", () => {
  // The server's certificate names db.example.test only; the resource says 127.0.0.1.
  layer(Layer.mergeAll(Postgres.layerWith({ tls: { subjectAltNames: ["DNS:db.example.test"] } }), NodeServices.layer), {
    timeout: "120 seconds",
    excludeTestServices: true
  })((it) => {
    it.effect("refuses it under verify-full, naming spec.dbHost, before any upload starts", () =>
      Effect.gen(function* () {
        const pg = yield* Postgres
        const run = yield* runRunner({
          DB_HOST: pg.host,
          DB_PORT: String(pg.port),
          DB_USER: "postgres",
          DB_NAME: "postgres",
          DB_SCHEMA: "public",
          PGPASSWORD: pg.password,
          DB_SSL_MODE: "verify-full",
          DB_SSL_ROOT_CERT: pg.tls?.caPem ?? "",
          BACKUP_BUCKET: "never-reached",
          BACKUP_OBJECT: "backups/team/shop-backup/backup-20250304-050607.sql.gz",
          BACKUP_MANIFEST_OBJECT: "backups/team/shop-backup/backup-20250304-050607.json",
          BACKUP_RESOURCE: "team/shop-backup",
          // Nothing listens here: the run must stop before it talks to the store.
          GCS_ENDPOINT: "http://127.0.0.1:9"
        })
        assert.strictEqual(run.exitCode, 1, describeRun(run))
        expect(run.terminationMessage).toContain(
          `backup failed: cannot connect to PostgreSQL at 127.0.0.1:${pg.port}: the server's TLS certificate is not issued for the host name in spec.dbHost; the password was not sent. Set spec.dbHost to a name the certificate carries (spec.sslMode verify-ca checks the CA but not the name) (libpq: connection to server at "127.0.0.1", port ${pg.port} failed: server certificate for "db.example.test"`
        )
        expect(run.terminationMessage).toMatch(/ does not match host name "127\.0\.0\.1"\)\n$/u)
        expectNoSecrets(run, [pg.password])
      })
    )
  })
})
