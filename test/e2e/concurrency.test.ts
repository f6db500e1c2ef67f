import type { BackupDatabaseSchema } from "@db-backup-operator/backup-api"
import { Postgres } from "@db-backup-operator/testing"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as E2E from "./environment.ts"
import {
  applyYaml,
  backupJobs,
  blackholePort,
  eventually,
  getBackup,
  holdsFor,
  kubectl,
  originalExample,
  prepareNamespace,
  seedExampleDatabase,
  succeeded
} from "./support.ts"

// The concurrency limits against the operator binary with one backup per database server
// at a time: a run over the limit waits with a reason, and starts when the busy one ends.

const password = "s3cret-Pa55"

const Environment = Layer.effectDiscard(seedExampleDatabase(password)).pipe(
  Layer.provideMerge(E2E.layerWith({ extraArgs: ["--max-concurrent-backups-per-server=1"] }))
)

const scheduledOf = (backup: BackupDatabaseSchema) =>
  backup.status?.conditions?.find((condition) => condition.type === "Scheduled")

const jobsOf = (namespace: string, name: string) =>
  Effect.map(backupJobs(namespace), (jobs) =>
    jobs.filter((job) => job.metadata.labels?.["backup.csyeteam03.xyz/resource-name"] === name)
  )

layer(Environment, { timeout: "240 seconds", excludeTestServices: true })("concurrency limits", (it) => {
  it.effect("a second run against a busy server waits (Scheduled=False ServerBusy), another server's does not", () =>
    Effect.gen(function* () {
      const namespace = "one-per-server"
      yield* prepareNamespace(namespace, { name: "backup-secret", password })
      // A server that accepts connections and never answers: a run against it stays busy.
      const port = yield* blackholePort
      const busy = (name: string) => originalExample({ name, namespace, dbHost: "127.0.0.1", dbPort: port })
      assert.strictEqual((yield* applyYaml(busy("first"))).exitCode, 0)
      const [firstJob] = yield* eventually(
        "the first run's Job",
        Effect.map(jobsOf(namespace, "first"), (jobs) => (jobs.length > 0 ? jobs : undefined))
      )
      assert.strictEqual((yield* applyYaml(busy("second"))).exitCode, 0)

      const waiting = yield* eventually(
        "second waits",
        Effect.map(getBackup(namespace, "second"), (backup) =>
          scheduledOf(backup)?.status === "False" ? backup : undefined
        )
      )
      const scheduled = scheduledOf(waiting)
      assert.strictEqual(scheduled?.reason, "ServerBusy")
      assert.include(scheduled?.message ?? "", `1 backup of 127.0.0.1:${port} is running`)
      assert.include(scheduled?.message ?? "", "--max-concurrent-backups-per-server=1")
      yield* holdsFor(
        "no Job for the waiting run",
        Effect.map(jobsOf(namespace, "second"), (jobs) => (jobs.length === 0 ? undefined : "a Job was created")),
        "8 seconds"
      )

      // Another database server is not held up.
      const pg = yield* Postgres
      assert.strictEqual(
        (yield* applyYaml(originalExample({ name: "third", namespace, dbHost: pg.host, dbPort: pg.port }))).exitCode,
        0
      )
      yield* succeeded(namespace, "third")

      // The busy run ends (its Job deleted): the waiting one starts, and says so.
      yield* kubectl(["delete", "job", firstJob?.metadata.name ?? "", "-n", namespace, "--wait=false"])
      yield* eventually(
        "second started",
        Effect.gen(function* () {
          const jobs = yield* jobsOf(namespace, "second")
          const backup = yield* getBackup(namespace, "second")
          return jobs.length === 1 && scheduledOf(backup) === undefined && backup.status?.status === "Running"
            ? true
            : undefined
        }),
        "30 seconds"
      )
    })
  )
})
