import type { BackupDatabaseSchemaStatus } from "@db-backup-operator/backup-api"
import type { Job } from "@db-backup-operator/kube"
import { describe, expect, it } from "@effect/vitest"
import type { Outcome } from "../src/outcome.ts"
import { failedRun, recordOutcome } from "../src/runStatus.ts"

const now = Date.parse("2026-05-01T10:05:00Z")
const previous = "gs://bucket/backups/team-a/orders/backup-20260501-100000.sql.gz"
const current = "gs://bucket/backups/team-a/orders/backup-20260501-100020.sql.gz"

const job: Job = {
  metadata: {
    name: "orders-20260501100020",
    namespace: "team-a",
    creationTimestamp: "2026-05-01T10:00:20Z",
    annotations: { "backup.csyeteam03.xyz/location": current }
  },
  spec: { template: { spec: { containers: [{ name: "runner", image: "db-backup-runner" }] } } },
  status: { startTime: "2026-05-01T10:00:21Z" }
}

/** A run of `current` in progress, after an earlier success of `previous`. */
const running: BackupDatabaseSchemaStatus = {
  status: "Running",
  jobName: "orders-20260501100020",
  backupLocation: current,
  lastSuccessfulBackupLocation: previous,
  lastSuccessfulBackupTime: "2026-05-01T10:00:10Z"
}

const record = (outcome: Outcome, status = running) => recordOutcome({ status, job, outcome, generation: 4, now })
const condition = (status: BackupDatabaseSchemaStatus, type: string) =>
  status.conditions?.find((entry) => entry.type === type)

describe("recordOutcome", () => {
  it("a success: its dump is the location and the last good one, with size, checksum, duration and Ready True", () => {
    const next = record({ phase: "Success", finishedAt: "2026-05-01T10:00:30Z", sizeBytes: 42, sha256: "a".repeat(64) })
    expect(next).toMatchObject({
      status: "Success",
      backupLocation: current,
      lastSuccessfulBackupLocation: current,
      lastSuccessfulBackupTime: "2026-05-01T10:00:30Z",
      lastBackupSizeBytes: 42,
      lastBackupSha256: "a".repeat(64),
      lastBackupDurationSeconds: 9
    })
    expect(condition(next, "Ready")).toMatchObject({ status: "True", reason: "BackupSucceeded", observedGeneration: 4 })
    expect(condition(next, "Retention")).toBeUndefined()
  })

  it("a failure: the location goes back to the last good dump, never the unfinished one", () => {
    const next = record({ phase: "Failed", finishedAt: "2026-05-01T10:00:25Z", reason: "pg_dump: connection refused" })
    expect(next).toMatchObject({
      status: "Failed",
      backupLocation: previous,
      lastSuccessfulBackupLocation: previous,
      lastFailedBackupTime: "2026-05-01T10:00:25Z",
      lastBackupDurationSeconds: 4
    })
    expect(condition(next, "Ready")).toMatchObject({
      status: "False",
      reason: "BackupFailed",
      message: "pg_dump: connection refused"
    })
  })

  it("a failure with no earlier success leaves no location at all", () => {
    const { lastSuccessfulBackupLocation: _, ...first } = running
    const next = record({ phase: "Failed", finishedAt: undefined, reason: "the Job failed" }, first)
    expect(next.backupLocation).toBeUndefined()
    expect(next.lastFailedBackupTime).toBe("2026-05-01T10:05:00Z")
  })

  it.each([
    [{ retained: 2, deleted: 1 }, "True", "RetentionApplied", "2 backups kept, 1 deleted by the last run"],
    [
      { retained: 5, deleted: 0, error: "retention: list gs://bucket/backups/team-a/orders/ failed (HTTP 403)" },
      "False",
      "RetentionFailed",
      "retention: list gs://bucket/backups/team-a/orders/ failed (HTTP 403) (0 deleted before it stopped; the next successful run tries again)"
    ]
  ] as const)("retention %j: condition Retention %s %s", (retention, status, reason, message) => {
    const next = record({ phase: "Success", finishedAt: "2026-05-01T10:00:30Z", retention })
    expect(next.retainedBackups).toBe(retention.retained)
    expect(condition(next, "Retention")).toMatchObject({ status, reason, message })
    // The backup itself stands.
    expect(condition(next, "Ready")).toMatchObject({ status: "True", reason: "BackupSucceeded" })
  })
})

describe("failedRun", () => {
  it("keeps everything else the status knew", () => {
    expect(failedRun(running, "orders-20260501100020")).toEqual({
      status: "Failed",
      jobName: "orders-20260501100020",
      backupLocation: previous,
      lastSuccessfulBackupLocation: previous,
      lastSuccessfulBackupTime: "2026-05-01T10:00:10Z"
    })
  })
})
