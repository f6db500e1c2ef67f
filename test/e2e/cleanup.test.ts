import { JobLabels } from "@db-backup-operator/backup-api"
import { type Job, jobOutcome } from "@db-backup-operator/kube"
import { Postgres } from "@db-backup-operator/testing"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as E2E from "./environment.ts"
import {
  applyYaml,
  backupJobs,
  eventsIn,
  eventually,
  kubectl,
  originalExample,
  prepareNamespace,
  seedExampleDatabase,
  watchJobs
} from "./support.ts"

const password = "s3cret-Pa55"

/** An operator that runs each resource every 3 seconds, so a test sees many runs. */
const Environment = Layer.effectDiscard(seedExampleDatabase(password)).pipe(
  Layer.provideMerge(E2E.layerWith({ backupInterval: "3 seconds" }))
)

const finishedAt = (job: Job) =>
  job.status?.completionTime ??
  job.status?.conditions?.find((c) => c.status === "True" && (c.type === "Complete" || c.type === "Failed"))
    ?.lastTransitionTime ??
  ""

const newestFirst = (jobs: Iterable<Job>) => [...jobs].sort((a, b) => finishedAt(b).localeCompare(finishedAt(a)))
const names = (jobs: ReadonlyArray<Job>) => jobs.map((job) => job.metadata.name ?? "")
const withOutcome = (jobs: Iterable<Job>, outcome: "Complete" | "Failed") =>
  [...jobs].filter((job) => jobOutcome(job) === outcome)

layer(Environment, { timeout: "300 seconds", excludeTestServices: true })("job cleanup", (it) => {
  it.effect(
    "keeps the 3 newest successful and the newest failed Job of a resource, deleting only recorded ones",
    () =>
      Effect.gen(function* () {
        const namespace = "history"
        yield* prepareNamespace(namespace, { name: "backup-secret", password })
        const history = yield* watchJobs(namespace)
        const pg = yield* Postgres
        const applied = yield* applyYaml(originalExample({ namespace, dbHost: pg.host, dbPort: pg.port }))
        assert.strictEqual(applied.exitCode, 0, applied.stderr)

        // Successes until job-cleanup has deleted at least two of them.
        yield* eventually(
          "5 successful runs, 2 of them deleted",
          Effect.gen(function* () {
            const seen = yield* history.seen
            const deleted = yield* history.deleted
            return withOutcome(seen.values(), "Complete").length >= 5 && deleted.length >= 2 ? true : undefined
          }),
          "120 seconds"
        )
        // Then failures (the password changes under it) until one failed Job has been deleted too.
        yield* kubectl([
          "patch",
          "secret",
          "backup-secret",
          "-n",
          namespace,
          "--type=merge",
          "-p",
          JSON.stringify({ stringData: { password: "no-longer-valid" } })
        ])
        yield* eventually(
          "2 failed runs, 1 of them deleted",
          Effect.gen(function* () {
            const seen = yield* history.seen
            const deleted = yield* history.deleted
            return withOutcome(seen.values(), "Failed").length >= 2 && withOutcome(deleted, "Failed").length >= 1
              ? true
              : undefined
          }),
          "120 seconds"
        )

        // What is left of the finished Jobs: the 3 newest successes and the newest failure, all recorded.
        const kept = yield* eventually(
          "the finished Jobs to be exactly the 3 newest successes and the newest failure",
          Effect.gen(function* () {
            const finished = (yield* backupJobs(namespace)).filter((job) => jobOutcome(job) !== undefined)
            const all = [...(yield* history.seen).values()]
            const expected = [
              ...newestFirst(withOutcome(all, "Complete")).slice(0, 3),
              ...newestFirst(withOutcome(all, "Failed")).slice(0, 1)
            ]
            const sorted = (jobs: ReadonlyArray<Job>) => names(jobs).sort()
            const recorded = finished.every((job) => job.metadata.annotations?.[JobLabels.Annotation.recorded])
            return recorded && JSON.stringify(sorted(finished)) === JSON.stringify(sorted(expected))
              ? finished
              : undefined
          }),
          "60 seconds"
        )
        assert.strictEqual(withOutcome(kept, "Complete").length, 3)
        assert.strictEqual(withOutcome(kept, "Failed").length, 1)

        // Every deleted Job was finished and its outcome recorded first: marked, and announced by an Event.
        const deleted = yield* history.deleted
        assert.isAtLeast(deleted.length, 3)
        const events = yield* eventsIn(namespace)
        for (const job of deleted) {
          const name = job.metadata.name ?? ""
          const outcome = jobOutcome(job)
          assert.isDefined(outcome, `${name} was finished when deleted`)
          assert.strictEqual(
            job.metadata.annotations?.[JobLabels.Annotation.recorded],
            outcome === "Complete" ? "Success" : "Failed",
            `${name} was recorded before it was deleted`
          )
          const reason = outcome === "Complete" ? "BackupSucceeded" : "BackupFailed"
          assert.isTrue(
            events.some((event) => event.reason === reason && (event.note ?? "").includes(`Job ${name}:`)),
            `a ${reason} Event names ${name}`
          )
        }
        // One run at a time, all the way through.
        const runs = [...(yield* history.seen).values()].sort((a, b) =>
          (a.metadata.creationTimestamp ?? "").localeCompare(b.metadata.creationTimestamp ?? "")
        )
        for (const [index, job] of runs.entries()) {
          const next = runs[index + 1]
          if (next === undefined) break
          assert.isDefined(jobOutcome(job), `${job.metadata.name} finished before the next run`)
          assert.isAtMost(
            finishedAt(job).localeCompare(next.metadata.creationTimestamp ?? ""),
            0,
            `${job.metadata.name} finished before ${next.metadata.name} started`
          )
        }
      }),
    { timeout: 300_000 }
  )
})
