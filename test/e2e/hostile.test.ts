import { BackupDatabaseSchema, BackupDatabaseSchemaSpec, JobLabels } from "@db-backup-operator/backup-api"
import { KubeClient } from "@db-backup-operator/kube"
import { Postgres } from "@db-backup-operator/testing"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import fc from "fast-check"
import * as E2E from "./environment.ts"
import {
  applyYaml,
  backupJobs,
  eventually,
  exampleBucket,
  kubectl,
  operatorMetrics,
  operatorStarted,
  operatorStarts,
  prepareNamespace,
  seedExampleDatabase,
  seriesValue
} from "./support.ts"

// Random resources the CRD accepts, all at once, against the running operator
// (issue 13 §2): each is handled (its status says Ready or why not, for the
// generation it saw), the operator neither crashes nor loops, no resource gets
// a storm of Jobs, and the password is nowhere in what the API server holds.
// The values come from fast-check with a seed printed on failure, so a failing
// set can be replayed (HOSTILE_SEED=...).

const password = "Hostile-Pa55word-never-shown"
const namespace = "hostile"
const count = 24

const Environment = Layer.effectDiscard(seedExampleDatabase(password)).pipe(Layer.provideMerge(E2E.layer))

const isSpec = Schema.is(BackupDatabaseSchemaSpec)
const identifier = fc.oneof(
  fc.constantFrom("api", "team03"),
  fc.string({ minLength: 1, maxLength: 20 }).filter((s) => s.trim() !== "" && !/\p{Cc}/u.test(s)),
  fc.constantFrom("--all", "a=b", "host=evil", "postgresql://evil/db", "x' OR '1'='1", "日本語", "é".repeat(31))
)

/** `arbitrary` in one case of five, else absent. */
const sometimes = <A>(arbitrary: fc.Arbitrary<A>) =>
  fc.oneof({ arbitrary: fc.constant(undefined), weight: 4 }, { arbitrary, weight: 1 })

/** A spec the CRD accepts: every field valid on its own, the cross-field rules kept. */
const specOf = (pg: { readonly host: string; readonly port: number }) =>
  fc
    .record({
      target: fc.constantFrom(
        { dbHost: pg.host, dbPort: pg.port },
        { dbHost: "127.0.0.1", dbPort: 1 },
        { dbHost: "no-such-host.invalid", dbPort: 5432 }
      ),
      dbUser: identifier,
      dbName: identifier,
      dbSchema: identifier,
      secret: fc.constantFrom(
        { dbPasswordSecretName: "backup-secret", dbPasswordSecretKey: "password" },
        { dbPasswordSecretName: "backup-secret", dbPasswordSecretKey: "no-such-key" },
        { dbPasswordSecretName: "no-such-secret", dbPasswordSecretKey: "password" }
      ),
      storage: fc.constantFrom(
        { gcsBucket: exampleBucket, gcpServiceAccount: "db-operator-gsa" },
        { gcsBucket: "no-such-bucket-here", gcpServiceAccount: "db-operator-gsa" },
        { storageRef: { name: "no-such-storage" } }
      ),
      // Each setting now and then: most resources back up at once, so Jobs run and fail in many ways.
      extra: fc.record({
        backupJobNamespace: sometimes(fc.constantFrom(namespace, "elsewhere")),
        compression: sometimes(fc.constantFrom("gzip", "zstd", "none")),
        schedule: sometimes(fc.constantFrom("@hourly", "@every 1h", "61 25 * * *", "0 0 31 2 *", "*/1 * * * *")),
        timeZone: sometimes(fc.constantFrom("UTC", "Europe/Berlin", "Mars/Olympus_Mons")),
        suspend: sometimes(fc.boolean()),
        sslMode: sometimes(fc.constantFrom("disable", "require", "verify-full")),
        retention: sometimes(fc.record({ keepLast: fc.integer({ min: 1, max: 5 }) })),
        backoffLimit: sometimes(fc.integer({ min: 0, max: 3 })),
        activeDeadlineSeconds: sometimes(fc.integer({ min: 60, max: 600 })),
        resources: sometimes(fc.constantFrom({ limits: { memory: "256Mi" } }, { requests: { cpu: "1m", memory: 1 } }))
      })
    })
    .map(({ target, secret, storage, extra, ...names }) => ({
      ...target,
      ...names,
      ...secret,
      ...storage,
      kubeServiceAccount: "backup-sa",
      ...Object.fromEntries(Object.entries(extra).filter(([, value]) => value !== undefined))
    }))
    .filter(isSpec)

