import { type Backup, Restore } from "@db-backup-operator/backup-api"
import { KubeClient } from "@db-backup-operator/kube"
import { GcsEmulator, Postgres } from "@db-backup-operator/testing"
import { assert, layer } from "@effect/vitest"
import { generateIdentity, identityToRecipient } from "age-encryption"
import { Effect } from "effect"
import { KnownSecrets } from "../stack/secretLeaks.ts"
import * as E2E from "./environment.ts"
import {
  applyYaml,
  backupRecords,
  createPasswordSecret,
  eventsIn,
  eventually,
  getBackup,
  kubectl,
  originalExample,
  parseGsUrl,
  prepareNamespace,
  seedExampleDatabase,
  storage,
  succeeded,
  withSpec
} from "./support.ts"

// The Restore kind end to end: the operator resolves the source, runs the runner image's
// `db-backup-runner restore` as a Job on the process node, and records the outcome. Every
// check compares the tables themselves (count and md5 of every row) with what was backed up.

const password = "rest0re-Pa55"

/** Count and md5 of every row of the example schema's tables, and the notes sequence: equal means identical. */
const fingerprint = (database: string) =>
  Postgres.use((pg) =>
    pg.psql(
      `SELECT (SELECT count(*) FROM api.items) || ' ' || (SELECT md5(string_agg(i::text, E'\\n' ORDER BY id)) FROM api.items i)
         || ' ' || (SELECT count(*) FROM api.notes) || ' ' || (SELECT md5(string_agg(n::text, E'\\n' ORDER BY id)) FROM api.notes n)
         || ' ' || (SELECT last_value FROM api.notes_id_seq)`,
      { database }
    )
  )

/** Rows deleted and changed: what a restore must undo. */
const damage = (database: string) =>
  Postgres.use((pg) =>
    pg.psql(
      "DELETE FROM api.items WHERE id > 100; UPDATE api.notes SET body = 'changed'; INSERT INTO api.notes DEFAULT VALUES",
      {
        database
      }
    )
  )

const restoreYaml = (namespace: string, name: string, spec: ReadonlyArray<string>) =>
  [
    "apiVersion: backup.csyeteam03.xyz/v1",
    "kind: Restore",
    "metadata:",
    `  name: ${name}`,
    `  namespace: ${namespace}`,
    "spec:"
  ]
    .concat(spec.map((line) => `  ${line}`))
    .join("\n")

/** One byte in the middle of a stored dump flipped, as by a bad disk or a tamperer. */
const changeOneByte = (location: string) =>
  Effect.gen(function* () {
    const gcs = yield* GcsEmulator
    const { bucket, object } = parseGsUrl(location)
    const file = storage(gcs.endpoint).bucket(bucket).file(object)
    const [bytes] = yield* Effect.promise(() => file.download())
    const middle = Math.floor(bytes.length / 2)
    bytes[middle] = (bytes[middle] ?? 0) ^ 0xff
    yield* Effect.promise(() => file.save(bytes, { resumable: false }))
  })

const getRestore = (namespace: string, name: string) => KubeClient.use((kube) => kube.get(Restore, name, { namespace }))

/** Waits for the Restore to end (Succeeded or Failed) and returns it. */
const ended = (namespace: string, name: string) =>
  eventually(
    `Restore ${namespace}/${name} ended`,
    getRestore(namespace, name).pipe(
      Effect.map((restore) =>
        restore.status?.phase === "Succeeded" || restore.status?.phase === "Failed" ? restore : undefined
      ),
      // Not there yet: a verification's Restore is created by the operator.
      Effect.catchTag("NotFound", () => Effect.succeed(undefined))
    ),
    "180 seconds"
  )

/** The example resource backed up once (its first run), and its successful record. */
const backedUp = (namespace: string, extra: ReadonlyArray<string> = []) =>
  Effect.gen(function* () {
    const pg = yield* Postgres
    const applied = yield* applyYaml(withSpec(originalExample({ namespace, dbHost: pg.host, dbPort: pg.port }), extra))
    assert.strictEqual(applied.exitCode, 0, applied.stderr)
    yield* succeeded(namespace)
    const records = yield* backupRecords(namespace)
    const record = records.find((run) => run.status?.phase === "Succeeded")
    assert.isDefined(record)
    return record as Backup
  })

