/**
 * Fault injection with the invariants counted (issue 13): runs scheduled
 * backups on the local stack (real control plane, PostgreSQL, the GCS
 * emulator, the process node running the real runner, the operator binary)
 * while a fault is injected over and over, then counts over every slot and
 * every run: duplicated runs, lost outcomes and objects that look complete
 * but are not (test/chaos/invariants.ts).
 *
 *   npm run chaos [-- --runs N] [--resources K] [--seed S]
 *   npm run chaos -- --load [--resources 1000] [--minutes 15] ...   (the load profile instead: see load.ts)
 *
 *   --runs N       backup Jobs to reach while faults go on (default 100)
 *   --resources K  BackupDatabaseSchemas on `@every 10s` against one database (default 10)
 *   --seed S       seed of the fault timing (default: the clock; printed)
 *   --only A,B     run only these scenarios (slugs below; default: all)
 *
 * Scenarios, one after the other, each with its own namespace and resources,
 * bounded in time and stopping by itself once N runs were made:
 *   - operator SIGKILL, every 2-6 s: killed at a random moment and started
 *     again 0.2-2 s later (recovery: until its backup controller runs again);
 *   - kube-apiserver restart, every 20-40 s: stopped and started on the same
 *     etcd (recovery: from the stop until the operator creates a Job again);
 *   - backup Pod deleted, every 2-6 s: a running backup Pod, mid-run;
 *   - leader SIGKILL, every 2-6 s: two replicas with --leader-elect in place
 *     of the stack's operator, the one holding the Lease killed and started
 *     again after the other took over (recovery: until the other holds the
 *     Lease and a Job is created again);
 *   - leader frozen past its Lease, every 2-6 s: the same two replicas, the
 *     leader SIGSTOPped until the other took over, then SIGCONTed: it must
 *     step down (log, exit 1) without writing anything (recovery: as above);
 *   - etcd restart, every 20-40 s: stopped and started on its data under a
 *     running API server (recovery: until the operator creates a Job again);
 *   - object store failing, every 2-6 s: the next request of a runner to
 *     the store, through a fault proxy, reset mid-request, answered 503/500,
 *     or stalled mid-upload for 2-15 s or 65 s (storeFaults.ts);
 *   - PostgreSQL restarted, every 2-6 s while a backup Pod runs: a fast
 *     shutdown cuts pg_dump off, then it starts again on the same port
 *     (recovery: until it accepts connections; databaseRestart.ts);
 *   - watch dies silently, every 5-15 s: every connection of the operator to
 *     the API server frozen (no byte either way, none closed) while new ones
 *     work (recovery: until it restarted a watch and created a Job again;
 *     silentWatch.ts).
 * The operator runs behind both proxies in every scenario (chaosStack.ts);
 * they pass everything through except in their own.
 * Exits 1 if any invariant is violated.
 */

import { parseArgs } from "node:util"
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Effect, Random } from "effect"
import { chaosStackLayer } from "./chaosStack.ts"
import { databaseRestarts } from "./databaseRestart.ts"
import { etcdRestarts } from "./etcdRestart.ts"
import { leaderFreezes, leaderKills } from "./leaderElection.ts"
import { runLoad } from "./load.ts"
import {
  apiServerRestarts,
  backupPodDeletions,
  operatorKills,
  prepare,
  type ScenarioResult,
  violated
} from "./scenarios.ts"
import { silentWatches } from "./silentWatch.ts"
import { storeFaults } from "./storeFaults.ts"

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "100" },
    // No default here: the load profile's is another (load.ts).
    resources: { type: "string" },
    seed: { type: "string" },
    only: { type: "string" },
    // The load profile (load.ts) instead of the scenarios.
    load: { type: "boolean", default: false },
    minutes: { type: "string" },
    runner: { type: "string" },
    ramp: { type: "string" },
    "kcm-qps": { type: "string" },
    concurrency: { type: "string" },
    workers: { type: "string" },
    "api-qps": { type: "string" },
    "cpu-prof": { type: "string" }
  }
})
const targetRuns = Number(values.runs)
const resourceCount = Number(values.resources ?? "10")
const seed = Number(values.seed ?? Date.now() % 2 ** 31)
if (!Number.isInteger(targetRuns) || targetRuns < 1 || !Number.isInteger(resourceCount) || resourceCount < 1) {
  console.error("--runs and --resources must be positive integers")
  process.exit(2)
}

const percentile = (values: ReadonlyArray<number>, p: number) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted.length === 0 ? 0 : (sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0)
}

const report = (results: ReadonlyArray<ScenarioResult>) => {
  const header = [
    "scenario",
    "time s",
    "faults",
    "slots",
    "runs",
    "duplicated runs",
    "lost outcomes",
    "incomplete objects",
    "recovery p50 / max s"
  ]
  const rows = results.map((r) => [
    r.scenario,
    r.seconds.toFixed(0),
    String(r.faults),
    String(r.invariants.slots),
    String(r.invariants.runs),
    String(r.invariants.duplicatedRuns),
    String(r.invariants.lostOutcomes),
    String(r.invariants.incompleteObjects),
    r.recoveries.length === 0
      ? "-"
      : `${(percentile(r.recoveries, 0.5) / 1000).toFixed(2)} / ${(Math.max(...r.recoveries) / 1000).toFixed(2)}`
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) => cells.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join("  ")
  console.log("")
  console.log(line(header))
  console.log(line(widths.map((w) => "-".repeat(w))))
  for (const row of rows) console.log(line(row))
  for (const r of results) for (const violation of r.invariants.violations) console.log(`  ${r.scenario}: ${violation}`)
}

/** Every scenario by its slug (`--only`), in the order they run. */
const scenarios = {
  "operator-kill": operatorKills,
  "apiserver-restart": apiServerRestarts,
  "pod-delete": backupPodDeletions,
  "leader-kill": leaderKills,
  "leader-freeze": leaderFreezes,
  "etcd-restart": etcdRestarts,
  "store-faults": storeFaults,
  "db-restart": databaseRestarts,
  "silent-watch": silentWatches
} as const
type Slug = keyof typeof scenarios
const isSlug = (slug: string): slug is Slug => slug in scenarios
const chosen = values.only === undefined ? Object.keys(scenarios) : values.only.split(",")
const unknown = chosen.filter((slug) => !isSlug(slug))
if (unknown.length > 0) {
  console.error(`unknown scenario ${unknown.join(", ")}; known: ${Object.keys(scenarios).join(", ")}`)
  process.exit(2)
}

const program = Effect.gen(function* () {
  console.log(`chaos: ${resourceCount} resources on @every 10s, until ${targetRuns} runs per scenario; seed ${seed}`)
  yield* prepare
  const options = { runs: targetRuns, resources: resourceCount }
  const results: Array<ScenarioResult> = []
  for (const slug of chosen.filter(isSlug)) results.push(yield* scenarios[slug](options))
  report(results)
  if (results.some(violated)) process.exitCode = 1
}).pipe(
  Effect.scoped,
  Random.withSeed(seed),
  // The stack with the operator behind the fault proxies, which pass everything until their scenario.
  Effect.provide(chaosStackLayer({ runnerImage: "db-backup-runner:chaos" })),
  Effect.provide(NodeServices.layer)
)

NodeRuntime.runMain(values.load ? runLoad(values) : program)
