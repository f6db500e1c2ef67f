/**
 * `db-backup-runner restore`, run as a user runs it outside Kubernetes: the real
 * binary with arguments, against a real PostgreSQL and fake-gcs-server, restoring
 * backups the real runner made.
 */

import { gunzipSync } from "node:zlib"
import { decodeManifest, encodeManifest } from "@db-backup-operator/backup-api/contract"
import { eventually, GcsEmulator, Postgres } from "@db-backup-operator/testing"
import { NodeServices } from "@effect/platform-node"
import { describe, expect, layer } from "@effect/vitest"
import * as age from "age-encryption"
import { Effect, Fiber, FileSystem, Layer } from "effect"
import { describeRun, expectJsonLogs, expectNoSecrets, runRunner } from "./runRunner.ts"
import { appPassword, contractEnv, fingerprint, setup, sha256, storeOf } from "./shop.ts"

const TestEnv = Layer.mergeAll(Postgres.layer, GcsEmulator.layer, NodeServices.layer)

const stamp = "20250304-050607"

/** A backup of a new shop database by the runner, as a Job makes it; `env` adds to its contract. */
const backUp = (
  suffix: string,
  options: { readonly extension?: string; readonly env?: Record<string, string>; readonly bucket?: string } = {}
) =>
  Effect.gen(function* () {
    const made = yield* setup(suffix)
    const bucket = options.bucket ?? made.bucket
    const object = `${made.prefix}backup-${stamp}${options.extension ?? ".sql.gz"}`
    const manifest = `${made.prefix}backup-${stamp}.json`
    const env = { ...(yield* contractEnv({ database: made.database, bucket, object, manifest })), ...options.env }
    const run = yield* runRunner(env)
    expect(run.exitCode, describeRun(run)).toBe(0)
    return { database: made.database, bucket, object, manifest, url: `gs://${bucket}/${manifest}` }
  })

/** `db-backup-runner restore URL --username=app ARGS`, with the password in PGPASSWORD; SIGTERM once `terminateWhen` completes. */
const restore = <R = never>(
  url: string,
  args: ReadonlyArray<string> = [],
  terminateWhen?: Effect.Effect<unknown, unknown, R>
) =>
  Effect.gen(function* () {
    const gcs = yield* GcsEmulator
    const run = yield* runRunner(
      { PGPASSWORD: appPassword, GCS_ENDPOINT: gcs.endpoint },
      { args: ["restore", url, "--username=app", ...args], ...(terminateWhen === undefined ? {} : { terminateWhen }) }
    )
    expectJsonLogs(run)
    expectNoSecrets(run, [appPassword])
    return run
  })

/** The names of the schemas of `database`. */
const schemasOf = (database: string) =>
  Effect.flatMap(Postgres, (pg) =>
    pg.psql("SELECT string_agg(nspname, ',' ORDER BY nspname) FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%'", {
      database
    })
  )

