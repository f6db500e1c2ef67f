import { assert, describe, it } from "@effect/vitest"
import { Effect, Metric } from "effect"
import * as BackupMetrics from "../src/BackupMetrics.ts"

const orders = { namespace: "team-a", name: "orders" }
const users = { namespace: "team-a", name: "users" }

/** The series of the registry as `name{namespace,name[,result]} value`, sorted. */
const series = Effect.map(Metric.snapshot, (snapshots) =>
  snapshots
    .filter((snapshot) => snapshot.id.startsWith("db_backup_"))
    .map((snapshot) => {
      const { namespace, name, result } = snapshot.attributes as Record<string, string>
      const state = snapshot.state as { readonly value?: number | bigint; readonly count?: number | bigint }
      return `${snapshot.id}{${[namespace, name, result].filter(Boolean).join(",")}} ${Number(state.value ?? state.count)}`
    })
    .sort()
)

const inFreshRegistry = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.provideService(effect, Metric.MetricRegistry, new Map())

describe("BackupMetrics", () => {
  it.effect("reads each gauge from status, and removes a series whose field is absent", () =>
    inFreshRegistry(
      Effect.gen(function* () {
        yield* BackupMetrics.observe(orders, {
          status: "Success",
          lastSuccessfulBackupTime: "2026-05-01T10:00:20Z",
          lastBackupSizeBytes: 4096,
          lastBackupDurationSeconds: 7,
          nextScheduleTime: "2026-05-01T10:05:00Z"
        })
        assert.deepStrictEqual(yield* series, [
          "db_backup_last_duration_seconds{team-a,orders} 7",
          "db_backup_last_run_failed{team-a,orders} 0",
          "db_backup_last_size_bytes{team-a,orders} 4096",
          `db_backup_last_success_timestamp_seconds{team-a,orders} ${Date.parse("2026-05-01T10:00:20Z") / 1000}`,
          `db_backup_next_schedule_timestamp_seconds{team-a,orders} ${Date.parse("2026-05-01T10:05:00Z") / 1000}`
        ])
        // Suspended (no next slot), then a run in progress: the last finished run still counts.
        yield* BackupMetrics.observe(orders, { status: "Running", lastSuccessfulBackupTime: "2026-05-01T10:00:20Z" })
        const running = yield* series
        assert.notInclude(running.join("\n"), "db_backup_next_schedule_timestamp_seconds")
        assert.include(running, "db_backup_last_run_failed{team-a,orders} 0")
        yield* BackupMetrics.observe(orders, {
          status: "Failed",
          lastSuccessfulBackupTime: "2026-05-01T10:00:20Z",
          lastFailedBackupTime: "2026-05-01T10:10:00Z"
        })
        const failed = yield* series
        assert.include(failed, "db_backup_last_run_failed{team-a,orders} 1")
        assert.include(
          failed,
          `db_backup_last_failure_timestamp_seconds{team-a,orders} ${Date.parse("2026-05-01T10:10:00Z") / 1000}`
        )
      })
    )
  )

  it.effect("counts runs by result, and forgets every series of a deleted resource, not another's", () =>
    inFreshRegistry(
      Effect.gen(function* () {
        yield* BackupMetrics.countRun(orders, "success")
        yield* BackupMetrics.countRun(orders, "success")
        yield* BackupMetrics.countRun(orders, "failed")
        yield* BackupMetrics.countRun(users, "success")
        yield* BackupMetrics.countDeleted(orders, 2)
        yield* BackupMetrics.countDeleted(orders, 1)
        yield* BackupMetrics.observe(orders, { status: "Success", lastSuccessfulBackupTime: "2026-05-01T10:00:20Z" })
        yield* BackupMetrics.observe(users, { status: "Success", lastSuccessfulBackupTime: "2026-05-01T10:00:20Z" })
        const counted = yield* series
        assert.include(counted, "db_backup_runs_total{team-a,orders,success} 2")
        assert.include(counted, "db_backup_runs_total{team-a,orders,failed} 1")
        assert.include(counted, "db_backup_retention_deleted_total{team-a,orders} 3")
        yield* BackupMetrics.forget(orders)
        const left = yield* series
        assert.isFalse(
          left.some((line) => line.includes("orders")),
          left.join("\n")
        )
        assert.include(left, "db_backup_runs_total{team-a,users,success} 1")
        assert.include(
          left,
          `db_backup_last_success_timestamp_seconds{team-a,users} ${Date.parse("2026-05-01T10:00:20Z") / 1000}`
        )
      })
    )
  )
})
