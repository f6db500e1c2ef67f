import { zstdDecompressSync } from "node:zlib"
import { JobLabels } from "@db-backup-operator/backup-api"
import type { Job } from "@db-backup-operator/kube"
import { GcsEmulator, Postgres } from "@db-backup-operator/testing"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as E2E from "./environment.ts"
import {
  applyYaml,
  backupRecords,
  downloadBackup,
  eventually,
  getBackup,
  kubectl,
  originalExample,
  prepareNamespace,
  seedExampleDatabase,
  watchJobs,
  withSpec
} from "./support.ts"

// `Backup` records as a user meets them: the history of a resource's runs, and
// `kubectl create` of one for a backup now, against the default operator with a
// real control plane, runner, PostgreSQL and the GCS emulator.

const password = "s3cret-Pa55"

const Environment = Layer.effectDiscard(seedExampleDatabase(password)).pipe(Layer.provideMerge(E2E.layer))

/** An on-demand `Backup` as README shows it. */
const onDemand = (
  namespace: string,
  name: string,
  resource = "database-backup"
) => `apiVersion: backup.csyeteam03.xyz/v1
kind: Backup
metadata:
  name: ${name}
  namespace: ${namespace}
spec:
  backupDatabaseSchemaName: ${resource}
`

const createYaml = (yaml: string) =>
  Effect.gen(function* () {
    const applied = yield* applyYaml(yaml)
    assert.strictEqual(applied.exitCode, 0, applied.stderr)
  })

const intervalOf = (job: Job) => ({
  name: job.metadata.name ?? "",
  from: Date.parse(job.metadata.creationTimestamp ?? ""),
  to: Date.parse(job.status?.completionTime ?? job.status?.conditions?.[0]?.lastTransitionTime ?? "")
})