describe("db-backup-runner restore", () => {
  layer(TestEnv, { timeout: "170 seconds", excludeTestServices: true })((it) => {
    it.effect("restores a backup over its own schema with --schema-exists=replace: every row, sequence and view", () =>
      Effect.gen(function* () {
        const pg = yield* Postgres
        const backup = yield* backUp("replace")
        const before = yield* fingerprint(backup.database)
        yield* pg.psql(
          `DELETE FROM shop.orders WHERE id % 2 = 0; UPDATE shop.customers SET name = 'changed';
           DROP VIEW shop.big_spenders; CREATE VIEW shop.big_spenders AS SELECT 1 AS customer_id;
           CREATE TABLE shop.stray (id int); SELECT setval('shop.orders_id_seq', 99999);`,
          { database: backup.database }
        )
        expect(yield* fingerprint(backup.database)).not.toBe(before)

        // No --host, --port or --dbname: into the database the backup came from.
        const run = yield* restore(backup.url, ["--schema-exists=replace"])
        expect(run.exitCode, describeRun(run)).toBe(0)
        expect(yield* fingerprint(backup.database)).toBe(before)
        // The schema was replaced, not merged into; the schema beside it was left alone.
        expect(
          yield* pg.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'shop' AND tablename = 'stray'", {
            database: backup.database
          })
        ).toBe("0")
        expect(yield* pg.psql("SELECT secret FROM other.secrets", { database: backup.database })).toBe(
          "must-not-be-dumped"
        )
        expect(JSON.parse(run.terminationMessage)).toMatchObject({
          result: "Restored",
          location: `gs://${backup.bucket}/${backup.object}`,
          database: backup.database,
          schema: "shop",
          tables: 2,
          rowsVerified: true
        })
        expect(run.logs.some((line) => line.includes('"restore complete"'))).toBe(true)
      })
    )

    it.effect("restores a custom-format backup (.dump.gz) through pg_restore, in one transaction, rows verified", () =>
      Effect.gen(function* () {
        const pg = yield* Postgres
        const store = yield* storeOf
        const backup = yield* backUp("custom", { extension: ".dump.gz", env: { BACKUP_FORMAT: "custom" } })
        // A pg_dump archive, not a SQL script: only pg_restore reads it.
        expect(
          gunzipSync(yield* store.read(backup.bucket, backup.object))
            .subarray(0, 5)
            .toString("latin1")
        ).toBe("PGDMP")
        const before = yield* fingerprint(backup.database)
        yield* pg.psql(
          `DELETE FROM shop.orders WHERE id % 3 = 0; UPDATE shop.customers SET note = 'changed' WHERE id < 100;
           CREATE TABLE shop.stray (id int); SELECT setval('shop.customers_id_seq', 77777);`,
          { database: backup.database }
        )
        expect(yield* fingerprint(backup.database)).not.toBe(before)

        // Its dump's URL, as a Backup's status gives it.
        const run = yield* restore(`gs://${backup.bucket}/${backup.object}`, ["--schema-exists=replace"])
        expect(run.exitCode, describeRun(run)).toBe(0)
        expect(yield* fingerprint(backup.database)).toBe(before)
        expect(
          yield* pg.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'shop' AND tablename = 'stray'", {
            database: backup.database
          })
        ).toBe("0")
        expect(JSON.parse(run.terminationMessage)).toMatchObject({
          result: "Restored",
          location: `gs://${backup.bucket}/${backup.object}`,
          database: backup.database,
          schema: "shop",
          tables: 2,
          rowsVerified: true
        })
        expect(run.logs.some((line) => line.includes('"restore starting"') && line.includes('"format":"custom"'))).toBe(
          true
        )
      })
    )

    it.effect("fails with pg_restore's reason on a damaged custom-format archive, and commits nothing", () =>
      Effect.gen(function* () {
        const pg = yield* Postgres
        const store = yield* storeOf
        const backup = yield* backUp("customcut", {
          extension: ".dump",
          env: { BACKUP_FORMAT: "custom", BACKUP_COMPRESSION: "none" }
        })
        // An archive that ends in the middle of its table data, with a manifest that matches it (as one
        // made from a broken archive would): the checksum passes, and only pg_restore can tell.
        const archive = yield* store.read(backup.bucket, backup.object)
        const cut = archive.subarray(0, Math.floor(archive.byteLength * 0.7))
        const manifest = yield* decodeManifest(
          Buffer.from(yield* store.read(backup.bucket, backup.manifest)).toString("utf8")
        )
        yield* store.writeSmall(backup.bucket, backup.object, cut, { contentType: "application/octet-stream" })
        yield* store.writeSmall(
          backup.bucket,
          backup.manifest,
          encodeManifest({ ...manifest, sizeBytes: cut.byteLength, sha256: sha256(cut) }),
          { contentType: "application/json" }
        )
        yield* pg.psql("DELETE FROM shop.orders WHERE id > 10", { database: backup.database })
        const before = yield* fingerprint(backup.database)

        // With replace: the schema is dropped, the DDL and the first rows run, then pg_restore fails.
        const run = yield* restore(backup.url, ["--schema-exists=replace"])
        expect(run.exitCode, describeRun(run)).toBe(1)
        expect(run.terminationMessage).toMatch(
          /^restore failed: pg_restore failed \(exit code 1\): .+; nothing was restored\n$/u
        )
        expect(run.terminationMessage).toContain("end of file")
        expect(yield* fingerprint(backup.database)).toBe(before)
      })
    )

    it.effect("refuses to restore over an existing schema unless told to replace it, and changes nothing", () =>
      Effect.gen(function* () {
        const pg = yield* Postgres
        const backup = yield* backUp("exists")
        yield* pg.psql("DELETE FROM shop.orders WHERE id > 10", { database: backup.database })
        const before = yield* fingerprint(backup.database)
        const run = yield* restore(backup.url)
        expect(run.exitCode, describeRun(run)).toBe(1)
        expect(run.terminationMessage).toContain(
          `restore failed: schema "shop" already exists in database "${backup.database}"`
        )
        expect(run.terminationMessage).toContain("--schema-exists=replace")
        expect(yield* fingerprint(backup.database)).toBe(before)

        // Replacing it would also drop what another schema built on it: refused as well.
        yield* pg.psql(
          `CREATE SCHEMA reporting; CREATE VIEW reporting.totals AS SELECT count(*) AS n FROM shop.orders;
           CREATE TABLE reporting.refs (customer_id bigint REFERENCES shop.customers (id));`,
          { database: backup.database }
        )
        const used = yield* restore(backup.url, ["--schema-exists=replace"])
        expect(used.exitCode, describeRun(used)).toBe(1)
        expect(used.terminationMessage).toContain('schema "shop" is used from outside it (')
        expect(used.terminationMessage).toContain("view reporting.totals")
        expect(used.terminationMessage).toContain("foreign key refs_customer_id_fkey of reporting.refs")
        expect(yield* fingerprint(backup.database)).toBe(before)
        expect(yield* pg.psql("SELECT n FROM reporting.totals", { database: backup.database })).toBe("10")
      })
    )

    it.effect(
      "restores into another database where the backup's roles do not exist, with --no-owner --no-privileges",
      () =>
        Effect.gen(function* () {
          const pg = yield* Postgres
          const made = yield* setup("roles")
          // The schema belongs to a role, and a table is granted to it, that the target will not have.
          yield* pg.createRole("shop_owner", "unused-Pa55")
          yield* pg.psql(
            `ALTER SCHEMA shop OWNER TO shop_owner; GRANT USAGE ON SCHEMA shop TO app;
           GRANT SELECT ON shop.customers TO shop_owner;`,
            { database: made.database }
          )
          const object = `${made.prefix}backup-${stamp}.sql.gz`
          const manifest = `${made.prefix}backup-${stamp}.json`
          const backupRun = yield* runRunner(
            yield* contractEnv({ database: made.database, bucket: made.bucket, object, manifest })
          )
          expect(backupRun.exitCode, describeRun(backupRun)).toBe(0)
          const original = yield* fingerprint(made.database)
          yield* pg.psql(
            "REASSIGN OWNED BY shop_owner TO app; DROP OWNED BY shop_owner; DROP ROLE shop_owner; DROP SCHEMA shop CASCADE",
            { database: made.database }
          )
          const copy = `${made.database}_copy`
          yield* pg.createDatabase(copy, { owner: "app" })
          const url = `gs://${made.bucket}/${manifest}`

          // As dumped: its ALTER ... OWNER TO names a role that is gone. Nothing is committed.
          const kept = yield* restore(url, [`--dbname=${copy}`])
          expect(kept.exitCode, describeRun(kept)).toBe(1)
          expect(kept.terminationMessage).toContain('role "shop_owner" does not exist')
          expect(kept.terminationMessage).toContain("--no-owner and --no-privileges")
          expect(kept.terminationMessage).toContain("nothing was restored")
          expect(yield* schemasOf(copy)).toBe("information_schema,public")

          const mapped = yield* restore(url, [`--dbname=${copy}`, "--no-owner", "--no-privileges"])
          expect(mapped.exitCode, describeRun(mapped)).toBe(0)
          expect(yield* fingerprint(copy)).toBe(original)
          // Everything belongs to the user that restored.
          expect(
            yield* pg.psql("SELECT nspowner::regrole FROM pg_namespace WHERE nspname = 'shop'", { database: copy })
          ).toBe("app")
          expect(
            yield* pg.psql("SELECT string_agg(DISTINCT tableowner, ',') FROM pg_tables WHERE schemaname = 'shop'", {
              database: copy
            })
          ).toBe("app")
        })
    )

    it.effect("fails naming the checksum when a byte of the stored object changed, and restores nothing", () =>
      Effect.gen(function* () {
        const pg = yield* Postgres
        const store = yield* storeOf
        for (const [suffix, extension, compression, format] of [
          ["tamperplain", ".sql", "none", "plain"],
          ["tampergzip", ".sql.gz", "gzip", "plain"],
          ["tampercustom", ".dump", "none", "custom"]
        ] as const) {
          const backup = yield* backUp(suffix, {
            extension,
            env: { BACKUP_COMPRESSION: compression, BACKUP_FORMAT: format }
          })
          const bytes = Buffer.from(yield* store.read(backup.bucket, backup.object))
          // Uncompressed: one letter of a row's data, which SQL (and pg_restore, whose archive holds the
          // rows as they are) would take as it is. Gzip: a byte in the middle.
          const at = compression === "none" ? bytes.indexOf("user1000@example.com") : Math.floor(bytes.length / 2)
          expect(at).toBeGreaterThan(0)
          bytes[at] = (bytes[at] ?? 0) ^ 0x01
          yield* store.writeSmall(backup.bucket, backup.object, bytes, { contentType: "application/octet-stream" })

          const target = `${backup.database}_tampered`
          yield* pg.createDatabase(target, { owner: "app" })
          const run = yield* restore(backup.url, [`--dbname=${target}`])
          expect(run.exitCode, `${compression}: ${describeRun(run)}`).toBe(1)
          expect(run.terminationMessage).toContain("does not match its manifest's checksum")
          expect(run.terminationMessage).toContain("nothing was restored")
          expect(yield* schemasOf(target)).toBe("information_schema,public")
        }
      })
    )

    it.effect(
      "verify restores into a scratch database and drops it: passes on a good backup, fails naming the checksum on a changed one",
      () =>
        Effect.gen(function* () {
          const pg = yield* Postgres
          const store = yield* storeOf
          const scratchDatabases = pg.psql(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'db\\_backup\\_verify\\_%'",
            { database: "postgres" }
          )
          const verify = (url: string, args: ReadonlyArray<string> = []) =>
            Effect.gen(function* () {
              const gcs = yield* GcsEmulator
              const run = yield* runRunner(
                { PGPASSWORD: appPassword, GCS_ENDPOINT: gcs.endpoint },
                { args: ["verify", url, "--username=app", ...args] }
              )
              expectJsonLogs(run)
              expectNoSecrets(run, [appPassword])
              return run
            })
          const backup = yield* backUp("verify")
          const before = yield* fingerprint(backup.database)

          // Without CREATEDB the role cannot make the scratch database: said so.
          yield* pg.psql("ALTER ROLE app NOCREATEDB")
          const refused = yield* verify(backup.url)
          expect(refused.exitCode, describeRun(refused)).toBe(1)
          expect(refused.terminationMessage).toContain("cannot create the scratch database")
          expect(refused.terminationMessage).toContain("CREATEDB")

          yield* pg.psql("ALTER ROLE app CREATEDB")
          const run = yield* verify(backup.url)
          expect(run.exitCode, describeRun(run)).toBe(0)
          expect(JSON.parse(run.terminationMessage)).toMatchObject({
            result: "Verified",
            tables: 2,
            rowsVerified: true
          })
          expect(run.logs.some((line) => line.includes('"scratch database dropped"'))).toBe(true)
          expect(yield* scratchDatabases).toBe("0")
          // The backup's own database is not touched (its schema is there, and verify did not mind).
          expect(yield* fingerprint(backup.database)).toBe(before)

          const bytes = Buffer.from(yield* store.read(backup.bucket, backup.object))
          const middle = Math.floor(bytes.length / 2)
          bytes[middle] = (bytes[middle] ?? 0) ^ 0xff
          yield* store.writeSmall(backup.bucket, backup.object, bytes, { contentType: "application/octet-stream" })
          const changed = yield* verify(backup.url)
          expect(changed.exitCode, describeRun(changed)).toBe(1)
          expect(changed.terminationMessage).toMatch(/^verification failed: .*does not match its manifest's checksum/u)
          expect(yield* scratchDatabases).toBe("0")

          const misused = yield* verify(backup.url, ["--schema-exists=replace"])
          expect(misused.exitCode).toBe(2)
          expect(misused.terminationMessage).toContain("--schema-exists is for restore")
          yield* pg.psql("ALTER ROLE app NOCREATEDB")
        })
    )

    it.effect("restores an encrypted backup with its identity, and fails clearly without it or with another", () =>
      Effect.gen(function* () {
        const fs = yield* FileSystem.FileSystem
        const identity = yield* Effect.promise(() => age.generateIdentity())
        const recipient = yield* Effect.promise(() => age.identityToRecipient(identity))
        const stranger = yield* Effect.promise(() => age.generateIdentity())
        const backup = yield* backUp("encrypted", {
          extension: ".sql.gz.age",
          env: { BACKUP_AGE_RECIPIENTS: recipient }
        })
        const original = yield* fingerprint(backup.database)
        const dir = yield* fs.makeTempDirectoryScoped({ prefix: "restore-keys-" })
        yield* fs.writeFileString(`${dir}/key.txt`, `# created: now\n# public key: ${recipient}\n${identity}\n`)
        yield* fs.writeFileString(`${dir}/other.txt`, `${stranger}\n`)

        const without = yield* restore(backup.url, ["--schema-exists=replace"])
        expect(without.exitCode, describeRun(without)).toBe(2)
        expect(without.terminationMessage).toContain(`is encrypted (age, to ${recipient})`)
        expect(without.terminationMessage).toContain("--identity-file")

        const wrong = yield* restore(backup.url, ["--schema-exists=replace", `--identity-file=${dir}/other.txt`])
        expect(wrong.exitCode, describeRun(wrong)).toBe(1)
        expect(wrong.terminationMessage).toContain("no identity matches any recipient of this backup")
        expect(yield* fingerprint(backup.database)).toBe(original)

        yield* Effect.flatMap(Postgres, (pg) => pg.psql("TRUNCATE shop.orders", { database: backup.database }))
        const right = yield* restore(backup.url, ["--schema-exists=replace", `--identity-file=${dir}/key.txt`])
        expect(right.exitCode, describeRun(right)).toBe(0)
        expect(yield* fingerprint(backup.database)).toBe(original)
        expectNoSecrets(right, [identity])
      })
    )

    it.effect(
      "a dump taken under concurrent writes has the rows its manifest counted, and the restore checks them",
      () =>
        Effect.gen(function* () {
          const pg = yield* Postgres
          const store = yield* storeOf
          const made = yield* setup("concurrent")
          const database = made.database
          const count = Effect.map(pg.psql("SELECT count(*) FROM shop.orders", { database }), (text) => Number(text))
          // Rows committed one by one, all through the backup.
          const writer = yield* pg
            .psql(
              `DO $$ BEGIN FOR i IN 1..100000 LOOP
               INSERT INTO shop.orders (customer_id, total, placed) VALUES (1 + i % 3000, i, DATE '2025-06-01');
               COMMIT;
               PERFORM pg_sleep(0.002);
             END LOOP; END $$;`,
              { database }
            )
            .pipe(Effect.ignore, Effect.forkScoped)
          const start = yield* count
          yield* eventually(
            "rows being written",
            Effect.map(count, (rows) => (rows > start + 100 ? true : undefined))
          )
          const object = `${made.prefix}backup-${stamp}.sql.gz`
          const manifestObject = `${made.prefix}backup-${stamp}.json`
          const run = yield* runRunner(
            yield* contractEnv({ database, bucket: made.bucket, object, manifest: manifestObject })
          )
          expect(run.exitCode, describeRun(run)).toBe(0)
          const during = yield* count
          yield* Fiber.interrupt(writer)
          yield* pg.psql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%FOR i IN 1..100000%' AND pid <> pg_backend_pid()",
            { database }
          )
          const manifest = yield* decodeManifest(
            Buffer.from(yield* store.read(made.bucket, manifestObject)).toString("utf8")
          )
          const orders = manifest.tables?.find((table) => table.name === "orders")?.rows ?? 0
          // Taken while the writer ran: more than before it, fewer than by the end.
          expect(orders).toBeGreaterThan(start + 100)
          expect(orders).toBeLessThan(during)

          const copy = `${database}_copy`
          yield* pg.createDatabase(copy, { owner: "app" })
          const url = `gs://${made.bucket}/${manifestObject}`
          const restored = yield* restore(url, [`--dbname=${copy}`])
          expect(restored.exitCode, describeRun(restored)).toBe(0)
          expect(JSON.parse(restored.terminationMessage)).toMatchObject({ tables: 2, rowsVerified: true })
          expect(Number(yield* pg.psql("SELECT count(*) FROM shop.orders", { database: copy }))).toBe(orders)

          // A manifest whose counts are not the dump's: the restore refuses to commit.
          const altered = {
            ...manifest,
            tables: manifest.tables?.map((table) =>
              table.name === "orders" ? { ...table, rows: table.rows + 1 } : table
            )
          }
          yield* store.writeSmall(made.bucket, manifestObject, JSON.stringify(altered), {
            contentType: "application/json"
          })
          const other = `${database}_other`
          yield* pg.createDatabase(other, { owner: "app" })
          const refused = yield* restore(url, [`--dbname=${other}`])
          expect(refused.exitCode, describeRun(refused)).toBe(1)
          expect(refused.terminationMessage).toContain(`orders: ${orders} rows restored, ${orders + 1} in the backup`)
          expect(refused.terminationMessage).toContain("nothing was restored")
          expect(yield* schemasOf(other)).toBe("information_schema,public")
        })
    )

    it.effect("stopped by SIGTERM before it commits, it restores nothing", () =>
      Effect.gen(function* () {
        const pg = yield* Postgres
        const backup = yield* backUp("stopped")
        const database = backup.database
        yield* pg.psql("DELETE FROM shop.orders WHERE id > 100", { database })
        const before = yield* fingerprint(database)
        // Another session reads shop.orders in an open transaction: the restore's DROP SCHEMA waits for it.
        yield* pg
          .psql("BEGIN; LOCK TABLE shop.orders IN ACCESS SHARE MODE; SELECT pg_sleep(120); COMMIT;", { database })
          .pipe(Effect.ignore, Effect.forkScoped)
        const count = (sql: string) => Effect.map(pg.psql(sql, { database }), (text) => Number(text.trim()))
        yield* eventually(
          "the lock held",
          Effect.map(
            count("SELECT count(*) FROM pg_locks WHERE granted AND relation = 'shop.orders'::regclass"),
            (held) => (held > 0 ? true : undefined)
          )
        )
        const restoreWaiting = eventually(
          "the restore waiting on the lock",
          Effect.map(
            count("SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'shop.orders'::regclass"),
            (waiting) => (waiting > 0 ? true : undefined)
          ),
          { timeout: "60 seconds" }
        )
        const run = yield* restore(backup.url, ["--schema-exists=replace"], restoreWaiting)
        expect(run.exitCode, describeRun(run)).toBe(1)
        expect(run.terminationMessage).toBe(
          "restore failed: stopped (SIGTERM) before the restore committed: nothing was restored\n"
        )
        // The lock goes; the restore's session, whose psql was killed, must not commit anything.
        yield* pg.psql(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(120)%' AND pid <> pg_backend_pid()",
          { database }
        )
        yield* eventually(
          "the restore's session gone",
          Effect.map(
            count("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'db-backup-runner'"),
            (sessions) => (sessions === 0 ? true : undefined)
          )
        )
        expect(yield* fingerprint(database)).toBe(before)
      })
    )

    it.effect("restores a backup on a volume from its file:// URL, into an empty schema of that name", () =>
      Effect.gen(function* () {
        const fs = yield* FileSystem.FileSystem
        const pg = yield* Postgres
        const volume = yield* fs.makeTempDirectoryScoped({ prefix: "restore-volume-" })
        const backup = yield* backUp("volume", { bucket: volume, env: { BACKUP_STORE: "file" } })
        const copy = `${backup.database}_copy`
        yield* pg.createDatabase(copy, { owner: "app" })
        // The schema is there but empty (a migration tool made it): filled, not refused.
        yield* pg.psql("CREATE SCHEMA shop AUTHORIZATION app", { database: copy })
        const run = yield* restore(`file://${volume}/${backup.manifest}`, [`--dbname=${copy}`])
        expect(run.exitCode, describeRun(run)).toBe(0)
        expect(yield* fingerprint(copy)).toBe(yield* fingerprint(backup.database))
      })
    )

    it.effect("rejects unusable arguments with exit code 2, naming the argument", () =>
      Effect.gen(function* () {
        for (const [args, message] of [
          [["--port=99999"], "--port: 99999 is not a port"],
          [["--schema-exists=merge"], "--schema-exists: merge is neither fail nor replace"],
          [["--sslmode=maybe"], "--sslmode: maybe is not one of"],
          [["--identity-file=/nonexistent/key.txt"], "--identity-file: cannot read /nonexistent/key.txt"],
          [["--bogus"], "Unknown option '--bogus'"]
        ] as const) {
          const run = yield* restore("gs://b/backups/team/shop/backup-20250304-050607.json", args)
          expect(run.exitCode, describeRun(run)).toBe(2)
          expect(run.terminationMessage).toContain(message)
        }
        const notABackup = yield* restore("gs://b/some/file.sql")
        expect(notABackup.exitCode).toBe(2)
        expect(notABackup.terminationMessage).toContain("gs://b/some/file.sql is not a backup's URL")
      })
    )
  })
})
