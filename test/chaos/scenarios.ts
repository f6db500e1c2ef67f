import { Backup, JobLabels } from "@db-backup-operator/backup-api"
import { type Job, jobOutcome, KubeClient } from "@db-backup-operator/kube"
import { GcsObjectStore } from "@db-backup-operator/storage"
import { ControlPlane, GcsEmulator, Postgres } from "@db-backup-operator/testing"
import { Effect, Random } from "effect"
import {
  applyYaml,
  backupPods,
  eventually,
  exampleBucket,
  kubectl,
  operatorStarted,
  operatorStarts,
  originalExample,
  prepareNamespace,
  seedExampleDatabase,
  watchHistory,
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

export const password = "Chaos-Pa55word"

export interface ScenarioResult {
  readonly scenario: string
  readonly faults: number
  /** Milliseconds from each fault until the part it hit served again (none where that has no meaning). */
  readonly recoveries: ReadonlyArray<number>
  readonly seconds: number
  readonly invariants: Invariants
}

/** A random whole number of milliseconds in [from, to). */
export const between = (from: number, to: number) => Random.nextIntBetween(from, to, { halfOpen: true })

/** Suspends every resource, waits until no run is in flight, and counts the invariants. */
export const settleAndCount = (
  history: Effect.Effect<ReadonlyArray<Job>>,
  namespace: string,
  resourceCount: number,
  deletedRecords: Effect.Effect<ReadonlyArray<Backup>> = Effect.succeed([])
) =>
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
        // A record still Running whose Job the operator has marked recorded will never change: a
        // lost outcome to count, not a run in flight to wait for.
        const marked = new Set(
          jobs
            .filter((job) => job.metadata.annotations?.[JobLabels.Annotation.recorded] !== undefined)
            .map((job) => job.metadata.annotations?.[JobLabels.Annotation.backup])
        )
        const running = records.some(
          (record) => record.status?.phase === "Running" && !marked.has(record.metadata.name)
        )
        const unfinished = jobs.some((job) => jobOutcome(job) === undefined)
        return running || unfinished ? undefined : records
      }),
      "180 seconds"
    )
    const gcs = yield* GcsEmulator
    const store = GcsObjectStore.make({ apiEndpoint: gcs.endpoint })
    // Each scenario's resources have their own namespace, and so their own prefix.
    const objects = yield* store.list(exampleBucket, { prefix: `backups/${namespace}/` }).pipe(Effect.orDie)
    return checkInvariants({
      backups,
      deletedBackups: yield* deletedRecords,
      jobs: yield* history,
      objects: objects.map((info) => info.object),
      bucketUrl: `gs://${exampleBucket}`
    })
  })

/** The database seeded and the operator up: what every scenario starts from. */
export const prepare = Effect.gen(function* () {
  yield* seedExampleDatabase(password)
  yield* operatorStarted(0)
})

/**
 * {@link prepare}, unless a scenario before it on the same stack already
 * seeded the database: tests that share one stack can then run in any order,
 * or alone (`-t`).
 */
export const prepareOnce = Effect.gen(function* () {
  const pg = yield* Postgres
  const seeded = yield* pg.psql("SELECT count(*) FROM pg_database WHERE datname = 'api'")
  if (seeded.trim() === "0") yield* prepare
})

/**
 * A fault, injected once, given how to read the number of runs so far; its
 * recovery in milliseconds, if it has one, or `undefined` if there was nothing
 * to hit.
 */
export type Fault<R> = (
  runs: Effect.Effect<number>
) => Effect.Effect<{ readonly recovery?: number } | undefined, Error, R>

/**
 * Runs `options.resources` resources on `@every 10s` in a namespace of their
 * own, injects `fault` after a pause of `pause` milliseconds (a random length
 * in that range) until `options.runs` Jobs were made, then settles and counts.
 */
