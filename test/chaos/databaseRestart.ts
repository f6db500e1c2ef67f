import { Postgres } from "@db-backup-operator/testing"
import { Effect } from "effect"
import { backupPods, eventually } from "../e2e/support.ts"
import { type ScenarioOptions, scenario } from "./scenarios.ts"

/**
 * PostgreSQL restarted mid-dump (issue 13): every 2-6 s, as soon as a backup
 * Pod runs, the database server is stopped (a fast shutdown: pg_dump's
 * session is cut) and started again on the same port and data. A run whose
 * dump broke off must fail, abort its upload and leave nothing that looks
 * complete; the next slots must run as usual.
 */

const namespace = "chaos-db-restart"

/** A Running backup Pod, waited for a few seconds (runs start every few seconds). */
const runningPod = eventually(
  "a running backup Pod",
  Effect.map(backupPods(namespace), (pods) => pods.find((pod) => pod.status?.phase === "Running")),
  "15 seconds"
).pipe(Effect.option)

/** Restarts PostgreSQL under a running backup Pod; recovery: until it accepts connections again. */
export const databaseRestarts = (options: ScenarioOptions) =>
  scenario(
    "PostgreSQL restarted mid-dump",
    "db-restart",
    [2000, 6000],
    () =>
      Effect.gen(function* () {
        if ((yield* runningPod)._tag === "None") return undefined
        const pg = yield* Postgres
        const stopped = Date.now()
        yield* pg.restart.pipe(Effect.mapError((e) => new Error(e.message)))
        return { recovery: Date.now() - stopped }
      }),
    options
  )
