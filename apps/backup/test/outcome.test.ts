import { RunnerContract } from "@db-backup-operator/backup-api"
import type { Job, Pod } from "@db-backup-operator/kube"
import { describe, expect, it } from "@effect/vitest"
import { notStarted, outcomeOf, podProblem } from "../src/outcome.ts"

const pod = (created: string, waiting?: { reason: string; message?: string }, phase = "Pending"): Pod => ({
  metadata: { name: `run-${created}`, creationTimestamp: created },
  spec: { containers: [{ name: "runner", image: "db-backup-runner" }] },
  status: {
    phase,
    containerStatuses: [
      {
        name: "runner",
        ready: false,
        restartCount: 0,
        image: "db-backup-runner",
        imageID: "",
        state: waiting === undefined ? { running: {} } : { waiting }
      }
    ]
  }
})

describe("podProblem", () => {
  it.each([
    ['secret "backup-secret" not found', "SecretNotFound"],
    ["couldn't find key password in Secret team-a/backup-secret", "SecretKeyNotFound"],
    ['configmap "db-ca" not found', "ConfigMapNotFound"],
    ["couldn't find key ca.crt in ConfigMap team-a/db-ca", "ConfigMapKeyNotFound"],
    ["some other kubelet complaint", "CreateContainerConfigError"]
  ])("the kubelet's %j is reported as %s, with its own words", (message, reason) => {
    expect(podProblem([pod("2026-01-01T00:00:00Z", { reason: "CreateContainerConfigError", message })])).toEqual({
      reason,
      message: `the backup Pod cannot start: ${message} (CreateContainerConfigError)`
    })
  })

  it("reports image pull errors by their reason", () => {
    expect(podProblem([pod("2026-01-01T00:00:00Z", { reason: "ImagePullBackOff" })])).toEqual({
      reason: "ImagePullBackOff",
      message: "the backup Pod cannot start: ImagePullBackOff"
    })
  })

  it.each([
    ["no Pod yet", []],
    ["a container being created", [pod("2026-01-01T00:00:00Z", { reason: "ContainerCreating" })]],
    ["a running container", [pod("2026-01-01T00:00:00Z", undefined, "Running")]],
    [
      "an older stuck Pod but a newer running one",
      [
        pod("2026-01-01T00:00:00Z", { reason: "CreateContainerConfigError", message: 'secret "s" not found' }),
        pod("2026-01-01T00:01:00Z", undefined, "Running")
      ]
    ]
  ])("nothing with %s", (_, pods) => {
    expect(podProblem(pods)).toBeUndefined()
  })
})

describe("notStarted", () => {
  it("is true without Pods and for Pending ones, false once one runs", () => {
    expect(notStarted([])).toBe(true)
    expect(notStarted([pod("2026-01-01T00:00:00Z", { reason: "ContainerCreating" })])).toBe(true)
    expect(notStarted([pod("2026-01-01T00:00:00Z", undefined, "Running")])).toBe(false)
  })
})

const finished = (type: "Complete" | "Failed", reason?: string): Job => ({
  metadata: { name: "orders-20260501100020", namespace: "team-a" },
  spec: { template: { spec: { containers: [{ name: "runner", image: "db-backup-runner" }] } } },
  status: {
    ...(type === "Complete" ? { completionTime: "2026-05-01T10:00:30Z" } : {}),
    conditions: [
      {
        type,
        status: "True",
        lastTransitionTime: "2026-05-01T10:00:30Z",
        ...(reason === undefined ? {} : { reason })
      }
    ]
  }
})

/** The runner's Pod, terminated with `message`. */
const terminated = (message: string): Pod => ({
  metadata: { name: "orders-20260501100020-abcde", creationTimestamp: "2026-05-01T10:00:20Z" },
  spec: { containers: [{ name: "runner", image: "db-backup-runner" }] },
  status: {
    phase: "Succeeded",
    containerStatuses: [{ name: "runner", state: { terminated: { exitCode: 0, message: `${message}\n` } } }]
  }
})