export const scenario = <R>(
  name: string,
  slug: string,
  pause: readonly [number, number],
  fault: Fault<R>,
  options: ScenarioOptions
) =>
  Effect.gen(function* () {
    const namespace = `chaos-${slug}`
    const pg = yield* Postgres
    yield* prepareNamespace(namespace, { name: "backup-secret", password })
    const watched = yield* watchJobs(namespace)
    // The operator deletes records (failed runs beyond the history limit): what they said still counts.
    const records = yield* watchHistory(Backup, namespace)
    const jobs = Effect.map(watched.seen, (seen) => [...seen.values()])
    for (let i = 0; i < options.resources; i++) {
      const applied = yield* applyYaml(
        `${originalExample({ name: `db-${i}`, namespace, dbHost: pg.host, dbPort: pg.port })}  schedule: "@every 10s"\n`
      )
      if (applied.exitCode !== 0) return yield* Effect.die(new Error(applied.stderr))
    }
    const started = Date.now()
    const recoveries: Array<number> = []
    let faults = 0
    while ((yield* jobs).length < options.runs && Date.now() - started < (options.maxMinutes ?? 30) * 60_000) {
      yield* Effect.sleep(yield* between(pause[0], pause[1]))
      const hit = yield* fault(Effect.map(jobs, (all) => all.length))
      if (hit === undefined) continue
      faults += 1
      if (hit.recovery !== undefined) recoveries.push(hit.recovery)
      process.stdout.write(`\r${name}: ${faults} faults, ${(yield* jobs).length} runs`)
    }
    process.stdout.write("\n")
    const seconds = (Date.now() - started) / 1000
    const invariants = yield* settleAndCount(jobs, namespace, options.resources, records.deleted)
    return { scenario: name, faults, recoveries, seconds, invariants } satisfies ScenarioResult
  })

/** The operator killed (SIGKILL, no shutdown) and started again 0.2-2 s later; recovery: until its controller runs. */
export const operatorKills = (options: ScenarioOptions) =>
  scenario(
    "operator SIGKILL",
    "operator-kill",
    [2000, 6000],
    () =>
      Effect.gen(function* () {
        const operator = yield* OperatorProcess
        const starts = yield* operatorStarts
        yield* operator.kill
        yield* Effect.sleep(yield* between(200, 2000))
        const restarted = Date.now()
        yield* operator.start
        yield* operatorStarted(starts)
        return { recovery: Date.now() - restarted }
      }),
    options
  )

/**
 * kube-apiserver stopped and started again on the same etcd, every 20-40 s;
 * recovery: from the stop until the operator creates its next Job (the
 * operator's watches and the process node's must all come back).
 */
export const apiServerRestarts = (options: ScenarioOptions) =>
  scenario(
    "kube-apiserver restart",
    "apiserver-restart",
    [20_000, 40_000],
    (runs) =>
      Effect.gen(function* () {
        const controlPlane = yield* ControlPlane
        const before = yield* runs
        const stopped = Date.now()
        yield* controlPlane.restartApiServer.pipe(Effect.mapError((e) => new Error(e.message)))
        yield* eventually(
          "the operator's next Job after the API server came back",
          Effect.map(runs, (n) => (n > before ? n : undefined)),
          "120 seconds"
        )
        return { recovery: Date.now() - stopped }
      }),
    options
  )

/** A running backup Pod deleted mid-run (when one runs); the Job's own retry and the operator take it from there. */
export const backupPodDeletions = (options: ScenarioOptions) =>
  scenario(
    "backup Pod deleted",
    "pod-delete",
    [2000, 6000],
    () =>
      Effect.gen(function* () {
        const pods = yield* backupPods("chaos-pod-delete")
        const running = pods.find((pod) => pod.status?.phase === "Running")
        if (running === undefined) return undefined
        yield* kubectl(["delete", "pod", running.metadata.name ?? "", "-n", "chaos-pod-delete", "--wait=false"]).pipe(
          Effect.ignore
        )
        return {}
      }),
    options
  )

/**
 * Any duplicated run, lost outcome or incomplete object, or any other
 * violation a scenario adds to the list (a frozen leader that acted after
 * losing its Lease, in leaderElection.ts).
 */
export const violated = (result: ScenarioResult): boolean =>
  result.invariants.duplicatedRuns + result.invariants.lostOutcomes + result.invariants.incompleteObjects > 0 ||
  result.invariants.violations.length > 0
