import { type BackupDatabaseSchema, JobLabels } from "@db-backup-operator/backup-api"
import { jobOutcome } from "@db-backup-operator/kube"
import { GcsEmulator, Postgres } from "@db-backup-operator/testing"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as E2E from "./environment.ts"
import {
  applyYaml,
  backupJobs,
  backupPods,
  eventsIn,
  eventually,
  exampleBucket,
  failed,
  gatedProxy,
  getBackup,
  gunzip,
  holdsFor,
  operatorStarted,
  operatorStarts,
  originalExample,
  parseGsUrl,
  prepareNamespace,
  seedExampleDatabase,
  sha256,
  storage,
  succeeded
} from "./support.ts"

const password = "s3cret-Pa55"

/** The default operator (5-minute interval) with the README's database seeded once for the file. */
const Environment = Layer.effectDiscard(seedExampleDatabase(password)).pipe(Layer.provideMerge(E2E.layer))

const readyOf = (backup: BackupDatabaseSchema) =>
  backup.status?.conditions?.find((condition) => condition.type === "Ready")

const apply = (yaml: string) =>
  Effect.gen(function* () {
    const applied = yield* applyYaml(yaml)
    assert.strictEqual(applied.exitCode, 0, applied.stderr)
  })

layer(Environment, { timeout: "240 seconds", excludeTestServices: true })("BackupDatabaseSchema scenarios", (it) => {
  it.effect("two resources in one namespace and one bucket never share a Job or an object", () =>
    Effect.gen(function* () {
      const namespace = "two-resources"
      yield* prepareNamespace(namespace, { name: "backup-secret", password })
      const pg = yield* Postgres
      // A second schema in the same database, so each object's content shows whose it is.
      yield* pg.psql(
        `CREATE SCHEMA accounts AUTHORIZATION team03;
         CREATE TABLE accounts.users (id int PRIMARY KEY, email text);
         INSERT INTO accounts.users VALUES (1, 'ada@example.com');
         ALTER TABLE accounts.users OWNER TO team03;`,
        { database: "api" }
      )
      const schemas = { "orders-backup": "api", "users-backup": "accounts" } as const
      for (const [name, schema] of Object.entries(schemas)) {
        yield* apply(
          originalExample({ name, namespace, dbHost: pg.host, dbPort: pg.port }).replace(
            'dbSchema: "api"',
            `dbSchema: "${schema}"`
          )
        )
      }
      const orders = yield* succeeded(namespace, "orders-backup")
      const users = yield* succeeded(namespace, "users-backup")

      assert.notStrictEqual(orders.status?.jobName, users.status?.jobName)
      assert.notStrictEqual(orders.status?.backupLocation, users.status?.backupLocation)
      const files = storage((yield* GcsEmulator).endpoint).bucket(exampleBucket)
      for (const backup of [orders, users]) {
        const name = backup.metadata.name ?? ""
        assert.match(backup.status?.jobName ?? "", new RegExp(`^${name}-\\d{14}$`, "u"))
        const location = backup.status?.backupLocation ?? ""
        assert.match(
          location,
          new RegExp(`^gs://${exampleBucket}/backups/${namespace}/${name}/backup-\\d{8}-\\d{6}\\.sql\\.gz$`, "u")
        )
        // Each status describes its own object, and both objects (and their manifests) exist.
        const { object } = parseGsUrl(location)
        const [dump] = yield* Effect.promise(() => files.file(object).download())
        assert.strictEqual(backup.status?.lastBackupSha256, sha256(dump), `${name}: sha256 of its own object`)
        assert.strictEqual(backup.status?.lastBackupSizeBytes, dump.length)
        const sql = gunzip(dump).toString("utf8")
        const own = name === "orders-backup" ? "CREATE TABLE api.items" : "CREATE TABLE accounts.users"
        const other = name === "orders-backup" ? "accounts.users" : "api.items"
        assert.include(sql, own, `${name}: its own schema`)
        assert.notInclude(sql, other, `${name}: not the other resource's schema`)
        const [manifestExists] = yield* Effect.promise(() =>
          files.file(object.replace(/\.sql\.gz$/u, ".json")).exists()
        )
        assert.isTrue(manifestExists, `${name}: manifest exists`)
      }
      const [objects] = yield* Effect.promise(() => files.getFiles({ prefix: `backups/${namespace}/` }))
      assert.strictEqual(objects.length, 4, objects.map((file) => file.name).join(", "))

      // One Job per resource, each labelled with its own resource.
      const jobs = yield* backupJobs(namespace)
      assert.strictEqual(jobs.length, 2)
      for (const backup of [orders, users]) {
        const own = jobs.filter((job) => job.metadata.labels?.[JobLabels.Label.resourceUid] === backup.metadata.uid)
        assert.deepStrictEqual(
          own.map((job) => job.metadata.name),
          [backup.status?.jobName]
        )
      }
    })
  )

  it.effect(
    "a wrong password: Failed with a readable reason, a BackupFailed Event, and no storm of Jobs",
    () =>
      Effect.gen(function* () {
        const namespace = "wrong-password"
        yield* prepareNamespace(namespace, { name: "backup-secret", password: "not-the-password" })
        const pg = yield* Postgres
        yield* apply(originalExample({ namespace, dbHost: pg.host, dbPort: pg.port }))
        const wrongRun = yield* failed(namespace)
        const ready = readyOf(wrongRun)
        assert.strictEqual(ready?.status, "False")
        assert.strictEqual(ready?.reason, "BackupFailed")
        assert.include(ready?.message ?? "", "password authentication failed")
        assert.notInclude(ready?.message ?? "", "not-the-password", "the password never reaches the status")

        const warnings = yield* eventually(
          "a BackupFailed Warning Event",
          Effect.map(eventsIn(namespace), (events) => {
            const found = events.filter((event) => event.reason === "BackupFailed" && event.type === "Warning")
            return found.length > 0 ? found : undefined
          }),
          "30 seconds"
        )
        assert.include(warnings[0]?.note ?? "", "password authentication failed")
        assert.include(warnings[0]?.note ?? "", wrongRun.status?.jobName ?? "?")

        // The next run waits for the interval (5 minutes): one Job, its Pod and one retry, nothing more.
        yield* holdsFor(
          "one Job with at most 2 Pods, and the status unchanged",
          Effect.gen(function* () {
            const jobs = yield* backupJobs(namespace)
            const pods = yield* backupPods(namespace)
            const backup = yield* getBackup(namespace, "database-backup")
            if (jobs.length !== 1) return `${jobs.length} Jobs: ${jobs.map((job) => job.metadata.name).join(", ")}`
            if (pods.length > 2) return `${pods.length} Pods`
            if (backup.status?.status !== "Failed" || backup.status.jobName !== wrongRun.status?.jobName)
              return `status ${JSON.stringify(backup.status)}`
            return undefined
          }),
          "20 seconds"
        )
        const events = yield* eventsIn(namespace)
        const failures = events.filter((event) => event.reason === "BackupFailed")
        assert.strictEqual(failures.length, 1, "one BackupFailed Event")
        assert.strictEqual(failures[0]?.series?.count ?? 1, 1, "the failure was reported once")
        assert.strictEqual(events.filter((event) => event.reason === "BackupStarted").length, 1)
      }),
    { timeout: 120_000 }
  )

  it.effect("operator killed mid-backup, Job finishes while it is down: one Job, outcome recorded on restart", () =>
    Effect.gen(function* () {
      const namespace = "crash-while-down"
      yield* prepareNamespace(namespace, { name: "backup-secret", password })
      const pg = yield* Postgres
      const proxy = yield* gatedProxy({ host: pg.host, port: pg.port })
      yield* apply(originalExample({ namespace, dbHost: "127.0.0.1", dbPort: proxy.port }))
      const running = yield* eventually(
        "status Running and the runner connected",
        Effect.gen(function* () {
          const backup = yield* getBackup(namespace, "database-backup")
          return backup.status?.status === "Running" && (yield* proxy.accepted) > 0 ? backup : undefined
        })
      )
      const jobName = running.status?.jobName ?? ""

      const operator = yield* E2E.Operator
      yield* operator.kill
      yield* proxy.open
      const finished = yield* eventually(
        "the Job to complete while the operator is down",
        Effect.map(backupJobs(namespace), (jobs) => jobs.find((job) => jobOutcome(job) !== undefined))
      )
      assert.strictEqual(jobOutcome(finished), "Complete")
      assert.strictEqual(finished.metadata.name, jobName)
      assert.isUndefined(finished.metadata.annotations?.[JobLabels.Annotation.recorded], "nobody recorded it yet")

      const starts = yield* operatorStarts
      yield* operator.start
      yield* operatorStarted(starts)
      const done = yield* succeeded(namespace)
      assert.strictEqual(done.status?.jobName, jobName)
      assert.strictEqual(done.status?.backupLocation, running.status?.backupLocation)
      assert.strictEqual(done.status?.lastBackupTime, running.status?.lastBackupTime, "the same run")
      assert.strictEqual(readyOf(done)?.status, "True")
      const recorded = yield* eventually(
        "the Job marked recorded",
        Effect.map(backupJobs(namespace), (jobs) =>
          jobs.find((job) => job.metadata.annotations?.[JobLabels.Annotation.recorded] === "Success")
        ),
        "30 seconds"
      )
      assert.strictEqual(recorded.metadata.name, jobName)
      const succeededEvents = yield* eventually(
        "a BackupSucceeded Event",
        Effect.map(eventsIn(namespace), (events) => {
          const found = events.filter((event) => event.reason === "BackupSucceeded")
          return found.length > 0 ? found : undefined
        }),
        "30 seconds"
      )
      assert.include(succeededEvents[0]?.note ?? "", jobName)
      yield* holdsFor(
        "still exactly the one Job",
        Effect.map(backupJobs(namespace), (jobs) =>
          jobs.length === 1 ? undefined : `${jobs.map((job) => job.metadata.name).join(", ")}`
        ),
        "5 seconds"
      )
    })
  )

  it.effect("operator killed and restarted while a backup runs: no second Job, outcome recorded", () =>
    Effect.gen(function* () {
      const namespace = "crash-while-running"
      yield* prepareNamespace(namespace, { name: "backup-secret", password })
      const pg = yield* Postgres
      const proxy = yield* gatedProxy({ host: pg.host, port: pg.port })
      yield* apply(originalExample({ namespace, dbHost: "127.0.0.1", dbPort: proxy.port }))
      const running = yield* eventually(
        "status Running and the runner connected",
        Effect.gen(function* () {
          const backup = yield* getBackup(namespace, "database-backup")
          return backup.status?.status === "Running" && (yield* proxy.accepted) > 0 ? backup : undefined
        })
      )
      const jobName = running.status?.jobName ?? ""

      const operator = yield* E2E.Operator
      const starts = yield* operatorStarts
      yield* operator.kill
      yield* operator.start
      yield* operatorStarted(starts)
      // The restarted operator finds the run in progress and leaves it alone.
      yield* holdsFor(
        "one running Job and status Running",
        Effect.gen(function* () {
          const jobs = yield* backupJobs(namespace)
          const backup = yield* getBackup(namespace, "database-backup")
          if (jobs.length !== 1 || jobs[0]?.metadata.name !== jobName)
            return `Jobs ${jobs.map((job) => job.metadata.name).join(", ")}`
          if (jobOutcome(jobs[0]) !== undefined) return "the Job finished while held"
          if (backup.status?.status !== "Running" || backup.status.jobName !== jobName)
            return `status ${JSON.stringify(backup.status)}`
          return undefined
        }),
        "3 seconds"
      )
      yield* proxy.open
      const done = yield* succeeded(namespace)
      assert.strictEqual(done.status?.jobName, jobName)
      assert.strictEqual(done.status?.lastBackupTime, running.status?.lastBackupTime)
      assert.isDefined(done.status?.lastBackupSha256)
      const jobs = yield* backupJobs(namespace)
      assert.deepStrictEqual(
        jobs.map((job) => job.metadata.name),
        [jobName]
      )
    })
  )

  it.effect("an operator restart after a success does not start an extra run", () =>
    Effect.gen(function* () {
      const namespace = "restart"
      yield* prepareNamespace(namespace, { name: "backup-secret", password })
      const pg = yield* Postgres
      yield* apply(originalExample({ namespace, dbHost: pg.host, dbPort: pg.port }))
      const done = yield* succeeded(namespace)

      const operator = yield* E2E.Operator
      const starts = yield* operatorStarts
      yield* operator.stop
      yield* operator.start
      yield* operatorStarted(starts)
      yield* holdsFor(
        "no new Job and an unchanged status (the next run is 5 minutes after the last)",
        Effect.gen(function* () {
          const jobs = yield* backupJobs(namespace)
          const backup = yield* getBackup(namespace, "database-backup")
          if (jobs.length !== 1) return `${jobs.length} Jobs: ${jobs.map((job) => job.metadata.name).join(", ")}`
          if (
            backup.status?.status !== "Success" ||
            backup.status.jobName !== done.status?.jobName ||
            backup.status.lastBackupTime !== done.status?.lastBackupTime
          )
            return `status ${JSON.stringify(backup.status)}`
          return undefined
        }),
        "15 seconds"
      )
    })
  )

  it.effect(
    "a Job namespace other than the resource's, not allowed: Ready=False CrossNamespaceNotAllowed, no Job",
    () =>
      Effect.gen(function* () {
        const namespace = "cross-home"
        const elsewhere = "cross-elsewhere"
        yield* prepareNamespace(namespace, { name: "backup-secret", password })
        yield* prepareNamespace(elsewhere, { name: "backup-secret", password })
        const pg = yield* Postgres
        yield* apply(originalExample({ namespace, dbHost: pg.host, dbPort: pg.port, backupJobNamespace: elsewhere }))
        const backup = yield* eventually(
          "Ready=False",
          Effect.map(getBackup(namespace, "database-backup"), (b) => (readyOf(b)?.status === "False" ? b : undefined))
        )
        const ready = readyOf(backup)
        assert.strictEqual(ready?.reason, "CrossNamespaceNotAllowed")
        assert.include(ready?.message ?? "", elsewhere)
        assert.include(ready?.message ?? "", "--allowed-namespaces")
        assert.isUndefined(backup.status?.status, "no run was ever started")
        const warning = yield* eventually(
          "a CrossNamespaceNotAllowed Warning Event",
          Effect.map(eventsIn(namespace), (events) =>
            events.find((event) => event.reason === "CrossNamespaceNotAllowed" && event.type === "Warning")
          ),
          "30 seconds"
        )
        assert.include(warning.note ?? "", elsewhere)
        // A terminal problem: not retried until the spec changes, so nothing runs and nothing repeats.
        yield* holdsFor(
          "no Job in either namespace and a single Warning",
          Effect.gen(function* () {
            const jobs = [...(yield* backupJobs(namespace)), ...(yield* backupJobs(elsewhere))]
            if (jobs.length > 0) return `Jobs ${jobs.map((job) => `${job.metadata.namespace}/${job.metadata.name}`)}`
            const warnings = (yield* eventsIn(namespace)).filter((event) => event.reason === "CrossNamespaceNotAllowed")
            if (warnings.length !== 1 || (warnings[0]?.series?.count ?? 1) !== 1)
              return `warnings ${JSON.stringify(warnings.map((event) => event.series ?? null))}`
            return undefined
          }),
          "5 seconds"
        )
      })
  )
})