layer(E2E.layer, { timeout: "600 seconds", excludeTestServices: true })("Restore end to end", (it) => {
  it.effect(
    "replaces a damaged schema with its latest backup: rows identical, status, Event and printer columns tell what was restored",
    () =>
      Effect.gen(function* () {
        yield* seedExampleDatabase(password)
        const namespace = "restore-replace"
        yield* prepareNamespace(namespace, { name: "backup-secret", password })
        const before = yield* fingerprint("api")
        const record = yield* backedUp(namespace)
        yield* damage("api")
        assert.notStrictEqual(yield* fingerprint("api"), before)

        const applied = yield* applyYaml(
          restoreYaml(namespace, "undo", [
            "source: { backupDatabaseSchemaName: database-backup }",
            "schemaExists: Replace"
          ])
        )
        assert.strictEqual(applied.exitCode, 0, applied.stderr)
        const restore = yield* ended(namespace, "undo")
        assert.strictEqual(restore.status?.phase, "Succeeded", JSON.stringify(restore.status))
        assert.strictEqual(yield* fingerprint("api"), before)

        assert.strictEqual(restore.status?.backupName, record.metadata.name)
        assert.strictEqual(restore.status?.location, record.status?.manifestLocation)
        assert.strictEqual(restore.status?.tables, 2)
        assert.strictEqual(restore.status?.rowsVerified, true)
        assert.strictEqual(restore.status?.sizeBytes, record.status?.sizeBytes)
        assert.match(restore.status?.target ?? "", /^127\.0\.0\.1:\d+\/api\/api$/u)
        const condition = restore.status?.conditions?.find((c) => c.type === "Succeeded")
        assert.strictEqual(condition?.status, "True")
        assert.strictEqual(condition?.reason, "Restored")

        const events = yield* eventsIn(namespace)
        const reasons = events.filter((event) => event.regarding?.name === "undo").map((event) => event.reason)
        assert.includeMembers(reasons, ["RestoreStarted", "RestoreSucceeded"])

        const table = yield* kubectl(["get", "restores", "-n", namespace])
        assert.match(table, /NAME\s+BACKUP\s+PHASE\s+TARGET\s+TABLES/u)
        assert.match(
          table,
          new RegExp(`undo\\s+${record.metadata.name}\\s+Succeeded\\s+127\\.0\\.0\\.1:\\d+/api/api\\s+2`, "u")
        )
      }),
    { timeout: 300_000 }
  )

  it.effect(
    "waits for a first backup, then restores into another database as another role; fails while the schema is there",
    () =>
      Effect.gen(function* () {
        const pg = yield* Postgres
        const namespace = "restore-elsewhere"
        yield* prepareNamespace(namespace, { name: "backup-secret", password })
        yield* pg.createRole("restorer", "rest0rer-Pa55")
        yield* createPasswordSecret(namespace, { name: "restorer-secret", password: "rest0rer-Pa55" })
        yield* pg.createDatabase("elsewhere", { owner: "restorer" })
        const target = [
          "target:",
          "  dbName: elsewhere",
          "  dbUser: restorer",
          "  dbPasswordSecretName: restorer-secret",
          "  dbPasswordSecretKey: password",
          "noOwner: true",
          "noPrivileges: true"
        ]
        // The Restore first: it waits for the resource's first successful backup.
        const applied = yield* applyYaml(
          restoreYaml(namespace, "copy", ["source: { backupDatabaseSchemaName: database-backup }", ...target])
        )
        assert.strictEqual(applied.exitCode, 0, applied.stderr)
        const pending = yield* eventually(
          "Restore Pending",
          Effect.map(getRestore(namespace, "copy"), (r) => (r.status?.phase === "Pending" ? r : undefined))
        )
        assert.include(pending.status?.message ?? "", "waits for a successful backup of BackupDatabaseSchema")
        yield* backedUp(namespace)
        const copy = yield* ended(namespace, "copy")
        assert.strictEqual(copy.status?.phase, "Succeeded", JSON.stringify(copy.status))
        assert.strictEqual(yield* fingerprint("elsewhere"), yield* fingerprint("api"))
        // Everything restored belongs to the restoring role (--no-owner).
        assert.strictEqual(
          yield* pg.psql("SELECT string_agg(DISTINCT tableowner, ',') FROM pg_tables WHERE schemaname = 'api'", {
            database: "elsewhere"
          }),
          "restorer"
        )

        // Again, without Replace: the schema is there, so nothing is restored and the Restore says why.
        yield* pg.psql("DELETE FROM api.items WHERE id > 10", { database: "elsewhere" })
        const kept = yield* fingerprint("elsewhere")
        yield* applyYaml(
          restoreYaml(namespace, "again", ["source: { backupDatabaseSchemaName: database-backup }", ...target])
        )
        const again = yield* ended(namespace, "again")
        assert.strictEqual(again.status?.phase, "Failed")
        assert.include(again.status?.message ?? "", 'schema "api" already exists in database "elsewhere"')
        assert.strictEqual(yield* fingerprint("elsewhere"), kept)
      }),
    { timeout: 300_000 }
  )

  it.effect(
    "a changed byte in the stored dump fails the restore naming the checksum, and the target is unchanged",
    () =>
      Effect.gen(function* () {
        const namespace = "restore-tampered"
        yield* prepareNamespace(namespace, { name: "backup-secret", password })
        const record = yield* backedUp(namespace)
        yield* changeOneByte(record.status?.location ?? "")

        yield* damage("api")
        const damaged = yield* fingerprint("api")
        yield* applyYaml(
          restoreYaml(namespace, "tampered", [
            `source: { backupName: ${record.metadata.name} }`,
            "schemaExists: Replace"
          ])
        )
        const restore = yield* ended(namespace, "tampered")
        assert.strictEqual(restore.status?.phase, "Failed")
        assert.include(restore.status?.message ?? "", "does not match its manifest's checksum")
        assert.include(restore.status?.message ?? "", "nothing was restored")
        assert.strictEqual(restore.status?.conditions?.find((c) => c.type === "Succeeded")?.reason, "RestoreFailed")
        assert.strictEqual(yield* fingerprint("api"), damaged)
        const warnings = (yield* eventsIn(namespace)).filter(
          (event) => event.regarding?.name === "tampered" && event.reason === "RestoreFailed"
        )
        assert.strictEqual(warnings.length, 1)
      }),
    { timeout: 300_000 }
  )

  it.effect(
    "an encrypted backup restores with the identity from a Secret, from its URL alone, and fails clearly without it",
    () =>
      Effect.gen(function* () {
        const pg = yield* Postgres
        const namespace = "restore-encrypted"
        yield* prepareNamespace(namespace, { name: "backup-secret", password })
        const identity = yield* Effect.promise(() => generateIdentity())
        const recipient = yield* Effect.promise(() => identityToRecipient(identity))
        yield* KnownSecrets.use((secrets) => secrets.add(identity))
        yield* kubectl([
          "create",
          "secret",
          "generic",
          "age-key",
          "-n",
          namespace,
          `--from-literal=identity=${identity}`
        ])
        const record = yield* backedUp(namespace, ["encryption:", `  ageRecipients: ["${recipient}"]`])
        assert.match(record.status?.location ?? "", /\.sql\.gz\.age$/u)
        yield* pg.createDatabase("decrypted", { owner: "team03" })
        yield* pg.createDatabase("undecrypted", { owner: "team03" })
        const target = (database: string) => [
          "target:",
          `  dbName: ${database}`,
          "  dbUser: team03",
          "  dbPasswordSecretName: backup-secret",
          "  dbPasswordSecretKey: password"
        ]

        // No Backup record needed: the manifest's URL, as after the cluster was lost.
        yield* applyYaml(
          restoreYaml(namespace, "with-key", [
            `source: { location: "${record.status?.manifestLocation}" }`,
            ...target("decrypted"),
            "decryption: { ageIdentitySecretRef: { name: age-key, key: identity } }"
          ])
        )
        const decrypted = yield* ended(namespace, "with-key")
        assert.strictEqual(decrypted.status?.phase, "Succeeded", JSON.stringify(decrypted.status))
        assert.strictEqual(yield* fingerprint("decrypted"), yield* fingerprint("api"))
        assert.isUndefined(decrypted.status?.backupName)

        yield* applyYaml(
          restoreYaml(namespace, "without-key", [
            `source: { backupName: ${record.metadata.name} }`,
            ...target("undecrypted")
          ])
        )
        const refused = yield* ended(namespace, "without-key")
        assert.strictEqual(refused.status?.phase, "Failed")
        assert.include(refused.status?.message ?? "", `is encrypted (age, to ${recipient})`)
        assert.include(refused.status?.message ?? "", "spec.decryption.ageIdentitySecretRef")
        assert.strictEqual(
          yield* pg.psql("SELECT count(*) FROM pg_namespace WHERE nspname = 'api'", { database: "undecrypted" }),
          "0"
        )
      }),
    { timeout: 300_000 }
  )

  it.effect(
    "a custom-format backup (pg_dump --format=custom) restores through pg_restore in the same one transaction",
    () =>
      Effect.gen(function* () {
        const namespace = "restore-custom"
        yield* prepareNamespace(namespace, { name: "backup-secret", password })
        const record = yield* backedUp(namespace, ["format: custom"])
        assert.match(record.status?.location ?? "", /\/backup-\d{8}-\d{6}\.dump\.gz$/u)
        const before = yield* fingerprint("api")
        yield* damage("api")
        yield* applyYaml(
          restoreYaml(namespace, "custom", [`source: { backupName: ${record.metadata.name} }`, "schemaExists: Replace"])
        )
        const restore = yield* ended(namespace, "custom")
        assert.strictEqual(restore.status?.phase, "Succeeded", JSON.stringify(restore.status))
        assert.strictEqual(restore.status?.rowsVerified, true)
        assert.strictEqual(yield* fingerprint("api"), before)
      }),
    { timeout: 300_000 }
  )

  it.effect(
    "Backup records lost with the resource come back from the bucket when it is applied again, and restore",
    () =>
      Effect.gen(function* () {
        const pg = yield* Postgres
        const namespace = "restore-catalog"
        yield* prepareNamespace(namespace, { name: "backup-secret", password })
        const first = yield* backedUp(namespace)
        const atFirst = yield* fingerprint("api")
        // The resource and its records go (as with the cluster); its backups stay in the bucket.
        yield* kubectl(["delete", "backupdatabaseschema", "database-backup", "-n", namespace, "--wait=true"])
        assert.deepStrictEqual(yield* backupRecords(namespace), [])
        yield* pg.psql("INSERT INTO api.notes (body) VALUES ('after the first backup')", { database: "api" })

        // Applied again: its first run's catalog brings the old backup's record back.
        yield* backedUp(namespace)
        const rebuilt = yield* eventually(
          "the first backup's record rebuilt",
          Effect.map(backupRecords(namespace), (records) =>
            records.find((record) => record.metadata.name === first.metadata.name)
          )
        )
        assert.strictEqual(rebuilt.status?.phase, "Succeeded")
        assert.strictEqual(rebuilt.status?.manifestLocation, first.status?.manifestLocation)
        assert.include(rebuilt.status?.message ?? "", "rebuilt from its manifest")
        const events = yield* eventsIn(namespace)
        assert.isTrue(events.some((event) => event.reason === "BackupRecordsRebuilt"))

        // Deleted by hand: the next run (one asked for now) brings it back again.
        yield* kubectl(["delete", "backup", first.metadata.name ?? "", "-n", namespace])
        const now = yield* applyYaml(
          [
            "apiVersion: backup.csyeteam03.xyz/v1",
            "kind: Backup",
            "metadata:",
            "  name: now",
            `  namespace: ${namespace}`,
            "spec:",
            "  backupDatabaseSchemaName: database-backup"
          ].join("\n")
        )
        assert.strictEqual(now.exitCode, 0, now.stderr)
        yield* eventually(
          "the record rebuilt again",
          Effect.map(backupRecords(namespace), (records) =>
            records.find(
              (record) => record.metadata.name === first.metadata.name && record.status?.phase === "Succeeded"
            )
          )
        )

        // And it restores: the row added after it is gone.
        yield* applyYaml(
          restoreYaml(namespace, "from-rebuilt", [
            `source: { backupName: ${first.metadata.name} }`,
            "schemaExists: Replace"
          ])
        )
        const restore = yield* ended(namespace, "from-rebuilt")
        assert.strictEqual(restore.status?.phase, "Succeeded", JSON.stringify(restore.status))
        assert.strictEqual(yield* fingerprint("api"), atFirst)
      }),
    { timeout: 300_000 }
  )

  it.effect(
    "spec.verification verifies each backup in a scratch database (Verified, lastVerifiedTime); a changed dump fails verification",
    () =>
      Effect.gen(function* () {
        const pg = yield* Postgres
        const namespace = "restore-verify"
        yield* prepareNamespace(namespace, { name: "backup-secret", password })
        const scratchDatabases = pg.psql(
          "SELECT count(*) FROM pg_database WHERE datname LIKE 'db\\_backup\\_verify\\_%'",
          { database: "postgres" }
        )
        yield* pg.psql("ALTER ROLE team03 CREATEDB")
        const before = yield* fingerprint("api")
        const record = yield* backedUp(namespace, ["verification: {}"])
        const name = record.metadata.name ?? ""

        const verification = yield* ended(namespace, `${name}-verify`)
        assert.strictEqual(verification.status?.phase, "Succeeded", JSON.stringify(verification.status))
        assert.strictEqual(verification.status?.rowsVerified, true)
        const verified = yield* eventually(
          "the record Verified",
          Effect.map(backupRecords(namespace), (records) =>
            records.find(
              (candidate) =>
                candidate.metadata.name === name &&
                candidate.status?.conditions?.some((c) => c.type === "Verified" && c.status === "True")
            )
          )
        )
        const condition = verified.status?.conditions?.find((c) => c.type === "Verified")
        const resource = yield* eventually(
          "status.lastVerifiedTime",
          Effect.map(getBackup(namespace, "database-backup"), (r) =>
            r.status?.lastVerifiedTime === undefined ? undefined : r
          )
        )
        assert.strictEqual(resource.status?.lastVerifiedTime, condition?.lastTransitionTime)
        assert.strictEqual(yield* scratchDatabases, "0")
        assert.strictEqual(yield* fingerprint("api"), before, "verification never touches the database")
        yield* eventually(
          "a BackupVerified Event on the record",
          Effect.map(eventsIn(namespace), (events) =>
            events.find((event) => event.reason === "BackupVerified" && event.regarding?.kind === "Backup")
          )
        )

        // One byte of the dump changed: a verification asked for now fails, naming the checksum.
        yield* changeOneByte(record.status?.location ?? "")
        yield* applyYaml(restoreYaml(namespace, "check", [`source: { backupName: ${name} }`, "verify: true"]))
        const check = yield* ended(namespace, "check")
        assert.strictEqual(check.status?.phase, "Failed")
        assert.include(check.status?.message ?? "", "does not match its manifest's checksum")
        const failed = yield* eventually(
          "the record Verified=False",
          Effect.map(backupRecords(namespace), (records) =>
            records.find(
              (candidate) =>
                candidate.metadata.name === name &&
                candidate.status?.conditions?.some((c) => c.type === "Verified" && c.status === "False")
            )
          )
        )
        assert.include(failed.status?.conditions?.find((c) => c.type === "Verified")?.message ?? "", "checksum")
        assert.strictEqual(yield* scratchDatabases, "0")
        yield* pg.psql("ALTER ROLE team03 NOCREATEDB")
      }),
    { timeout: 300_000 }
  )

  it.effect(
    "spec.verification.schedule verifies the newest backup at its own slots",
    () =>
      Effect.gen(function* () {
        const pg = yield* Postgres
        const namespace = "restore-verify-schedule"
        yield* prepareNamespace(namespace, { name: "backup-secret", password })
        yield* pg.psql("ALTER ROLE team03 CREATEDB")
        const record = yield* backedUp(namespace, ["verification:", '  schedule: "@every 15s"'])
        const verification = yield* ended(namespace, `${record.metadata.name ?? ""}-verify`)
        assert.strictEqual(verification.status?.phase, "Succeeded", JSON.stringify(verification.status))
        const resource = yield* eventually(
          "status.lastVerifiedTime",
          Effect.map(getBackup(namespace, "database-backup"), (r) =>
            r.status?.lastVerifiedTime === undefined ? undefined : r
          )
        )
        assert.isDefined(resource.status?.lastVerificationScheduleTime)
        yield* pg.psql("ALTER ROLE team03 NOCREATEDB")
      }),
    { timeout: 300_000 }
  )

  it.effect("kubectl apply refuses a Restore without exactly one source, or with a changed spec", () =>
    Effect.gen(function* () {
      const namespace = "restore-invalid"
      yield* prepareNamespace(namespace, undefined)
      const two = yield* applyYaml(
        restoreYaml(namespace, "two", ["source: { backupName: a, backupDatabaseSchemaName: b }"])
      )
      assert.notStrictEqual(two.exitCode, 0)
      assert.include(two.stderr, "set exactly one of backupName, backupDatabaseSchemaName and location")
      const url = yield* applyYaml(
        restoreYaml(namespace, "url", ['source: { location: "gs://b/backups/ns/x/backup-20261203-000000.json" }'])
      )
      assert.notStrictEqual(url.exitCode, 0)
      assert.include(url.stderr, "set target.dbUser and its password Secret")

      const created = yield* applyYaml(restoreYaml(namespace, "once", ["source: { backupName: a }"]))
      assert.strictEqual(created.exitCode, 0, created.stderr)
      const changed = yield* applyYaml(restoreYaml(namespace, "once", ["source: { backupName: b }"]))
      assert.notStrictEqual(changed.exitCode, 0)
      assert.include(changed.stderr, "spec is immutable: create another Restore")
      // A Backup that does not exist: Pending, saying which.
      const waiting = yield* eventually(
        "Restore Pending",
        Effect.map(getRestore(namespace, "once"), (r) => (r.status?.phase === "Pending" ? r : undefined))
      )
      assert.include(waiting.status?.message ?? "", `Backup ${namespace}/a (spec.source.backupName) not found`)
    })
  )
})
