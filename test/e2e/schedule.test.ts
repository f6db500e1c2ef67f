import { type BackupDatabaseSchema, JobLabels } from "@db-backup-operator/backup-api"
import type { Job } from "@db-backup-operator/kube"
import { GcsEmulator, Postgres } from "@db-backup-operator/testing"
import { assert, expect, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as E2E from "./environment.ts"
import {
  applyYaml,
  backupJobs,
  backupRecords,
  blackholePort,
  eventsIn,
  eventually,
  exampleBucket,
  getBackup,
  holdsFor,
  kubectl,
  operatorMetrics,
  operatorStarted,
  operatorStarts,
  originalExample,
  prepareNamespace,
  seedExampleDatabase,
  seriesValue,
  storage,
  watchJobs,
  withSpec
} from "./support.ts"

// Schedules as a user writes them (`kubectl apply` of the original resource plus
// the new fields), against the default operator: a real control plane, the real
// runner in backup Jobs, PostgreSQL and the GCS emulator.

const password = "s3cret-Pa55"

const Environment = Layer.effectDiscard(seedExampleDatabase(password)).pipe(Layer.provideMerge(E2E.layer))

/** `kubectl patch` of the example resource's spec (a merge patch), as a user edits it. */
const patchSpec = (namespace: string, spec: Record<string, unknown>) =>
  kubectl(["patch", "bds", "database-backup", "-n", namespace, "--type=merge", "-p", JSON.stringify({ spec })])

const readyOf = (backup: BackupDatabaseSchema) =>
  backup.status?.conditions?.find((condition) => condition.type === "Ready")

const stampOf = (millis: number) => new Date(millis).toISOString().replace(/[-:T]/gu, "").slice(0, 14)

/**
 * The next 03:00 wall-clock time in `timeZone` after `from`, found with Intl
 * alone (minute by minute), independently of the cron library the operator uses.
 */
const nextWallClock = (timeZone: string, hour: number, from: number) => {
  const format = new Intl.DateTimeFormat("en-GB", { timeZone, hour: "2-digit", minute: "2-digit", hourCycle: "h23" })
  for (let t = Math.floor(from / 60_000) * 60_000 + 60_000; ; t += 60_000) {
    if (format.format(new Date(t)) === `${String(hour).padStart(2, "0")}:00`) return t
  }
}

layer(Environment, { timeout: "300 seconds", excludeTestServices: true })("schedules", (it) => {
  it.effect(
    "@every 20s: one Job per slot, each succeeds; suspend stops new runs; resuming makes one catch-up run",
    () =>
      Effect.gen(function* () {
        const namespace = "every-20s"
        yield* prepareNamespace(namespace, { name: "backup-secret", password })
        const pg = yield* Postgres
        const jobs = yield* watchJobs(namespace)
        const example = originalExample({ namespace, dbHost: pg.host, dbPort: pg.port })
        const applied = yield* applyYaml(withSpec(example, ['schedule: "@every 20s"']))
        assert.strictEqual(applied.exitCode, 0, applied.stderr)

        // Two slots: the first at creation, the second 20 s later; both succeed.
        const second = yield* eventually(
          "a second successful run",
          Effect.map(getBackup(namespace, "database-backup"), (backup) => {
            const slot = Date.parse(backup.status?.lastScheduleTime ?? "")
            const created = Date.parse(backup.metadata.creationTimestamp ?? "")
            return backup.status?.status === "Success" && slot >= created + 20_000 ? backup : undefined
          }),
          "150 seconds"
        )
        const created = Date.parse(second.metadata.creationTimestamp ?? "")
        const lastSlot = Date.parse(second.status?.lastScheduleTime ?? "")
        assert.strictEqual((lastSlot - created) % 20_000, 0, "slots are 20 s apart, counted from creation")
        assert.strictEqual(
          second.status?.nextScheduleTime,
          new Date(lastSlot + 20_000).toISOString().replace(".000Z", "Z")
        )
        // One Job per slot, named by its slot, and none for a slot twice.
        const seen = [...(yield* jobs.seen).values()]
        const slots = seen.map((job) => Date.parse(job.metadata.annotations?.[JobLabels.Annotation.scheduledAt] ?? ""))
        assert.strictEqual(new Set(slots).size, seen.length, "one Job per slot")
        for (const job of seen) {
          const slot = Date.parse(job.metadata.annotations?.[JobLabels.Annotation.scheduledAt] ?? "")
          assert.strictEqual((slot - created) % 20_000, 0, `${job.metadata.name}: its slot is on the schedule`)
          assert.strictEqual(job.metadata.name, `database-backup-${stampOf(slot)}`)
        }

        // One Backup record per slot, named as its Job, each Succeeded with what the run made.
        const records = yield* eventually(
          "a Succeeded record of each finished run",
          Effect.map(backupRecords(namespace), (all) =>
            all.filter((run) => run.status?.phase === "Succeeded").length >= 2 ? all : undefined
          )
        )
        for (const run of records.filter((record) => record.status?.phase === "Succeeded")) {
          const job = seen.find((candidate) => candidate.metadata.name === run.metadata.name)
          assert.isDefined(job, `${run.metadata.name}: a Job of the record's name`)
          assert.strictEqual(run.status?.jobName, run.metadata.name)
          assert.strictEqual(
            run.status?.scheduledTime,
            job?.metadata.annotations?.[JobLabels.Annotation.scheduledAt]?.replace(".000Z", "Z")
          )
          assert.match(
            run.status?.location ?? "",
            /^gs:\/\/operator-db-backups-bucket\/backups\/every-20s\/database-backup\/backup-\d{8}-\d{6}\.sql\.gz$/u
          )
          assert.strictEqual(run.status?.manifestLocation, run.status?.location?.replace(/\.sql\.gz$/u, ".json"))
          assert.match(run.status?.sha256 ?? "", /^[0-9a-f]{64}$/u)
          assert.isAbove(run.status?.sizeBytes ?? 0, 0)
          assert.match(run.status?.pgDumpVersion ?? "", /pg_dump/u)
          assert.isDefined(run.status?.serverVersion)
          assert.isDefined(run.metadata.ownerReferences?.find((owner) => owner.kind === "BackupDatabaseSchema"))
        }
        assert.strictEqual(
          new Set(records.map((run) => run.status?.scheduledTime)).size,
          records.length,
          "one record per slot"
        )

        // The per-resource metrics say what the status says.
        const labels = { namespace, name: "database-backup" }
        const seconds = (timestamp: string | undefined) => Date.parse(timestamp ?? "") / 1000
        const metrics = yield* eventually(
          "the metrics of the second run",
          Effect.map(operatorMetrics, (text) =>
            seriesValue(text, "db_backup_last_success_timestamp_seconds", labels) ===
            seconds(second.status?.lastSuccessfulBackupTime)
              ? text
              : undefined
          )
        )
        assert.isAtLeast(seriesValue(metrics, "db_backup_runs_total", { ...labels, result: "success" }) ?? 0, 2)
        assert.strictEqual(seriesValue(metrics, "db_backup_last_run_failed", labels), 0)
        assert.strictEqual(
          seriesValue(metrics, "db_backup_last_size_bytes", labels),
          second.status?.lastBackupSizeBytes
        )
        assert.isAtLeast(seriesValue(metrics, "db_backup_last_duration_seconds", labels) ?? -1, 0)
        assert.isAtLeast(
          seriesValue(metrics, "db_backup_next_schedule_timestamp_seconds", labels) ?? 0,
          seconds(second.status?.nextScheduleTime)
        )

        // Suspended: the next slot passes without a Job, and status no longer promises one.
        yield* patchSpec(namespace, { suspend: true })
        yield* eventually(
          "nextScheduleTime gone while suspended",
          Effect.map(getBackup(namespace, "database-backup"), (backup) =>
            backup.status?.nextScheduleTime === undefined && backup.status?.status !== "Running" ? backup : undefined
          )
        )
        yield* eventually(
          "no next-run series while suspended",
          Effect.map(operatorMetrics, (text) =>
            seriesValue(text, "db_backup_next_schedule_timestamp_seconds", labels) === undefined ? true : undefined
          ),
          "10 seconds"
        )
        const before = (yield* jobs.seen).size
        yield* holdsFor(
          "no new Job while suspended",
          Effect.map(jobs.seen, (all) => (all.size === before ? undefined : `${all.size - before} new Job(s)`)),
          "45 seconds"
        )

        // Resumed: the two missed slots make one catch-up run, of the latest slot.
        yield* patchSpec(namespace, { suspend: false })
        const resumedAt = Date.now()
        const catchUp = yield* eventually(
          "one catch-up Job",
          Effect.map(jobs.seen, (all) => (all.size > before ? [...all.values()] : undefined)),
          "30 seconds"
        )
        const newJobs = catchUp.slice(before)
        assert.strictEqual(newJobs.length, 1, newJobs.map((job) => job.metadata.name).join(", "))
        const caughtUp = Date.parse(newJobs[0]?.metadata.annotations?.[JobLabels.Annotation.scheduledAt] ?? "")
        assert.isAbove(caughtUp, resumedAt - 20_000, "the catch-up run is of the latest missed slot, not an older one")
      })
  )

  it.effect("a time zone: nextScheduleTime is 03:00 in New York, and kubectl get shows the schedule", () =>
    Effect.gen(function* () {
      const namespace = "time-zone"
      yield* prepareNamespace(namespace, { name: "backup-secret", password })
      const pg = yield* Postgres
      const example = originalExample({ namespace, dbHost: pg.host, dbPort: pg.port })
      const applied = yield* applyYaml(withSpec(example, ['schedule: "0 3 * * *"', 'timeZone: "America/New_York"']))
      assert.strictEqual(applied.exitCode, 0, applied.stderr)
      const backup = yield* eventually(
        "nextScheduleTime",
        Effect.map(getBackup(namespace, "database-backup"), (backup) =>
          backup.status?.nextScheduleTime === undefined ? undefined : backup
        )
      )
      const expected = nextWallClock("America/New_York", 3, Date.parse(backup.metadata.creationTimestamp ?? ""))
      assert.strictEqual(backup.status?.nextScheduleTime, new Date(expected).toISOString().replace(".000Z", "Z"))
      // A new resource waits for its first slot: no run now.
      assert.isUndefined(backup.status?.status)
      const table = yield* kubectl(["get", "bds", "-n", namespace])
      assert.match(table, /^NAME\s+SCHEDULE\s+STATUS\s+READY\s+LAST SUCCESS\s+NEXT BACKUP\s+AGE$/mu)
      assert.include(table, `0 3 * * *`)
      assert.include(table, backup.status?.nextScheduleTime ?? "?")
    })
  )

  it.effect(
    "a schedule or time zone it cannot use: refused at apply, or Ready=False naming the field, and no Job",
    () =>
      Effect.gen(function* () {
        const namespace = "bad-schedules"
        yield* prepareNamespace(namespace, { name: "backup-secret", password })
        const pg = yield* Postgres
        const example = (name: string) => originalExample({ name, namespace, dbHost: pg.host, dbPort: pg.port })

        const refused = yield* applyYaml(withSpec(example("daily"), ['schedule: "daily"']))
        assert.notStrictEqual(refused.exitCode, 0)
        assert.include(refused.stderr, "spec.schedule")
        const badQuantity = yield* applyYaml(
          withSpec(example("bad-quantity"), ["resources:", "    limits:", '      memory: "lots"'])
        )
        assert.notStrictEqual(badQuantity.exitCode, 0)
        assert.include(badQuantity.stderr, "spec.resources.limits.memory")
        assert.include(badQuantity.stderr, "must be a quantity")
        const emptyRetention = yield* applyYaml(withSpec(example("empty-retention"), ["retention: {}"]))
        assert.notStrictEqual(emptyRetention.exitCode, 0)
        assert.include(emptyRetention.stderr, "spec.retention: Invalid value")
        assert.include(emptyRetention.stderr, "set at least one of keepLast")
        // Bucket names GCS itself refuses, refused at apply rather than after a whole dump.
        for (const [bucket, words] of [
          ["goog-bucket", "must not start with goog"],
          ["192.168.5.4", "must not be an IP address"],
          ["a..b", "each dot-separated part must be non-empty"]
        ] as const) {
          const badBucket = yield* applyYaml(
            example(`bucket-${bucket.replaceAll(".", "-")}`).replace(/gcsBucket: .*/u, `gcsBucket: "${bucket}"`)
          )
          assert.notStrictEqual(badBucket.exitCode, 0, bucket)
          assert.include(badBucket.stderr, "spec.gcsBucket")
          assert.include(badBucket.stderr, words)
        }

        const cases = [
          { name: "minute-61", lines: ['schedule: "61 * * * *"'], reason: "InvalidSchedule", field: "spec.schedule" },
          { name: "too-often", lines: ['schedule: "@every 5s"'], reason: "InvalidSchedule", field: "spec.schedule" },
          {
            name: "bad-toleration",
            lines: ["tolerations:", "    - key: dedicated", "      operator: Exists", "      value: backup"],
            reason: "JobInvalid",
            field: "spec.tolerations"
          },
          {
            name: "mars",
            lines: ['schedule: "@daily"', 'timeZone: "Mars/Olympus"'],
            reason: "UnknownTimeZone",
            field: "spec.timeZone"
          }
        ]
        for (const { name, lines } of cases) {
          const applied = yield* applyYaml(withSpec(example(name), lines))
          assert.strictEqual(applied.exitCode, 0, applied.stderr)
        }
        for (const { name, reason, field } of cases) {
          const backup = yield* eventually(
            `${name}: Ready=False`,
            Effect.map(getBackup(namespace, name), (backup) =>
              readyOf(backup)?.status === "False" ? backup : undefined
            )
          )
          assert.strictEqual(readyOf(backup)?.reason, reason)
          assert.include(readyOf(backup)?.message ?? "", field)
        }
        // The Event is written after the status: waited for, not read once (that raced in CI).
        for (const { name, reason } of cases) {
          yield* eventually(
            `${name}: a ${reason} Event`,
            Effect.map(eventsIn(namespace), (events) =>
              events.some((event) => event.regarding?.name === name && event.reason === reason) ? true : undefined
            )
          )
        }
        const table = yield* kubectl(["get", "jobs", "-n", namespace, "-o", "name"])
        assert.strictEqual(table.trim(), "", "no Job for a resource it cannot schedule")
      })
  )

  it.effect(
    "a running Job deleted by hand: Failed with JobDeleted at once, the last good location kept, no run before the next slot",
    () =>
      Effect.gen(function* () {
        const namespace = "job-deleted"
        yield* prepareNamespace(namespace, { name: "backup-secret", password })
        const pg = yield* Postgres
        const example = originalExample({ namespace, dbHost: pg.host, dbPort: pg.port })
        const applied = yield* applyYaml(withSpec(example, ['schedule: "@every 20s"']))
        assert.strictEqual(applied.exitCode, 0, applied.stderr)
        const good = yield* eventually(
          "a successful run",
          Effect.map(getBackup(namespace, "database-backup"), (backup) =>
            backup.status?.status === "Success" ? backup : undefined
          )
        )
        const goodLocation = good.status?.backupLocation ?? ""
        assert.strictEqual(good.status?.lastSuccessfulBackupLocation, goodLocation)

        // The next run hangs: its database accepts connections and never answers.
        const port = yield* blackholePort
        yield* patchSpec(namespace, { dbHost: "127.0.0.1", dbPort: port })
        // The Job of that run (not one of the good configuration still finishing).
        const hanging = yield* eventually(
          "the hanging run's Job",
          Effect.map(backupJobs(namespace), (jobs) =>
            jobs.find((job) =>
              job.spec?.template.spec?.containers[0]?.env?.some(
                (variable) => variable.name === "DB_PORT" && variable.value === String(port)
              )
            )
          )
        )
        const jobName = hanging.metadata.name ?? ""
        yield* eventually(
          "the hanging run in status",
          Effect.map(getBackup(namespace, "database-backup"), (backup) =>
            backup.status?.status === "Running" && backup.status.jobName === jobName ? backup : undefined
          )
        )
        yield* kubectl(["delete", "job", jobName, "-n", namespace, "--wait=false"])

        const failed = yield* eventually(
          "Failed with JobDeleted",
          Effect.map(getBackup(namespace, "database-backup"), (backup) =>
            backup.status?.status === "Failed" ? backup : undefined
          ),
          "15 seconds"
        )
        const ready = readyOf(failed)
        assert.strictEqual(ready?.status, "False")
        assert.strictEqual(ready?.reason, "JobDeleted")
        assert.include(ready?.message ?? "", `Job ${namespace}/${jobName} was deleted before it finished`)
        assert.strictEqual(failed.status?.jobName, jobName)
        assert.strictEqual(failed.status?.backupLocation, goodLocation, "the last good backup, not the unfinished one")
        // The Event follows the status write of the same pass.
        yield* eventually(
          "a JobDeleted Event",
          Effect.map(eventsIn(namespace), (events) =>
            events.some((event) => event.reason === "JobDeleted") ? true : undefined
          ),
          "10 seconds"
        )
        // No replacement run at once: the next one waits for its slot.
        const nextSlot = Date.parse(failed.status?.nextScheduleTime ?? "")
        const jobsAfter = yield* backupJobs(namespace)
        const newer = jobsAfter.filter(
          (job) =>
            Date.parse(job.metadata.annotations?.[JobLabels.Annotation.scheduledAt] ?? "") >
            Date.parse(failed.status?.lastScheduleTime ?? "")
        )
        for (const job of newer) {
          assert.isAtLeast(
            Date.parse(job.metadata.annotations?.[JobLabels.Annotation.scheduledAt] ?? ""),
            nextSlot,
            `${job.metadata.name} started before the next slot`
          )
        }
      })
  )

  it.effect("keepLast 2: after four runs, exactly the newest two dumps with their manifests are in the bucket", () =>
    Effect.gen(function* () {
      const namespace = "keep-last"
      yield* prepareNamespace(namespace, { name: "backup-secret", password })
      const pg = yield* Postgres
      const example = originalExample({ namespace, dbHost: pg.host, dbPort: pg.port })
      const applied = yield* applyYaml(
        withSpec(example, [
          'schedule: "@every 10s"',
          "retention:",
          "    keepLast: 2",
          "resources:",
          "    requests:",
          "      cpu: 50m",
          "      memory: 64Mi",
          "    limits:",
          "      memory: 1Gi",
          "tolerations:",
          "    - key: dedicated",
          "      operator: Exists",
          "activeDeadlineSeconds: 600",
          "backoffLimit: 0",
          "affinity:",
          "    podAntiAffinity:",
          "      preferredDuringSchedulingIgnoredDuringExecution:",
          "        - weight: 100",
          "          podAffinityTerm:",
          "            topologyKey: kubernetes.io/hostname",
          "            labelSelector:",
          "              matchLabels:",
          "                app: postgresql"
        ])
      )
      assert.strictEqual(applied.exitCode, 0, applied.stderr)
      const jobs = yield* watchJobs(namespace)
      yield* eventually(
        "a fourth successful run",
        Effect.gen(function* () {
          const backup = yield* getBackup(namespace, "database-backup")
          const succeeded = [...(yield* jobs.seen).values()].filter((job) =>
            job.status?.conditions?.some((condition) => condition.type === "Complete" && condition.status === "True")
          )
          return succeeded.length >= 4 &&
            backup.status?.status === "Success" &&
            backup.status.retainedBackups !== undefined
            ? backup
            : undefined
        }),
        "150 seconds"
      )
      // Stopped, and the run in progress (if any) finished, so the bucket is read between runs.
      yield* patchSpec(namespace, { suspend: true })
      const settled = yield* eventually(
        "no run in progress",
        Effect.map(getBackup(namespace, "database-backup"), (backup) =>
          backup.status?.nextScheduleTime === undefined && backup.status?.status === "Success" ? backup : undefined
        )
      )
      const files = storage((yield* GcsEmulator).endpoint).bucket(exampleBucket)
      const [objects] = yield* Effect.promise(() => files.getFiles({ prefix: `backups/${namespace}/database-backup/` }))
      const names = objects.map((file) => file.name).sort()
      const manifests = names.filter((name) => name.endsWith(".json"))
      assert.strictEqual(manifests.length, 2, names.join(", "))
      assert.deepStrictEqual(
        names.filter((name) => name.endsWith(".sql.gz")),
        manifests.map((name) => name.replace(/\.json$/u, ".sql.gz")),
        "each kept manifest has its dump, and no other dump is left"
      )
      // The newest two: the last success is one of them, and every other Job's backup is gone.
      const newest = (settled.status?.lastSuccessfulBackupLocation ?? "").replace(`gs://${exampleBucket}/`, "")
      assert.include(names, newest)
      assert.strictEqual(settled.status?.retainedBackups, 2)
      assert.deepInclude(
        settled.status?.conditions?.find((condition) => condition.type === "Retention"),
        {
          status: "True",
          reason: "RetentionApplied"
        }
      )
      // The Pod settings of the spec reached every run's Job, through the real API server.
      for (const job of (yield* jobs.seen).values()) {
        assert.strictEqual(job.spec?.activeDeadlineSeconds, 600)
        assert.strictEqual(job.spec?.backoffLimit, 0)
        assert.deepStrictEqual(job.spec?.template.spec?.tolerations, [{ key: "dedicated", operator: "Exists" }])
        assert.deepStrictEqual(job.spec?.template.spec?.affinity, {
          podAntiAffinity: {
            preferredDuringSchedulingIgnoredDuringExecution: [
              {
                weight: 100,
                podAffinityTerm: {
                  topologyKey: "kubernetes.io/hostname",
                  labelSelector: { matchLabels: { app: "postgresql" } }
                }
              }
            ]
          }
        })
        assert.deepStrictEqual(job.spec?.template.spec?.containers[0]?.resources, {
          requests: { cpu: "50m", memory: "64Mi" },
          limits: { memory: "1Gi" }
        })
      }
      // The history follows the bucket: exactly the two kept backups have a Succeeded record.
      const kept = yield* eventually(
        "two Succeeded records",
        Effect.map(backupRecords(namespace), (all) => {
          const succeeded = all.filter((run) => run.status?.phase === "Succeeded")
          return succeeded.length === 2 ? succeeded : undefined
        })
      )
      assert.deepStrictEqual(
        kept.map((run) => (run.status?.location ?? "").replace(`gs://${exampleBucket}/`, "")).sort(),
        names.filter((name) => name.endsWith(".sql.gz")),
        "the records are of the dumps in the bucket"
      )
      const labels = { namespace, name: "database-backup" }
      yield* eventually(
        "db_backup_retained_backups 2, and at least 2 deleted",
        Effect.map(operatorMetrics, (text) =>
          seriesValue(text, "db_backup_retained_backups", labels) === 2 &&
          (seriesValue(text, "db_backup_retention_deleted_total", labels) ?? 0) >= 2
            ? true
            : undefined
        ),
        "10 seconds"
      )
    })
  )

  it.effect(
    "the operator stopped across three slots makes exactly one catch-up run when it is back, then keeps the pace",
    () =>
      Effect.gen(function* () {
        const namespace = "operator-down"
        yield* prepareNamespace(namespace, { name: "backup-secret", password })
        const pg = yield* Postgres
        const jobs = yield* watchJobs(namespace)
        const example = originalExample({ namespace, dbHost: pg.host, dbPort: pg.port })
        assert.strictEqual((yield* applyYaml(withSpec(example, ['schedule: "@every 10s"']))).exitCode, 0)
        yield* eventually(
          "a successful run",
          Effect.map(getBackup(namespace, "database-backup"), (backup) =>
            backup.status?.status === "Success" ? true : undefined
          )
        )
        const slotOf = (job: Job) => Date.parse(job.metadata.annotations?.[JobLabels.Annotation.scheduledAt] ?? "")

        const operator = yield* E2E.Operator
        const starts = yield* operatorStarts
        yield* operator.stop
        const stoppedAt = Date.now()
        // The scenario itself: the operator is away while at least three slots pass.
        yield* Effect.sleep("35 seconds")
        yield* operator.start
        yield* operatorStarted(starts)
        // Its workers are running: the latest slot by now is the one to catch up.
        const backAt = Date.now()

        const afterStop = (all: ReadonlyArray<Job>) => all.filter((job) => slotOf(job) > stoppedAt)
        const [catchUp] = yield* eventually(
          "the catch-up Job",
          Effect.map(jobs.seen, (all) => {
            const found = afterStop([...all.values()]).sort((a, b) => slotOf(a) - slotOf(b))
            return found.length > 0 ? found : undefined
          }),
          "30 seconds"
        )
        const caughtUp = slotOf(catchUp ?? expect.unreachable())
        assert.isAbove(caughtUp, backAt - 10_000, "the latest missed slot, not an older one")
        assert.isAtLeast(caughtUp - stoppedAt, 20_000, "slots passed while the operator was away")
        yield* holdsFor(
          "one catch-up run for the missed slots, and after it only the schedule's own slots",
          Effect.map(jobs.seen, (all) => {
            const found = afterStop([...all.values()])
            const early = found.filter((job) => slotOf(job) < caughtUp)
            if (early.length > 0)
              return `Jobs of older missed slots: ${early.map((job) => job.metadata.name).join(", ")}`
            const offSchedule = found.filter((job) => (slotOf(job) - caughtUp) % 10_000 !== 0)
            return offSchedule.length === 0
              ? undefined
              : `off-schedule Jobs: ${offSchedule.map((job) => job.metadata.name).join(", ")}`
          }),
          "15 seconds"
        )
      })
  )
})