layer(Environment, { timeout: "300 seconds", excludeTestServices: true })("Backup records", (it) => {
  it.effect(
    "an on-demand Backup runs at once; two more run one after the other; the history is kubectl get backups",
    () =>
      Effect.gen(function* () {
        const namespace = "on-demand"
        yield* prepareNamespace(namespace, { name: "backup-secret", password })
        const pg = yield* Postgres
        const jobs = yield* watchJobs(namespace)
        // @yearly: no slot of its own comes during the test; every run here is on demand. zstd, to see
        // the operator name and the runner write a .sql.zst that decompresses to a dump.
        yield* createYaml(
          withSpec(originalExample({ namespace, dbHost: pg.host, dbPort: pg.port }), [
            'schedule: "@yearly"',
            "compression: zstd"
          ])
        )
        yield* eventually(
          "the resource planned",
          Effect.map(getBackup(namespace, "database-backup"), (backup) => backup.status?.nextScheduleTime)
        )

        yield* createYaml(onDemand(namespace, "before-migration"))
        const first = yield* eventually(
          "the on-demand run Succeeded",
          Effect.map(backupRecords(namespace), (all) =>
            all.find((run) => run.metadata.name === "before-migration" && run.status?.phase === "Succeeded")
          ),
          "90 seconds"
        )
        assert.match(
          first.status?.location ?? "",
          /^gs:\/\/operator-db-backups-bucket\/backups\/on-demand\/database-backup\//u
        )
        assert.match(first.status?.sha256 ?? "", /^[0-9a-f]{64}$/u)
        assert.match(first.status?.location ?? "", /\/backup-\d{8}-\d{6}\.sql\.zst$/u)
        const { dump, manifest } = yield* downloadBackup((yield* GcsEmulator).endpoint, first.status?.location ?? "")
        assert.include(zstdDecompressSync(dump).toString("utf8"), "PostgreSQL database dump complete")
        assert.strictEqual(manifest.compression, "zstd")
        assert.isUndefined(first.status?.scheduledTime, "an on-demand run has no slot")
        const job = (yield* jobs.seen).get(first.status?.jobName ?? "")
        assert.isDefined(job, "its Job")
        assert.strictEqual(job?.metadata.annotations?.[JobLabels.Annotation.backup], "before-migration")
        assert.isUndefined(job?.metadata.annotations?.[JobLabels.Annotation.scheduledAt])
        const resource = yield* getBackup(namespace, "database-backup")
        assert.strictEqual(resource.status?.status, "Success")
        assert.strictEqual(resource.status?.lastSuccessfulBackupLocation, first.status?.location)
        assert.isUndefined(resource.status?.lastScheduleTime, "no slot has run")

        // Two at once: never two runs of one resource together; the second waits, then runs.
        yield* createYaml(`${onDemand(namespace, "second")}---\n${onDemand(namespace, "third")}`)
        yield* eventually(
          "one of them waiting for the other",
          Effect.map(backupRecords(namespace), (all) =>
            all.find(
              (run) =>
                run.status?.phase === "Pending" &&
                (run.status.message ?? "").startsWith("waits for the run in progress (Job on-demand/")
            )
          ),
          "30 seconds"
        )
        const all = yield* eventually(
          "both Succeeded",
          Effect.map(backupRecords(namespace), (records) =>
            records.filter((run) => run.status?.phase === "Succeeded").length === 3 ? records : undefined
          ),
          "150 seconds"
        )
        const [a, b] = [...(yield* jobs.seen).values()]
          .filter((seen) =>
            ["second", "third"].includes(seen.metadata.annotations?.[JobLabels.Annotation.backup] ?? "")
          )
          .map(intervalOf)
          .sort((x, y) => x.from - y.from)
        assert.isDefined(b, "a Job for each")
        assert.isAtLeast(b?.from ?? 0, a?.to ?? Number.POSITIVE_INFINITY, `${b?.name} started after ${a?.name} ended`)
        assert.strictEqual(new Set(all.map((run) => run.status?.location)).size, 3, "three different dumps")

        const table = yield* kubectl(["get", "backups.backup.csyeteam03.xyz", "-n", namespace])
        assert.match(table, /^NAME\s+SOURCE\s+PHASE\s+STARTED\s+COMPLETED\s+SIZE\s+AGE$/mu)
        assert.match(table, /^before-migration\s+database-backup\s+Succeeded\s+/mu)
        assert.strictEqual(table.match(/Succeeded/gu)?.length, 3, table)
        assert.isTrue(
          all.every((run) => (run.status?.target ?? "").endsWith("/api/api -> gs://operator-db-backups-bucket"))
        )

        // An edit of what is backed up makes one run of the new target, at once.
        yield* kubectl([
          "patch",
          "bds",
          "database-backup",
          "-n",
          namespace,
          "--type=merge",
          "-p",
          '{"spec":{"dbSchema":"public"}}'
        ])
        const edited = yield* getBackup(namespace, "database-backup")
        const specRun = `database-backup-g${edited.metadata.generation}`
        const ofEdit = yield* eventually(
          "the run of the edited spec Succeeded",
          Effect.map(backupRecords(namespace), (records) =>
            records.find((run) => run.metadata.name === specRun && run.status?.phase === "Succeeded")
          ),
          "90 seconds"
        )
        assert.match(ofEdit.status?.target ?? "", /\/api\/public -> gs:\/\/operator-db-backups-bucket$/u)
        assert.lengthOf(
          (yield* backupRecords(namespace)).filter((run) => (run.status?.target ?? "").includes("/api/public ")),
          1,
          "one run of the new target"
        )

        // A Backup of a resource that does not exist waits, and says why.
        yield* createYaml(onDemand(namespace, "nobody", "missing"))
        yield* eventually(
          "the orphan record says why it waits",
          Effect.map(backupRecords(namespace, "missing"), ([run]) =>
            run?.status?.phase === "Pending" &&
            run.status.message === "waits: BackupDatabaseSchema on-demand/missing not found"
              ? run
              : undefined
          ),
          "30 seconds"
        )

        // Deleting the resource deletes its records (the dumps stay in the bucket).
        yield* kubectl(["delete", "bds", "database-backup", "-n", namespace, "--wait=true"])
        yield* eventually(
          "its records gone",
          Effect.map(backupRecords(namespace), (records) => (records.length === 0 ? true : undefined)),
          "30 seconds"
        )
        assert.lengthOf(yield* backupRecords(namespace, "missing"), 1, "another resource's record stays")
      })
  )

  it.effect("failed runs keep failedBackupsHistoryLimit records, each saying why it failed", () =>
    Effect.gen(function* () {
      const namespace = "failed-history"
      yield* prepareNamespace(namespace, { name: "backup-secret", password: "not-the-password" })
      const pg = yield* Postgres
      const jobs = yield* watchJobs(namespace)
      yield* createYaml(
        withSpec(originalExample({ namespace, dbHost: pg.host, dbPort: pg.port }), [
          'schedule: "@every 10s"',
          "backoffLimit: 0",
          "failedBackupsHistoryLimit: 1"
        ])
      )
      const failedJobs = Effect.map(jobs.seen, (seen) =>
        [...seen.values()].filter((job) =>
          job.status?.conditions?.some((condition) => condition.type === "Failed" && condition.status === "True")
        )
      )
      yield* eventually(
        "three failed runs",
        Effect.map(failedJobs, (failed) => (failed.length >= 3 ? true : undefined)),
        "120 seconds"
      )
      const [kept, ...more] = yield* eventually(
        "one Failed record left",
        Effect.map(backupRecords(namespace), (records) => {
          const failed = records.filter((run) => run.status?.phase === "Failed")
          return failed.length === 1 ? failed : undefined
        }),
        "30 seconds"
      )
      assert.lengthOf(more, 0)
      assert.include(kept?.status?.message ?? "", "password authentication failed")
      assert.isUndefined(kept?.status?.location, "a failed run points at no dump")
      const resource = yield* getBackup(namespace, "database-backup")
      assert.isDefined(resource.status?.lastFailedBackupTime)
    })
  )
})