layer(Environment, { timeout: "300 seconds", excludeTestServices: true })("hostile resources", (it) => {
  it.effect(
    `${count} random accepted resources at once: each is handled, no crash, no loop, no Job storm, no password shown`,
    () =>
      Effect.gen(function* () {
        const pg = yield* Postgres
        const seed = Number(process.env.HOSTILE_SEED ?? Date.now() % 2 ** 31)
        const replay = `(replay with HOSTILE_SEED=${seed})`
        yield* prepareNamespace(namespace, { name: "backup-secret", password })
        // Started once before the resources arrive; a crash would show as a second start.
        yield* operatorStarted(0)
        const startsBefore = yield* operatorStarts

        const specs = fc.sample(specOf(pg), { numRuns: count, seed })
        for (const [index, spec] of specs.entries()) {
          const resource = {
            apiVersion: BackupDatabaseSchema.apiVersion,
            kind: BackupDatabaseSchema.kind,
            metadata: { name: `fuzz-${index}`, namespace },
            spec
          }
          // JSON is YAML: kubectl apply -f, as a user would.
          const applied = yield* applyYaml(JSON.stringify(resource))
          assert.strictEqual(applied.exitCode, 0, `${replay} ${JSON.stringify(spec)}: ${applied.stderr}`)
        }

        // Handled: every resource has a Ready condition for the generation it has.
        const list = KubeClient.use((kube) => kube.list(BackupDatabaseSchema, { namespace })).pipe(
          Effect.map((result) => result.items)
        )
        const handled = yield* eventually(
          `every resource's status to answer for its generation ${replay}`,
          Effect.map(list, (items) =>
            items.length === count &&
            items.every((item) => {
              const ready = item.status?.conditions?.find((condition) => condition.type === "Ready")
              return ready !== undefined && ready.observedGeneration === item.metadata.generation
            })
              ? items
              : undefined
          ),
          "120 seconds"
        )
        for (const item of handled) {
          const ready = item.status?.conditions?.find((condition) => condition.type === "Ready")
          assert.isAbove(ready?.message?.length ?? 0, 0, `${item.metadata.name} says nothing ${replay}`)
        }

        // No loop: once handled, the backup controller reconciles each resource rarely, not continuously.
        // Every outcome counts: a loop may requeue or fail as well as succeed.
        const reconciles = Effect.map(operatorMetrics, (text) => {
          const values = ["success", "requeue_after", "error"].map((result) =>
            seriesValue(text, "controller_runtime_reconcile_total", { controller: "backupdatabaseschema", result })
          )
          assert.isTrue(
            values.some((value) => value !== undefined),
            "the backup controller's reconcile counter"
          )
          return values.reduce<number>((sum, value) => sum + (value ?? 0), 0)
        })
        const before = yield* reconciles
        yield* Effect.sleep("10 seconds")
        const after = yield* reconciles
        assert.isAtMost(after - before, count * 3, `reconciles in 10 s after settling ${replay}`)

        // No storm: at most one Job per resource (the default interval is 5 minutes), and no crash.
        const jobs = yield* backupJobs(namespace)
        const perResource = new Map<string, number>()
        for (const job of jobs) {
          const uid = job.metadata.labels?.[JobLabels.Label.resourceUid] ?? "?"
          perResource.set(uid, (perResource.get(uid) ?? 0) + 1)
        }
        for (const [uid, jobsOf] of perResource) assert.isAtMost(jobsOf, 1, `Jobs of resource ${uid} ${replay}`)
        assert.strictEqual(yield* operatorStarts, startsBefore, `the operator restarted ${replay}`)
        const reasons = new Map<string, number>()
        for (const item of handled) {
          const reason = item.status?.conditions?.find((condition) => condition.type === "Ready")?.reason ?? "?"
          reasons.set(reason, (reasons.get(reason) ?? 0) + 1)
        }
        console.log(
          `hostile e2e: seed ${seed}; Ready reasons ${JSON.stringify(Object.fromEntries(reasons))}; ${jobs.length} Jobs; ${after - before} reconciles in the 10 s after settling`
        )

        // The password is nowhere the API server keeps what the operator wrote.
        for (const kind of ["backupdatabaseschemas", "events", "jobs", "backups"]) {
          const dumped = yield* kubectl(["get", kind, "-n", namespace, "-o", "json"])
          assert.notInclude(dumped, password, `${kind} ${replay}`)
        }
      })
  )
})
