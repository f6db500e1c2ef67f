import { KubeClient, Pod } from "@db-backup-operator/kube"
import { GcsEmulator, Postgres } from "@db-backup-operator/testing"
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as E2E from "./environment.ts"
import {
  applyYaml,
  backupJobs,
  blackholePort,
  createPasswordSecret,
  downloadBackup,
  eventsIn,
  eventually,
  getBackup,
  gunzip,
  holdsFor,
  kubectl,
  originalExample,
  prepareNamespace,
  runningBackupPod,
  seedExampleDatabase,
  sha256
} from "./support.ts"

const password = "s3cret-Pa55"

layer(E2E.layer, { timeout: "240 seconds", excludeTestServices: true })("BackupDatabaseSchema end to end", (it) => {
  it.effect(
    "the original example resource backs up schema api completely and verifiably",
    () =>
      Effect.gen(function* () {
        yield* seedExampleDatabase(password)
        const namespace = "backup-job-namespace"
        yield* prepareNamespace(namespace, { name: "backup-secret", password })
        const pg = yield* Postgres
        const applied = yield* applyYaml(originalExample({ namespace, dbHost: pg.host, dbPort: pg.port }))
        assert.strictEqual(applied.exitCode, 0, applied.stderr)

        const seen = new Set<string>()
        const running = yield* eventually(
          "status Running",
          Effect.map(getBackup(namespace, "database-backup"), (backup) => {
            if (backup.status?.status !== undefined) seen.add(backup.status.status)
            return backup.status?.status === "Running" || backup.status?.status === "Success" ? backup : undefined
          })
        )
        const done = yield* eventually(
          "status Success",
          Effect.map(getBackup(namespace, "database-backup"), (backup) => {
            if (backup.status?.status !== undefined) seen.add(backup.status.status)
            if (backup.status?.status === "Failed") throw new Error(`backup failed: ${JSON.stringify(backup.status)}`)
            return backup.status?.status === "Success" ? backup : undefined
          })
        )
        assert.isTrue(seen.has("Running"), `status went through Running (saw ${[...seen].join(", ")})`)
        const status = done.status
        assert.isDefined(status)
        if (status === undefined) return
        assert.strictEqual(status.backupLocation, running.status?.backupLocation, "location decided before the run")
        assert.match(
          status.backupLocation ?? "",
          /^gs:\/\/operator-db-backups-bucket\/backups\/backup-job-namespace\/database-backup\/backup-\d{8}-\d{6}\.sql\.gz$/u
        )
        assert.strictEqual(status.conditions?.find((c) => c.type === "Ready")?.status, "True")

        // The object exists, its manifest's sha256 matches its bytes, and the status carries both.
        const gcs = yield* GcsEmulator
        const { dump, manifest } = yield* downloadBackup(gcs.endpoint, status.backupLocation ?? "")
        assert.strictEqual(manifest.sha256, sha256(dump))
        assert.strictEqual(status.lastBackupSha256, sha256(dump))
        assert.strictEqual(status.lastBackupSizeBytes, dump.length)

        // Restoring the dump into an empty database reproduces the schema's rows exactly.
        yield* pg.createDatabase("restored", { owner: "team03" })
        yield* pg.psql(gunzip(dump).toString("utf8"), { database: "restored" })
        for (const query of ["SELECT * FROM api.items ORDER BY id", "SELECT * FROM api.notes ORDER BY id"]) {
          const original = yield* pg.psql(query, { database: "api" })
          const restored = yield* pg.psql(query, { database: "restored" })
          assert.strictEqual(restored, original, query)
          assert.isAbove(original.length, 0)
        }

        // Exactly one Job for the run, named after the resource and the run time.
        const jobs = yield* backupJobs(namespace)
        assert.strictEqual(jobs.length, 1)
        assert.match(jobs[0]?.metadata.name ?? "", /^database-backup-\d{14}$/u)
      }),
    { timeout: 240_000 }
  )

  it.effect(
    "a missing secret: one Job waits for it, Ready=False SecretNotFound and one Warning; creating it lets the run finish",
    () =>
      Effect.gen(function* () {
        const namespace = "missing-secret"
        yield* prepareNamespace(namespace, undefined)
        const pg = yield* Postgres
        const applied = yield* applyYaml(originalExample({ namespace, dbHost: pg.host, dbPort: pg.port }))
        assert.strictEqual(applied.exitCode, 0, applied.stderr)
        // The operator does not read the Secret (it has no permission to): the kubelet cannot
        // start the run's Pod, and the operator reports what the kubelet says.
        const backup = yield* eventually(
          "Ready=False",
          Effect.map(getBackup(namespace, "database-backup"), (b) =>
            b.status?.conditions?.find((c) => c.type === "Ready" && c.status === "False") === undefined ? undefined : b
          )
        )
        const ready = backup.status?.conditions?.find((c) => c.type === "Ready")
        assert.strictEqual(ready?.reason, "SecretNotFound")
        assert.include(ready?.message ?? "", 'secret "backup-secret" not found')
        // Longer than the 10 s recheck of a Pod that has not started: each look must not add a
        // Warning or a Job.
        yield* holdsFor(
          "one SecretNotFound Warning and one waiting Job",
          Effect.gen(function* () {
            const warnings = (yield* eventsIn(namespace)).filter(
              (event) => event.reason === "SecretNotFound" && event.type === "Warning"
            )
            const jobs = yield* backupJobs(namespace)
            if (warnings.length !== 1 || (warnings[0]?.series?.count ?? 1) > 1) return `Warnings ${warnings.length}`
            if (jobs.length !== 1) return `Jobs ${jobs.length}`
            return undefined
          }),
          "12 seconds"
        )

        yield* createPasswordSecret(namespace, { name: "backup-secret", password })
        const done = yield* eventually(
          "status Success",
          Effect.map(getBackup(namespace, "database-backup"), (b) => (b.status?.status === "Success" ? b : undefined)),
          "90 seconds"
        )
        assert.strictEqual(done.status?.conditions?.find((c) => c.type === "Ready")?.status, "True")
      }),
    { timeout: 240_000 }
  )

  it.effect("invalid resources are rejected by kubectl apply with a message naming the field", () =>
    Effect.gen(function* () {
      const namespace = "invalid"
      yield* kubectl(["create", "namespace", namespace])
      const base = originalExample({ namespace, dbHost: "db.example", dbPort: 5432 })
      for (const [yaml, field] of [
        [base.replace("dbPort: 5432", 'dbPort: "abc"'), "dbPort"],
        [base.replace("dbPort: 5432", "dbPort: 0"), "dbPort"],
        [base.replace('  dbName: "api"\n', ""), "dbName"],
        // libpq reads a path as a Unix-socket directory and a comma as a list of hosts.
        [base.replace('dbHost: "db.example"', "dbHost: /tmp"), "dbHost"],
        [base.replace('dbHost: "db.example"', "dbHost: '@abstract'"), "dbHost"],
        [base.replace('dbHost: "db.example"', 'dbHost: "db.example,evil.example"'), "dbHost"],
        [base.replace('dbHost: "db.example"', 'dbHost: "db.example port=1"'), "dbHost"],
        [base.replace("dbPort: 5432", "dbPort: 5432\n  sslMode: on"), "sslMode"],
        [
          base.replace(
            "dbPort: 5432",
            "dbPort: 5432\n  sslMode: verify-ca\n  sslRootCert:\n    configMapKeyRef: { name: ca, key: ca.crt }\n    secretKeyRef: { name: ca, key: ca.crt }"
          ),
          "exactly one of configMapKeyRef and secretKeyRef"
        ],
        [base.replace("dbPort: 5432", "dbPort: 5432\n  sslMode: verify-ca"), "sslMode verify-ca needs sslRootCert"]
      ] as const) {
        const result = yield* applyYaml(yaml)
        assert.notStrictEqual(result.exitCode, 0, `accepted: ${yaml}`)
        assert.include(result.stderr, field)
      }
    })
  )

  it.effect("deleting the resource removes its running Job", () =>
    Effect.gen(function* () {
      const namespace = "delete-me"
      yield* prepareNamespace(namespace, { name: "backup-secret", password })
      const port = yield* blackholePort
      const applied = yield* applyYaml(originalExample({ namespace, dbHost: "127.0.0.1", dbPort: port }))
      assert.strictEqual(applied.exitCode, 0, applied.stderr)
      const kube = yield* KubeClient
      yield* runningBackupPod(namespace)
      yield* kubectl(["delete", "backupdatabaseschema", "database-backup", "-n", namespace, "--wait=true"])
      yield* eventually(
        "the Job and its Pods deleted",
        Effect.gen(function* () {
          const jobs = yield* backupJobs(namespace)
          const pods = yield* kube.list(Pod, { namespace })
          return jobs.length === 0 && pods.items.length === 0 ? true : undefined
        })
      )
    })
  )
})
