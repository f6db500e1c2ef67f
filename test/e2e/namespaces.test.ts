import { JobLabels } from "@db-backup-operator/backup-api"
import { jobOutcome } from "@db-backup-operator/kube"
import { Postgres } from "@db-backup-operator/testing"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as E2E from "./environment.ts"
import {
  applyYaml,
  backupJobs,
  eventually,
  getBackup,
  holdsFor,
  kubectl,
  operatorMetrics,
  originalExample,
  prepareNamespace,
  seedExampleDatabase,
  watchJobs
} from "./support.ts"

const password = "s3cret-Pa55"

// The operator serves only `served`; resources there may run their Jobs (and use Secrets) in
// `jobs`. So the operator watches backup Jobs in both, and BackupDatabaseSchemas in `served` only.
const served = "team-a"
const jobs = "team-a-jobs"
const elsewhere = "team-b"

const Environment = Layer.effectDiscard(seedExampleDatabase(password)).pipe(
  Layer.provideMerge(
    E2E.layerWith({
      backupInterval: "3 seconds",
      allowedNamespaces: [`${served}:${jobs}`],
      extraArgs: ["--namespaces", served]
    })
  )
)

layer(Environment, { timeout: "300 seconds", excludeTestServices: true })("--namespaces", (it) => {
  it.effect(
    "Jobs in an allowed other namespace are watched once and cleaned up; unserved namespaces are left alone",
    () =>
      Effect.gen(function* () {
        const pg = yield* Postgres
        yield* prepareNamespace(served, undefined)
        yield* prepareNamespace(jobs, { name: "backup-secret", password })
        yield* kubectl(["annotate", "secret", "backup-secret", "-n", jobs, `backup.csyeteam03.xyz/usable-by=${served}`])
        yield* prepareNamespace(elsewhere, { name: "backup-secret", password })
        const history = yield* watchJobs(jobs)

        const applied = yield* applyYaml(
          originalExample({
            namespace: served,
            dbHost: pg.host,
            dbPort: pg.port,
            secretNamespace: jobs,
            backupJobNamespace: jobs
          })
        )
        assert.strictEqual(applied.exitCode, 0, applied.stderr)
        // Not served: one in another namespace, and one in the Jobs' namespace (watched for Jobs only).
        for (const namespace of [elsewhere, jobs]) {
          const other = yield* applyYaml(
            originalExample({ name: "not-served", namespace, dbHost: pg.host, dbPort: pg.port })
          )
          assert.strictEqual(other.exitCode, 0, other.stderr)
        }

        // The runs go on every 3 s in the other namespace, and job-cleanup, which lists Jobs there
        // through the same cache, deletes the successful ones beyond the newest 3.
        yield* eventually(
          `5 successful runs in ${jobs}, 2 of them deleted by job-cleanup`,
          Effect.gen(function* () {
            const seen = [...(yield* history.seen).values()]
            const deleted = yield* history.deleted
            const succeeded = seen.filter((job) => jobOutcome(job) === "Complete")
            return succeeded.length >= 5 && deleted.length >= 2 ? true : undefined
          }),
          "150 seconds"
        )
        yield* eventually(
          `at most 3 finished Jobs left in ${jobs}`,
          Effect.map(backupJobs(jobs), (list) =>
            list.filter((job) => jobOutcome(job) !== undefined).length <= 3 ? true : undefined
          ),
          "30 seconds"
        )
        const status = (yield* getBackup(served, "database-backup")).status
        assert.isDefined(status?.lastSuccessfulBackupTime, "the served resource records its successes")

        // The unserved resources got nothing: no status, no Job.
        yield* holdsFor(
          "no status and no Job for resources outside --namespaces",
          Effect.gen(function* () {
            for (const namespace of [elsewhere, jobs]) {
              const other = yield* getBackup(namespace, "not-served")
              if (other.status !== undefined)
                return `${namespace}/not-served has a status: ${JSON.stringify(other.status)}`
            }
            const strays = (yield* backupJobs(elsewhere)).length
            return strays > 0 ? `${strays} Job(s) in ${elsewhere}` : undefined
          }),
          "5 seconds"
        )

        // One watch per namespace for backup Jobs, shared by both controllers, and one for restore
        // Jobs: no cluster-wide Job watch, and no second watch of the same Jobs.
        const metrics = yield* operatorMetrics
        const jobCaches = [
          ...new Set(
            [...metrics.matchAll(/^reflector_watches_total\{[^}]*cache="(Job [^"]*)"/gmu)].map((match) => match[1])
          )
        ].sort()
        assert.deepStrictEqual(
          jobCaches,
          [served, jobs]
            .flatMap((namespace) => [
              `Job namespace=${namespace} labels=${JobLabels.jobSelector}`,
              `Job namespace=${namespace} labels=${JobLabels.restoreJobSelector}`
            ])
            .sort()
        )
        const backupCaches = [
          ...new Set(
            [...metrics.matchAll(/^reflector_watches_total\{[^}]*cache="(BackupDatabaseSchema [^"]*)"/gmu)].map(
              (match) => match[1]
            )
          )
        ]
        assert.notInclude(backupCaches.join(","), "all-namespaces")

        // Deleting the resource takes its Jobs in the other namespace with it, finished ones too
        // (they have no owner reference there for the garbage collector to follow).
        yield* kubectl(["delete", "bds", "database-backup", "-n", served, "--wait=true"])
        yield* eventually(
          `no Job of ${served}/database-backup left in ${jobs}`,
          Effect.map(backupJobs(jobs), (list) =>
            list.some(
              (job) => job.metadata.annotations?.["backup.csyeteam03.xyz/resource"] === `${served}/database-backup`
            )
              ? undefined
              : true
          ),
          "30 seconds"
        )
      }),
    { timeout: 300_000 }
  )
})
