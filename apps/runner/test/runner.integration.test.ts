import { gunzipSync, zstdDecompressSync } from "node:zlib"
import { decodeManifest, StorageLocation } from "@db-backup-operator/backup-api/contract"
import { eventually, GcsEmulator, Postgres } from "@db-backup-operator/testing"
import { NodeServices } from "@effect/platform-node"
import { assert, describe, expect, layer } from "@effect/vitest"
import { Effect, Fiber, FileSystem, Layer, Stream } from "effect"
import { ChildProcess, ChildProcessSpawner } from "effect/process"
import { describeRun, expectJsonLogs, expectNoSecrets, runRunner } from "./runRunner.ts"
import { appPassword, contractEnv, decoder, fingerprint, setup, sha256, storeOf } from "./shop.ts"

// The runner is tested as a Job runs it: the real binary, configured by env vars,
// against a real PostgreSQL and fake-gcs-server.
const TestEnv = Layer.mergeAll(Postgres.layer, GcsEmulator.layer, NodeServices.layer)

describe("db-backup-runner", () => {
  layer(TestEnv, { timeout: "170 seconds", excludeTestServices: true })((it) => {
    it.effect("backs up a schema that restores exactly, with a manifest whose sha256 matches the object", () =>
      Effect.gen(function* () {
        const pg = yield* Postgres
        const { database, bucket, prefix } = yield* setup("gzip")
        const object = `${prefix}backup-20250304-050607.sql.gz`
        const manifestObject = `${prefix}backup-20250304-050607.json`
        const run = yield* runRunner(yield* contractEnv({ database, bucket, object, manifest: manifestObject }))
        assert.strictEqual(run.exitCode, 0, `${run.terminationMessage}\n${run.logs.join("\n")}\n${run.stderr}`)
        expectJsonLogs(run)
        expectNoSecrets(run, [appPassword])

        const store = yield* storeOf
        const listed = yield* store.list(bucket, { prefix })
        expect(listed.map((o) => o.object).sort()).toEqual([manifestObject, object].sort())

        const bytes = yield* store.read(bucket, object)
        const manifest = yield* decodeManifest(decoder.decode(yield* store.read(bucket, manifestObject)))
        expect(manifest).toMatchObject({
          resource: { namespace: "team", name: "shop-backup" },
          bucket,
          object,
          compression: "gzip",
          database,
          schema: "shop",
          sizeBytes: bytes.byteLength
        })
        expect(manifest.sha256).toBe(sha256(bytes))
        // Every table's rows, read in the dump's own snapshot (the view is not a table).
        expect(manifest.tables).toEqual([
          { name: "customers", rows: 3000 },
          { name: "orders", rows: 6000 }
        ])
        expect(manifest.pgDumpVersion).toMatch(/^pg_dump \(PostgreSQL\) \d+/u)
        expect(Number(manifest.serverVersion)).toBeGreaterThanOrEqual(150000)
        expect(Date.parse(manifest.finishedAt)).toBeGreaterThanOrEqual(Date.parse(manifest.startedAt))
        expect(JSON.parse(run.terminationMessage)).toEqual({
          result: "Success",
          location: `gs://${bucket}/${object}`,
          manifest: `gs://${bucket}/${manifestObject}`,
          sizeBytes: bytes.byteLength,
          sha256: manifest.sha256,
          serverVersion: manifest.serverVersion,
          pgDumpVersion: manifest.pgDumpVersion,
          // The bucket's backups of the resource after the run: this one.
          catalog: ["20250304-050607"],
          catalogSize: 1
        })

        const sql = decoder.decode(gunzipSync(bytes))
        expect(sql).toContain("PostgreSQL database dump")
        expect(sql).not.toContain("must-not-be-dumped")
        expect(sql).not.toContain("other.secrets")

        // Restore into an empty database: every row and sequence comes back identical.
        yield* pg.createDatabase(`${database}_restored`)
        yield* pg.psql(sql, { database: `${database}_restored` })
        const original = yield* fingerprint(database)
        expect(original.startsWith("3000 ")).toBe(true)
        expect(yield* fingerprint(`${database}_restored`)).toBe(original)
      })
    )

    it.effect("with a retention, prunes older backups and lists them in the termination message", () =>
      Effect.gen(function* () {
        const { database, bucket, prefix } = yield* setup("retain")
        const store = yield* storeOf
        const earlier = ["20250301-000000", "20250302-000000", "20250303-000000"]
        for (const stamp of earlier) {
          for (const name of [`${prefix}backup-${stamp}.sql.gz`, `${prefix}backup-${stamp}.json`]) {
            yield* store.writeSmall(bucket, name, "{}", { contentType: "application/octet-stream" })
          }
        }
        // A run that failed after its upload: deleted too, but not a backup.
        yield* store.writeSmall(bucket, `${prefix}backup-20250303-120000.sql.gz`, "x", {
          contentType: "application/octet-stream"
        })
        const object = `${prefix}backup-20250304-050607.sql.gz`
        const manifestObject = `${prefix}backup-20250304-050607.json`
        const run = yield* runRunner({
          ...(yield* contractEnv({ database, bucket, object, manifest: manifestObject })),
          BACKUP_RETENTION: "keepLast=2"
        })
        assert.strictEqual(run.exitCode, 0, `${run.terminationMessage}\n${run.logs.join("\n")}`)
        const listed = yield* store.list(bucket, { prefix })
        expect(listed.map((o) => o.object).sort()).toEqual(
          [
            `${prefix}backup-20250303-000000.sql.gz`,
            `${prefix}backup-20250303-000000.json`,
            object,
            manifestObject
          ].sort()
        )
        const manifest = yield* decodeManifest(decoder.decode(yield* store.read(bucket, manifestObject)))
        expect(run.terminationMessage.trimEnd().split("\n")).toHaveLength(1)
        expect(JSON.parse(run.terminationMessage)).toEqual({
          result: "Success",
          location: `gs://${bucket}/${object}`,
          manifest: `gs://${bucket}/${manifestObject}`,
          sizeBytes: manifest.sizeBytes,
          sha256: manifest.sha256,
          serverVersion: manifest.serverVersion,
          pgDumpVersion: manifest.pgDumpVersion,
          retainedBackups: 2,
          deletedBackups: 3,
          deletedRuns: ["20250301-000000", "20250302-000000"],
          // Listed after retention: what is left, newest first.
          catalog: ["20250304-050607", "20250303-000000"],
          catalogSize: 2
        })
      })
    )

    it.effect("stores an uncompressed dump with compression none", () =>
      Effect.gen(function* () {
        const pg = yield* Postgres
        const { database, bucket, prefix } = yield* setup("plain")
        const object = `${prefix}backup-20250304-050607.sql`
        const manifestObject = `${prefix}backup-20250304-050607.json`
        const run = yield* runRunner(
          yield* contractEnv({ database, bucket, object, manifest: manifestObject, compression: "none" })
        )
        assert.strictEqual(run.exitCode, 0, `${run.terminationMessage}\n${run.logs.join("\n")}`)
        const store = yield* storeOf
        const bytes = yield* store.read(bucket, object)
        const manifest = yield* decodeManifest(decoder.decode(yield* store.read(bucket, manifestObject)))
        expect(manifest.compression).toBe("none")
        expect(manifest.sha256).toBe(sha256(bytes))
        expect(manifest.sizeBytes).toBe(bytes.byteLength)
        const sql = decoder.decode(bytes)
        expect(sql.startsWith("--\n-- PostgreSQL database dump")).toBe(true)
        yield* pg.createDatabase(`${database}_restored`)
        yield* pg.psql(sql, { database: `${database}_restored` })
        expect(yield* fingerprint(`${database}_restored`)).toBe(yield* fingerprint(database))
      })
    )

    it.effect("stores a zstd dump (.sql.zst) that decompresses to a dump that restores exactly", () =>
      Effect.gen(function* () {
        const pg = yield* Postgres
        const { database, bucket, prefix } = yield* setup("zstd")
        const object = `${prefix}backup-20250304-050607.sql.zst`
        const manifestObject = `${prefix}backup-20250304-050607.json`
        const run = yield* runRunner(
          yield* contractEnv({ database, bucket, object, manifest: manifestObject, compression: "zstd" })
        )
        assert.strictEqual(run.exitCode, 0, `${run.terminationMessage}\n${run.logs.join("\n")}`)
        const store = yield* storeOf
        const bytes = yield* store.read(bucket, object)
        const manifest = yield* decodeManifest(decoder.decode(yield* store.read(bucket, manifestObject)))
        expect(manifest.compression).toBe("zstd")
        expect(manifest.sha256).toBe(sha256(bytes))
        // The zstd magic number, then a dump.
        expect([...bytes.subarray(0, 4)]).toEqual([0x28, 0xb5, 0x2f, 0xfd])
        const sql = decoder.decode(zstdDecompressSync(bytes))
        expect(sql.startsWith("--\n-- PostgreSQL database dump")).toBe(true)
        yield* pg.createDatabase(`${database}_restored`)
        yield* pg.psql(sql, { database: `${database}_restored` })
        expect(yield* fingerprint(`${database}_restored`)).toBe(yield* fingerprint(database))
      })
    )

    it.effect(
      "stores a custom-format archive (.dump.gz) that pg_restore reads from a pipe, its format in the manifest",
      () =>
        Effect.gen(function* () {
          const { database, bucket, prefix } = yield* setup("custom")
          // Named as the controller names a custom-format run's objects.
          const { object, manifest: manifestObject } = StorageLocation.backupObjects({
            namespace: "team",
            name: "shop-backup",
            startedAt: new Date("2025-03-04T05:06:07Z"),
            compression: "gzip",
            format: "custom"
          })
          expect(object).toBe(`${prefix}backup-20250304-050607.dump.gz`)
          expect(manifestObject).toBe(`${prefix}backup-20250304-050607.json`)
          const run = yield* runRunner({
            ...(yield* contractEnv({ database, bucket, object, manifest: manifestObject })),
            BACKUP_FORMAT: "custom"
          })
          assert.strictEqual(run.exitCode, 0, describeRun(run))
          expect(JSON.parse(run.terminationMessage)).toMatchObject({
            result: "Success",
            location: `gs://${bucket}/${object}`
          })
          const store = yield* storeOf
          expect((yield* store.list(bucket, { prefix })).map((o) => o.object).sort()).toEqual(
            [manifestObject, object].sort()
          )
          const bytes = yield* store.read(bucket, object)
          const manifest = yield* decodeManifest(decoder.decode(yield* store.read(bucket, manifestObject)))
          expect(manifest).toMatchObject({ object, format: "custom", compression: "gzip", sizeBytes: bytes.byteLength })
          expect(manifest.sha256).toBe(sha256(bytes))
          expect(manifest.tables).toEqual([
            { name: "customers", rows: 3000 },
            { name: "orders", rows: 6000 }
          ])

          // Gzip by the runner around pg_dump's archive, which pg_dump itself left uncompressed.
          const archive = gunzipSync(bytes)
          expect(archive.subarray(0, 5).toString("latin1")).toBe("PGDMP")
          // Read as restore reads it: from a pipe, which pg_restore cannot seek in.
          const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
          const listing = yield* spawner.string(
            ChildProcess.make("pg_restore", ["--list"], { stdin: Stream.make(new Uint8Array(archive)) })
          )
          expect(listing).toMatch(/^;\s+Format: CUSTOM$/mu)
          expect(listing).toMatch(/^;\s+Compression: (0|none)$/mu)
          for (const entry of ["TABLE DATA shop customers", "TABLE DATA shop orders", "VIEW shop big_spenders"]) {
            expect(listing).toContain(entry)
          }
          expect(listing).not.toContain("secrets")
        })
    )

    it.effect("fails readably on a wrong password and stores nothing", () =>
      Effect.gen(function* () {
        const { database, bucket, prefix } = yield* setup("badpw")
        const wrong = "wrong-Pa55word-xyzzy"
        const run = yield* runRunner(
          yield* contractEnv({
            database,
            bucket,
            object: `${prefix}backup-20250304-050607.sql.gz`,
            manifest: `${prefix}backup-20250304-050607.json`,
            password: wrong
          })
        )
        expect(run.exitCode).not.toBe(0)
        expect(run.terminationMessage.trimEnd().split("\n")).toHaveLength(1)
        expect(run.terminationMessage).toMatch(
          /^backup failed: cannot connect to PostgreSQL at .*password authentication failed for user "app"\n$/u
        )
        expectJsonLogs(run)
        expectNoSecrets(run, [wrong, appPassword])
        const store = yield* storeOf
        expect(yield* store.list(bucket)).toEqual([])
      })
    )

    it.effect("fails naming the schema when it does not exist, and stores nothing", () =>
      Effect.gen(function* () {
        const { database, bucket, prefix } = yield* setup("noschema")
        const run = yield* runRunner({
          ...(yield* contractEnv({
            database,
            bucket,
            object: `${prefix}backup-20250304-050607.sql.gz`,
            manifest: `${prefix}backup-20250304-050607.json`,
            password: appPassword
          })),
          DB_SCHEMA: "billing"
        })
        expect(run.exitCode).not.toBe(0)
        expect(run.terminationMessage).toMatch(
          /^backup failed: pg_dump failed \(exit code 1\): schema "billing" \(spec.dbSchema\) does not exist in database "shop_noschema"/u
        )
        const store = yield* storeOf
        expect(yield* store.list(bucket)).toEqual([])
      })
    )

    it.effect("fails before dumping when the bucket does not exist, naming it", () =>
      Effect.gen(function* () {
        const { database, prefix } = yield* setup("nobucket")
        const run = yield* runRunner(
          yield* contractEnv({
            database,
            bucket: "no-such-bucket-here",
            object: `${prefix}backup-20250304-050607.sql.gz`,
            manifest: `${prefix}backup-20250304-050607.json`,
            password: appPassword
          })
        )
        expect(run.exitCode).not.toBe(0)
        expect(run.terminationMessage).toMatch(
          /^backup failed: gs:\/\/no-such-bucket-here cannot be written \(checked before the dump\): write gs:\/\/no-such-bucket-here\/backups\/team\/shop-backup\/.write-check failed \(HTTP 404\)/u
        )
        // Nothing was dumped or stored.
        expect(run.logs.join("\n")).not.toContain("dump stored")
      })
    )

    it.effect("fails before dumping when the location cannot be written, and leaves no check object behind", () =>
      Effect.gen(function* () {
        const fs = yield* FileSystem.FileSystem
        const { database, prefix } = yield* setup("readonly")
        // A volume the runner's user may read but not write: root's, mode 0755 (a PVC whose
        // filesystem root the Pod's fsGroup does not own).
        const volume = yield* fs.makeTempDirectoryScoped({ prefix: "runner-volume-" })
        yield* fs.chmod(volume, 0o755)
        const env = {
          ...(yield* contractEnv({
            database,
            bucket: volume,
            object: `${prefix}backup-20250304-050607.sql.gz`,
            manifest: `${prefix}backup-20250304-050607.json`,
            password: appPassword
          })),
          BACKUP_STORE: "file"
        }
        const denied = yield* runRunner(env, { uid: 65534 })
        expect(denied.exitCode, describeRun(denied)).not.toBe(0)
        expect(denied.terminationMessage).toContain(
          `backup failed: file://${volume} cannot be written (checked before the dump): `
        )
        expect(denied.terminationMessage).toContain("permission denied")
        expect(denied.logs.join("\n")).not.toContain("dump stored")
        expect(yield* fs.readDirectory(volume)).toEqual([])

        // Once the user owns it, the same run succeeds, and the check object is gone again.
        yield* fs.chown(volume, 65534, 65534)
        const allowed = yield* runRunner(env, { uid: 65534 })
        expect(allowed.exitCode, describeRun(allowed)).toBe(0)
        const stored = yield* fs.readDirectory(`${volume}/backups/team/shop-backup`)
        expect([...stored].sort()).toEqual(["backup-20250304-050607.json", "backup-20250304-050607.sql.gz"])
      })
    )

    it.effect("aborts the upload when pg_dump fails after streaming megabytes, leaving no object", () =>
      Effect.gen(function* () {
        const pg = yield* Postgres
        const { database, bucket, prefix } = yield* setup("midway")
        // As superuser-owned tables: pg_dump streams a_big (~10 MB), then fails on z_rls, since a non-owner
        // cannot dump a table with row-level security. The upload has received megabytes by then.
        yield* pg.psql(
          `
          CREATE TABLE shop.a_big (id int PRIMARY KEY, v text);
          INSERT INTO shop.a_big SELECT g, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text) || md5((g * 31)::text)
            FROM generate_series(1, 70000) AS g;
          CREATE TABLE shop.z_rls (id int);
          ALTER TABLE shop.z_rls ENABLE ROW LEVEL SECURITY;
          CREATE POLICY p ON shop.z_rls USING (true);
          GRANT USAGE ON SCHEMA shop TO app;
          GRANT SELECT ON ALL TABLES IN SCHEMA shop TO app;
          GRANT SELECT ON ALL SEQUENCES IN SCHEMA shop TO app;
          `,
          { database }
        )
        const run = yield* runRunner(
          yield* contractEnv({
            database,
            bucket,
            object: `${prefix}backup-20250304-050607.sql.gz`,
            manifest: `${prefix}backup-20250304-050607.json`
          })
        )
        expect(run.exitCode).not.toBe(0)
        expect(run.terminationMessage).toMatch(
          /^backup failed: pg_dump failed \(exit code 1\): .*row-level security policy for table "z_rls"\n$/u
        )
        const store = yield* storeOf
        expect(yield* store.list(bucket)).toEqual([])
      })
    )

    it.effect("stops on SIGTERM while the dump streams: exit 1, the upload aborted, nothing stored", () =>
      Effect.gen(function* () {
        const pg = yield* Postgres
        const { database, bucket, prefix } = yield* setup("stopped")
        // pg_dump waits for this lock: the run is mid-dump, with the upload open, when SIGTERM comes.
        const lock = yield* Effect.forkChild(
          pg.psql("BEGIN; LOCK TABLE shop.orders IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60); COMMIT;", {
            database
          })
        )
        yield* eventually(
          "the lock on shop.orders",
          Effect.map(
            pg.psql(
              "SELECT count(*) FROM pg_locks WHERE relation = 'shop.orders'::regclass AND mode = 'AccessExclusiveLock' AND granted",
              { database }
            ),
            (count) => (count.trim() === "1" ? true : undefined)
          )
        )
        const run = yield* runRunner(
          yield* contractEnv({
            database,
            bucket,
            object: `${prefix}backup-20250304-050607.sql.gz`,
            manifest: `${prefix}backup-20250304-050607.json`
          }),
          { terminateAt: "backup in progress" }
        )
        yield* Fiber.interrupt(lock)
        // Had it waited for the lock instead, it would have dumped and exited 0.
        expect(run.exitCode, describeRun(run)).toBe(1)
        expect(run.terminationMessage).toBe(
          "backup failed: stopped (SIGTERM) before the dump was stored: the upload was aborted, nothing of this run was kept\n"
        )
        const store = yield* storeOf
        expect(yield* store.list(bucket)).toEqual([])
      })
    )

    it.effect("finishes on SIGTERM once the dump is stored: the manifest is written, exit 0", () =>
      Effect.gen(function* () {
        const { database, bucket, prefix } = yield* setup("stored")
        const object = `${prefix}backup-20250304-050607.sql.gz`
        const manifestObject = `${prefix}backup-20250304-050607.json`
        const run = yield* runRunner(yield* contractEnv({ database, bucket, object, manifest: manifestObject }), {
          terminateAt: "dump stored"
        })
        expect(run.exitCode, describeRun(run)).toBe(0)
        expect(JSON.parse(run.terminationMessage)).toMatchObject({
          result: "Success",
          location: `gs://${bucket}/${object}`
        })
        const store = yield* storeOf
        expect((yield* store.list(bucket)).map((info) => info.object).sort()).toEqual([manifestObject, object].sort())
        // A retry of the same run (a new Pod of the same Job) reports it without dumping again.
        const retry = yield* runRunner(yield* contractEnv({ database, bucket, object, manifest: manifestObject }))
        expect(retry.exitCode, describeRun(retry)).toBe(0)
        expect(retry.terminationMessage).toBe(run.terminationMessage)
        expect(retry.logs.some((line) => line.includes("backup already complete"))).toBe(true)
      })
    )

    it.effect("rejects an incomplete contract with exit code 2 and names the variable", () =>
      Effect.gen(function* () {
        const run = yield* runRunner({ DB_HOST: "127.0.0.1" })
        expect(run.exitCode).toBe(2)
        expect(run.terminationMessage).toBe("backup failed: environment variable DB_PORT is required but not set\n")
      })
    )
  })
})
