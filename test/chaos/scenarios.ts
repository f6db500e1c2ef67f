import { Backup } from "@db-backup-operator/backup-api"
import { type Job, KubeClient } from "@db-backup-operator/kube"
import { GcsObjectStore } from "@db-backup-operator/storage"
import { GcsEmulator, Postgres } from "@db-backup-operator/testing"
import { Effect, Random } from "effect"
import {
  applyYaml,
  eventually,
  exampleBucket,
  kubectl,
  operatorStarted,
  operatorStarts,
  originalExample,
  prepareNamespace,
  seedExampleDatabase,
  watchJobs
} from "../e2e/support.ts"
import { OperatorProcess } from "../stack/localStack.ts"
import { checkInvariants, type Invariants } from "./invariants.ts"

/**
 * The fault scenarios of `npm run chaos` (main.ts), also run in a short
 * profile by `npm test` (chaos.test.ts). Each makes scheduled runs on the
 * local stack while it injects its fault, stops by itself, lets the runs in
 * flight finish, and counts the invariants (invariants.ts).
 */

/** How much a scenario does. */
export interface ScenarioOptions {
  /** Backup Jobs to reach while faults go on. */
  readonly runs: number
  /** BackupDatabaseSchemas on `@every 10s`, against one database. */
  readonly resources: number
  /** Upper bound on the time faults go on, whatever the runs. */
  readonly maxMinutes?: number | undefined
}

export const namespace = "chaos"
export const password = "Chaos-Pa55word"

export interface ScenarioResult {
  readonly scenario: string
  readonly faults: number
  /** Milliseconds from each restart until the backup controller ran again. */
  readonly recoveries: ReadonlyArray<number>
  readonly seconds: number
  readonly invariants: Invariants
}

/** A random whole number of milliseconds in [from, to). */
const between = (from: number, to: number) => Effect.map(Random.next, (x) => Math.floor(from + x * (to - from)))

/** Suspends every resource, waits until no run is in flight, and counts the invariants. */
const settleAndCount = (history: Effect.Effect<ReadonlyArray<Job>>, resourceCount: number) =>
  Effect.gen(function* () {
    for (let i = 0; i < resourceCount; i++) {
      yield* kubectl(["patch", "bds", `db-${i}`, "-n", namespace, "--type", "merge", "-p", '{"spec":{"suspend":true}}'])
    }
    const kube = yield* KubeClient
    const backups = yield* eventually(
      "every started run to finish and be recorded",
      Effect.gen(function* () {
        const jobs = yield* history
        const records = (yield* kube.list(Backup, { namespace })).items
        const running = records.some((record) => record.status?.phase === "Running")
        const unfinished = jobs.some(
          (job) =>
            !(job.status?.conditions ?? []).some(
              (c) => (c.type === "Complete" || c.type === "Failed") && c.status === "True"
            )
        )
        return running || unfinished ? undefined : records
      }),
      "180 seconds"
    )
    const gcs = yield* GcsEmulator
    const store = GcsObjectStore.make({ apiEndpoint: gcs.endpoint })
    const objects = yield* store.list(exampleBucket, { prefix: "backups/" }).pipe(Effect.orDie)
    return checkInvariants({
      backups,
      jobs: yield* history,
      objects: objects.map((info) => info.object),
      bucketUrl: `gs://${exampleBucket}`
    })
  })

/** The database, the namespace and its Secret, and the operator up: what every scenario starts from. */
export const prepare = Effect.gen(function* () {
  yield* seedExampleDatabase(password)
  yield* prepareNamespace(namespace, { name: "backup-secret", password })
  yield* operatorStarted(0)
})

/** The operator killed (SIGKILL, no shutdown) at random moments until `options.runs` Jobs were made. */
export const operatorKills = (options: ScenarioOptions) =>
  Effect.gen(function* () {
    const { runs: targetRuns, resources: resourceCount } = options
    const operator = yield* OperatorProcess
    const pg = yield* Postgres
    const watched = yield* watchJobs(namespace)
    const jobs = Effect.map(watched.seen, (seen) => [...seen.values()])
    for (let i = 0; i < resourceCount; i++) {
      const applied = yield* applyYaml(
        `${originalExample({ name: `db-${i}`, namespace, dbHost: pg.host, dbPort: pg.port })}  schedule: "@every 10s"\n`
      )
      if (applied.exitCode !== 0) return yield* Effect.die(new Error(applied.stderr))
    }
    const started = Date.now()
    const recoveries: Array<number> = []
    while ((yield* jobs).length < targetRuns && Date.now() - started < (options.maxMinutes ?? 30) * 60_000) {
      yield* Effect.sleep(yield* between(2000, 6000))
      const starts = yield* operatorStarts
      yield* operator.kill
      yield* Effect.sleep(yield* between(200, 2000))
      const restarted = Date.now()
      yield* operator.start
      yield* operatorStarted(starts)
      recoveries.push(Date.now() - restarted)
      process.stdout.write(`\roperator SIGKILL: ${recoveries.length} kills, ${(yield* jobs).length} runs`)
    }
    process.stdout.write("\n")
    const seconds = (Date.now() - started) / 1000
    const invariants = yield* settleAndCount(jobs, resourceCount)
    return {
      scenario: "operator SIGKILL",
      faults: recoveries.length,
      recoveries,
      seconds,
      invariants
    } satisfies ScenarioResult
  })

/** Any duplicated run, lost outcome or incomplete object. */
export const violated = (result: ScenarioResult): boolean =>
  result.invariants.duplicatedRuns + result.invariants.lostOutcomes + result.invariants.incompleteObjects > 0