const sha256 = "a".repeat(64)
const success = {
  result: "Success",
  location: "gs://bucket/backups/team-a/orders/backup-20260501-100020.sql.gz",
  manifest: "gs://bucket/backups/team-a/orders/backup-20260501-100020.json",
  sizeBytes: 42,
  sha256
} as const

describe("outcomeOf", () => {
  it("is undefined while the Job runs", () => {
    expect(outcomeOf({ ...finished("Complete"), status: {} }, [])).toBeUndefined()
  })

  it("a success: size, checksum, versions, and retention with the stamps of the backups it deleted", () => {
    const message = RunnerContract.encodeSuccessMessage({
      ...success,
      serverVersion: "170002",
      pgDumpVersion: "pg_dump (PostgreSQL) 17.2",
      retainedBackups: 7,
      deletedBackups: 3,
      deletedRuns: ["20260429-100000", "20260430-100000"]
    })
    expect(outcomeOf(finished("Complete"), [terminated(message)])).toEqual({
      phase: "Success",
      finishedAt: "2026-05-01T10:00:30Z",
      sizeBytes: 42,
      sha256,
      serverVersion: "170002",
      pgDumpVersion: "pg_dump (PostgreSQL) 17.2",
      retention: { retained: 7, deleted: 3, deletedRuns: ["20260429-100000", "20260430-100000"] }
    })
  })

  it("a success whose retention stopped on an error: what it deleted before, and why", () => {
    const message = RunnerContract.encodeSuccessMessage({
      ...success,
      retainedBackups: 5,
      deletedBackups: 1,
      deletedRuns: ["20260429-100000"],
      retentionError: "retention: delete gs://bucket/x failed (HTTP 503)"
    })
    expect(outcomeOf(finished("Complete"), [terminated(message)])).toMatchObject({
      phase: "Success",
      retention: {
        retained: 5,
        deleted: 1,
        deletedRuns: ["20260429-100000"],
        error: "retention: delete gs://bucket/x failed (HTTP 503)"
      }
    })
  })

  it("a success from an older runner: no versions, no stamps (not an empty list)", () => {
    const message = JSON.stringify({ ...success, retainedBackups: 2, deletedBackups: 1 })
    const outcome = outcomeOf(finished("Complete"), [terminated(message)])
    expect(outcome).toEqual({
      phase: "Success",
      finishedAt: "2026-05-01T10:00:30Z",
      sizeBytes: 42,
      sha256,
      retention: { retained: 2, deleted: 1 }
    })
    expect(outcome).not.toHaveProperty("serverVersion")
  })

  it("a success without retention: no retention", () => {
    const message = RunnerContract.encodeSuccessMessage({ ...success, serverVersion: "160004" })
    expect(outcomeOf(finished("Complete"), [terminated(message)])).toEqual({
      phase: "Success",
      finishedAt: "2026-05-01T10:00:30Z",
      sizeBytes: 42,
      sha256,
      serverVersion: "160004"
    })
  })

  it.each([
    ["a stamp that is not one", { ...success, retainedBackups: 1, deletedBackups: 1, deletedRuns: ["yesterday"] }],
    ["cut JSON", `${JSON.stringify(success).slice(0, 50)}`]
  ])("a success with an unreadable message (%s) is a success without details", (_, message) => {
    const text = typeof message === "string" ? message : JSON.stringify(message)
    expect(outcomeOf(finished("Complete"), [terminated(text)])).toEqual({
      phase: "Success",
      finishedAt: "2026-05-01T10:00:30Z"
    })
  })

  it("a failure: the runner's reason", () => {
    expect(
      outcomeOf(finished("Failed", "BackoffLimitExceeded"), [terminated("backup failed: pg_dump: permission denied")])
    ).toEqual({
      phase: "Failed",
      finishedAt: "2026-05-01T10:00:30Z",
      reason: "backup failed: pg_dump: permission denied"
    })
  })
})
