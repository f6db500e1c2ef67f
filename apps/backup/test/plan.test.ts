import type { Backup, BackupDatabaseSchemaSpec, BackupStatus } from "@db-backup-operator/backup-api"
import type { Job } from "@db-backup-operator/kube"
import { describe, expect, it } from "@effect/vitest"
import { Duration, Result } from "effect"
import type { Admission } from "../src/admission.ts"
import type { Outcome } from "../src/outcome.ts"
import { type Observed, type ObservedJob, planPass } from "../src/plan.ts"
import { parseSchedule } from "../src/schedule.ts"
import { backupWith } from "./fixtures.ts"

const created = "2026-05-01T10:00:00Z"
const at = (iso: string) => Date.parse(iso)
const bucket = "gs://operator-db-backups-bucket/backups/team-a/orders"
const admitted: Admission = { _tag: "Admitted" }
const busy: Admission = { _tag: "Waiting", reason: "ServerBusy", message: "1 backup of pg:5432 is running" }

const resourceWith = (spec: Partial<BackupDatabaseSchemaSpec>, status = {}) => {
  const resource = backupWith(spec)
  return {
    ...resource,
    metadata: { ...resource.metadata, creationTimestamp: created, generation: 1 },
    status
  }
}

/** A record; `slot` makes it a scheduled one. */
const run = (name: string, status: BackupStatus, options: { slot?: string; createdAt?: string } = {}): Backup => ({
  apiVersion: "backup.csyeteam03.xyz/v1",
  kind: "Backup",
  metadata: {
    name,
    namespace: "team-a",
    creationTimestamp: options.createdAt ?? options.slot ?? created,
    ...(options.slot === undefined ? {} : { annotations: { "backup.csyeteam03.xyz/scheduled-at": options.slot } })
  },
  spec: { backupDatabaseSchemaName: "orders" },
  status
})

/** A Job of the record `record`; finished when `outcome` (Complete/Failed) is given. */
const job = (name: string, record: string, options: { slot?: string; finished?: "Complete" | "Failed" } = {}): Job => ({
  metadata: {
    name,
    namespace: "team-a",
    uid: `uid-${name}`,
    creationTimestamp: options.slot ?? created,
    annotations: {
      "backup.csyeteam03.xyz/backup": record,
      "backup.csyeteam03.xyz/location": `${bucket}/backup-${name.slice(-14, -6)}-${name.slice(-6)}.sql.gz`,
      ...(options.slot === undefined ? {} : { "backup.csyeteam03.xyz/scheduled-at": options.slot })
    }
  },
  spec: { template: { spec: { containers: [{ name: "runner", image: "db-backup-runner" }] } } },
  ...(options.finished === undefined
    ? {}
    : {
        status: { conditions: [{ type: options.finished, status: "True", lastTransitionTime: "2026-05-01T10:00:30Z" }] }
      })
})

const success = (deletedRuns: ReadonlyArray<string> = [], catalog?: ReadonlyArray<string>): Outcome => ({
  phase: "Success",
  finishedAt: "2026-05-01T10:00:30Z",
  sizeBytes: 42,
  sha256: "a".repeat(64),
  serverVersion: "170004",
  pgDumpVersion: "pg_dump (PostgreSQL) 17.4",
  retention: { retained: 2, deleted: deletedRuns.length, deletedRuns },
  ...(catalog === undefined ? {} : { catalog })
})

const observe = (input: {
  spec?: Partial<BackupDatabaseSchemaSpec>
  status?: object
  runs?: ReadonlyArray<Backup>
  jobs?: ReadonlyArray<ObservedJob>
  admission?: Admission
  now: string
  createdJob?: string
}): Observed => {
  const resource = resourceWith(input.spec ?? { schedule: "@every 1h" }, input.status ?? {})
  return {
    resource,
    schedule: Result.getOrThrow(parseSchedule(resource.spec, "team-a/orders", Duration.minutes(5))),
    where: {
      jobNamespace: "team-a",
      sslMode: "prefer",
      storage: { spec: { gcs: { bucket: resource.spec.gcsBucket ?? "" } } }
    },
    runs: input.runs ?? [],
    jobs: input.jobs ?? [],
    admission: input.admission ?? admitted,
    now: at(input.now),
    expected: { createdJob: input.createdJob }
  }
}

const statusOf = (plan: ReturnType<typeof planPass>, name: string) =>
  plan.runStatuses.find((entry) => entry.name === name)?.status

describe("planPass", () => {
  it("a new @every resource: its first slot gets a record, which starts at once", () => {
    const plan = planPass(observe({ now: "2026-05-01T10:00:01Z" }))
    expect(plan.create).toEqual([{ name: "orders-20260501100000", slot: at(created) }])
    expect(plan.start).toMatchObject({ jobName: "orders-20260501100000", record: "orders-20260501100000" })
    expect(statusOf(plan, "orders-20260501100000")).toMatchObject({
      phase: "Running",
      scheduledTime: created,
      jobName: "orders-20260501100000",
      location: `${bucket}/backup-20260501-100000.sql.gz`
    })
    expect(plan.status).toMatchObject({
      status: "Running",
      lastScheduleTime: created,
      nextScheduleTime: "2026-05-01T11:00:00Z"
    })
    expect(plan.events.map((event) => event.reason)).toEqual(["BackupStarted"])
    expect(plan.requeueAfter).toEqual(Duration.millis(at("2026-05-01T11:00:00Z") - at("2026-05-01T10:00:01Z")))
  })

  it("a user's Backup that took a slot's name does not take its run: the slot's record gets another name", () => {
    const squatter = run("orders-20260501100000", { phase: "Succeeded" }, { createdAt: "2026-05-01T09:59:00Z" })
    const plan = planPass(observe({ now: "2026-05-01T10:00:01Z", runs: [squatter] }))
    expect(plan.create).toEqual([{ name: "orders-20260501100000-s", slot: at(created) }])
    expect(plan.start).toMatchObject({ record: "orders-20260501100000-s", jobName: "orders-20260501100000" })
  })

  it("over the concurrency limits: the record waits Pending with why, and the resource says Scheduled=False", () => {
    const plan = planPass(observe({ now: "2026-05-01T10:00:01Z", admission: busy }))
    expect(plan.create).toHaveLength(1)
    expect(plan.start).toBeUndefined()
    expect(statusOf(plan, "orders-20260501100000")).toMatchObject({
      phase: "Pending",
      message: "waits: 1 backup of pg:5432 is running"
    })
    expect(plan.status.conditions?.find((condition) => condition.type === "Scheduled")).toMatchObject({
      status: "False",
      reason: "ServerBusy"
    })
    expect(plan.status.nextScheduleTime).toBe(created)
    expect(plan.requeueAfter).toEqual(Duration.seconds(5))
  })

  it("a slot already waiting is the one catch-up: a later due slot makes no second record", () => {
    const waiting = run("orders-20260501100000", { phase: "Pending" }, { slot: created })
    const plan = planPass(observe({ now: "2026-05-01T12:30:00Z", runs: [waiting] }))
    expect(plan.create).toEqual([])
    expect(plan.start).toMatchObject({ record: "orders-20260501100000", jobName: "orders-20260501100000" })
  })

  it("an on-demand Backup while a run is in progress waits for it", () => {
    const active = job("orders-20260501100000", "orders-20260501100000", { slot: created })
    const plan = planPass(
      observe({
        now: "2026-05-01T10:00:10Z",
        runs: [
          run("orders-20260501100000", { phase: "Running", jobName: "orders-20260501100000" }, { slot: created }),
          run("now", {}, { createdAt: "2026-05-01T10:00:05Z" })
        ],
        jobs: [{ job: active }],
        status: { status: "Running", jobName: "orders-20260501100000", lastScheduleTime: created }
      })
    )
    expect(plan.start).toBeUndefined()
    expect(statusOf(plan, "now")).toEqual({
      phase: "Pending",
      message: "waits for the run in progress (Job team-a/orders-20260501100000)"
    })
    expect(plan.status.status).toBe("Running")
  })

  it("an on-demand Backup with nothing running starts at once, named after its start, even while suspended", () => {
    const plan = planPass(
      observe({
        spec: { schedule: "@every 1h", suspend: true },
        now: "2026-05-01T10:20:00Z",
        runs: [run("now", {}, { createdAt: "2026-05-01T10:19:58Z" })],
        status: { lastScheduleTime: created }
      })
    )
    expect(plan.create).toEqual([])
    expect(plan.start).toMatchObject({ record: "now", jobName: "orders-20260501102000", scheduled: false })
    expect(plan.status).toMatchObject({ status: "Running", lastScheduleTime: created })
    expect(plan.status.nextScheduleTime).toBeUndefined()
    expect(plan.events[0]?.note).toContain("(on-demand Backup now)")
  })

  it("two on-demand Backups of one second: the second starts after the first, named after its own start", () => {
    const finished = job("orders-20260501102000", "first", { finished: "Complete" })
    const plan = planPass(
      observe({
        spec: { schedule: "@every 1h" },
        now: "2026-05-01T10:20:31Z",
        runs: [
          run("first", { phase: "Running", jobName: "orders-20260501102000" }, { createdAt: "2026-05-01T10:20:00Z" }),
          run("second", {}, { createdAt: "2026-05-01T10:20:00Z" })
        ],
        jobs: [{ job: finished, outcome: success() }],
        status: { status: "Running", jobName: "orders-20260501102000", lastScheduleTime: created }
      })
    )
    expect(statusOf(plan, "first")?.phase).toBe("Succeeded")
    expect(plan.start).toMatchObject({ record: "second", jobName: "orders-20260501102031" })
  })

  it("an on-demand run never takes the second of a due slot, whose run names its objects after it", () => {
    const plan = planPass(
      observe({
        now: "2026-05-01T11:00:00.400Z",
        runs: [run("now", {}, { createdAt: "2026-05-01T10:59:59Z" })],
        status: { status: "Success", lastScheduleTime: created }
      })
    )
    expect(plan.create.map((created) => created.name)).toEqual(["orders-20260501110000"])
    expect(plan.start).toMatchObject({ record: "now", jobName: "orders-20260501110001" })
  })

  it("a finished run's catalog: records come back for the bucket's backups that have none, never for one that has", () => {
    const finished = job("orders-20260501110000", "orders-20260501110000", {
      slot: "2026-05-01T11:00:00Z",
      finished: "Complete"
    })
    // A user's on-demand run: its record has another name, its dump the stamp.
    const onDemand = run("before-migration", {
      phase: "Succeeded",
      location: `${bucket}/backup-20260501-103012.sql.gz`
    })
    // Rebuilt before: only its manifest is known.
    const rebuiltBefore = run("orders-20260430000000", {
      phase: "Succeeded",
      manifestLocation: `${bucket}/backup-20260430-000000.json`
    })
    const current = run(
      "orders-20260501110000",
      { phase: "Running", jobName: "orders-20260501110000" },
      { slot: "2026-05-01T11:00:00Z" }
    )
    const catalog = ["20260501-110000", "20260501-103012", "20260501-100000", "20260430-000000", "20260429-000000"]
    const plan = planPass(
      observe({
        now: "2026-05-01T11:00:31Z",
        runs: [onDemand, rebuiltBefore, current],
        jobs: [{ job: finished, outcome: success([], catalog) }],
        status: { status: "Running", jobName: "orders-20260501110000", lastScheduleTime: "2026-05-01T11:00:00Z" }
      })
    )
    expect(plan.rebuild).toEqual([
      {
        name: "orders-20260501100000",
        status: {
          phase: "Succeeded",
          startTime: "2026-05-01T10:00:00Z",
          manifestLocation: `${bucket}/backup-20260501-100000.json`,
          message: `rebuilt from its manifest ${bucket}/backup-20260501-100000.json: a backup the bucket holds that had no record here`
        }
      },
      expect.objectContaining({ name: "orders-20260429000000" })
    ])
    expect(plan.events).toContainEqual(expect.objectContaining({ reason: "BackupRecordsRebuilt" }))
    expect(plan.start).toBeUndefined()

    // Retention deletes a rebuilt record's backup: the record goes too.
    const pruned = planPass(
      observe({
        now: "2026-05-01T11:00:31Z",
        runs: [rebuiltBefore, current],
        jobs: [{ job: finished, outcome: success(["20260430-000000"]) }],
        status: { status: "Running", jobName: "orders-20260501110000", lastScheduleTime: "2026-05-01T11:00:00Z" }
      })
    )
    expect(pruned.delete).toEqual(["orders-20260430000000"])
  })

  it("with spec.verification, a run that succeeded is verified; the last passed verification is in the status", () => {
    const finished = job("orders-20260501110000", "orders-20260501110000", {
      slot: "2026-05-01T11:00:00Z",
      finished: "Complete"
    })
    const verified = run("orders-20260501100000", {
      phase: "Succeeded",
      location: `${bucket}/backup-20260501-100000.sql.gz`,
      conditions: [
        {
          type: "Verified",
          status: "True",
          reason: "Verified",
          message: "ok",
          lastTransitionTime: "2026-05-01T10:05:00Z"
        }
      ]
    })
    const current = run(
      "orders-20260501110000",
      { phase: "Running", jobName: "orders-20260501110000" },
      { slot: "2026-05-01T11:00:00Z" }
    )
    const observed = {
      now: "2026-05-01T11:00:31Z",
      runs: [verified, current],
      jobs: [{ job: finished, outcome: success() }],
      status: { status: "Running", jobName: "orders-20260501110000", lastScheduleTime: "2026-05-01T11:00:00Z" }
    } as const
    const plan = planPass(observe({ ...observed, spec: { schedule: "@every 1h", verification: {} } }))
    expect(plan.verify).toEqual(["orders-20260501110000"])
    expect(plan.status.lastVerifiedTime).toBe("2026-05-01T10:05:00Z")
    // Not asked for: nothing is verified.
    expect(planPass(observe(observed)).verify).toEqual([])
    // A failed run has nothing to verify.
    const failedRun = planPass(
      observe({
        ...observed,
        spec: { schedule: "@every 1h", verification: {} },
        jobs: [
          {
            job: job("orders-20260501110000", "orders-20260501110000", {
              slot: "2026-05-01T11:00:00Z",
              finished: "Failed"
            }),
            outcome: { phase: "Failed", finishedAt: "2026-05-01T11:00:30Z", reason: "boom" }
          }
        ]
      })
    )
    expect(failedRun.verify).toEqual([])
  })

  it("with spec.verification.schedule, each slot verifies the newest successful backup, and runs are not verified one by one", () => {
    const older = run("orders-20260501100000", {
      phase: "Succeeded",
      location: `${bucket}/backup-20260501-100000.sql.gz`
    })
    const newest = run("before-migration", {
      phase: "Succeeded",
      location: `${bucket}/backup-20260501-103012.sql.gz`
    })
    const failedRecord = run("orders-20260501110000", { phase: "Failed" })
    const verification = { verification: { schedule: "@every 6h" }, schedule: "@every 1h" }
    const observedAt = (now: string, status: object) => {
      const base = observe({ now, runs: [older, newest, failedRecord], status, spec: verification })
      return {
        ...base,
        verificationSchedule: Result.getOrThrow(
          parseSchedule({ schedule: "@every 6h" }, "team-a/orders/verification", Duration.minutes(5))
        )
      }
    }
    const due = planPass(
      observedAt("2026-05-01T11:00:31Z", { status: "Success", lastScheduleTime: "2026-05-01T11:00:00Z" })
    )
    expect(due.verify).toEqual(["before-migration"])
    expect(due.status.lastVerificationScheduleTime).toBe(created)
    // The same slot again: nothing; the next one is waited for.
    const again = planPass(observedAt("2026-05-01T11:00:40Z", due.status))
    expect(again.verify).toEqual([])
    expect(again.requeueAfter).toBeDefined()
    // A run that succeeds meanwhile is not verified on its own.
    const finished = job("orders-20260501120000", "orders-20260501120000", {
      slot: "2026-05-01T12:00:00Z",
      finished: "Complete"
    })
    const current = run(
      "orders-20260501120000",
      { phase: "Running", jobName: "orders-20260501120000" },
      { slot: "2026-05-01T12:00:00Z" }
    )
    const recorded = planPass({
      ...observedAt("2026-05-01T12:00:31Z", { ...due.status, status: "Running", jobName: "orders-20260501120000" }),
      runs: [older, newest, current],
      jobs: [{ job: finished, outcome: success() }]
    })
    expect(recorded.verify).toEqual([])
  })

  it("a rebuilt record whose status write was lost is never taken for a run to start", () => {
    const lost: Backup = {
      ...run("orders-20260430000000", {}, { createdAt: "2026-05-01T10:59:00Z" }),
      metadata: {
        name: "orders-20260430000000",
        namespace: "team-a",
        creationTimestamp: "2026-05-01T10:59:00Z",
        annotations: { "backup.csyeteam03.xyz/rebuilt-from": `${bucket}/backup-20260430-000000.json` }
      }
    }
    const plan = planPass(
      observe({ now: "2026-05-01T11:00:31Z", runs: [lost], status: { status: "Success", lastScheduleTime: created } })
    )
    expect(plan.start?.record).not.toBe("orders-20260430000000")
  })

  it("a finished run: its record gets the outcome, the resource the summary, and retention's deletions go", () => {
    const finished = job("orders-20260501110000", "orders-20260501110000", {
      slot: "2026-05-01T11:00:00Z",
      finished: "Complete"
    })
    const old = run(
      "orders-20260501100000",
      { phase: "Succeeded", location: `${bucket}/backup-20260501-100000.sql.gz` },
      { slot: created }
    )
    const kept = run(
      "orders-20260501103000",
      { phase: "Succeeded", location: `${bucket}/backup-20260501-103000.sql.gz` },
      { slot: "2026-05-01T10:30:00Z" }
    )
    const current = run(
      "orders-20260501110000",
      { phase: "Running", jobName: "orders-20260501110000" },
      { slot: "2026-05-01T11:00:00Z" }
    )
    const plan = planPass(
      observe({
        now: "2026-05-01T11:00:31Z",
        runs: [old, kept, current],
        jobs: [{ job: finished, outcome: success(["20260501-100000"]) }],
        status: { status: "Running", jobName: "orders-20260501110000", lastScheduleTime: "2026-05-01T11:00:00Z" }
      })
    )
    expect(statusOf(plan, "orders-20260501110000")).toMatchObject({
      phase: "Succeeded",
      completionTime: "2026-05-01T10:00:30Z",
      location: `${bucket}/backup-20260501-110000.sql.gz`,
      manifestLocation: `${bucket}/backup-20260501-110000.json`,
      sizeBytes: 42,
      sha256: "a".repeat(64),
      serverVersion: "170004",
      pgDumpVersion: "pg_dump (PostgreSQL) 17.4"
    })
    expect(statusOf(plan, "orders-20260501110000")?.conditions).toMatchObject([
      { type: "Succeeded", status: "True", reason: "BackupSucceeded" }
    ])
    expect(plan.delete).toEqual(["orders-20260501100000"])
    expect(plan.recorded.map((entry) => entry.job.metadata.name)).toEqual(["orders-20260501110000"])
    expect(plan.status).toMatchObject({ status: "Success", lastBackupSizeBytes: 42, retainedBackups: 2 })
    // The summary of the runs as this pass leaves them: the deleted one is gone.
    expect(plan.status.recentBackups?.map((entry) => [entry.name, entry.phase])).toEqual([
      ["orders-20260501110000", "Succeeded"],
      ["orders-20260501103000", "Succeeded"]
    ])
    expect(plan.start).toBeUndefined()
  })

  it("failed runs' records beyond failedBackupsHistoryLimit go, oldest first; a failed run keeps no location", () => {
    const failedAt = (minute: number) => `2026-05-01T10:${String(minute).padStart(2, "0")}:30Z`
    const failures = [10, 20, 30].map((minute) =>
      run(`failed-${minute}`, { phase: "Failed", completionTime: failedAt(minute) }, { createdAt: failedAt(minute) })
    )
    const plan = planPass(
      observe({
        spec: { schedule: "@every 1h", failedBackupsHistoryLimit: 1 },
        now: "2026-05-01T10:40:00Z",
        runs: failures,
        status: { status: "Failed", lastScheduleTime: created }
      })
    )
    expect([...plan.delete].sort()).toEqual(["failed-10", "failed-20"])
  })

  it("a record Running whose Job is gone: Failed, and the resource tells JobDeleted", () => {
    const plan = planPass(
      observe({
        now: "2026-05-01T10:05:00Z",
        runs: [run("orders-20260501100000", { phase: "Running", jobName: "orders-20260501100000" }, { slot: created })],
        status: { status: "Running", jobName: "orders-20260501100000", lastScheduleTime: created }
      })
    )
    expect(statusOf(plan, "orders-20260501100000")).toMatchObject({
      phase: "Failed",
      completionTime: "2026-05-01T10:05:00Z",
      message: "Job /orders-20260501100000 was deleted before it finished"
    })
    expect(plan.status.status).toBe("Failed")
    expect(plan.status.conditions?.find((condition) => condition.type === "Ready")?.reason).toBe("JobDeleted")
    expect(plan.events.map((event) => event.reason)).toEqual(["JobDeleted"])
    // The next run waits for its slot.
    expect(plan.start).toBeUndefined()
  })

  it("the Job this process just created is not in the cache yet: nothing starts, nothing is called deleted", () => {
    const plan = planPass(
      observe({
        now: "2026-05-01T10:00:02Z",
        runs: [run("orders-20260501100000", {}, { slot: created })],
        status: { status: "Running", jobName: "orders-20260501100000", lastScheduleTime: created },
        createdJob: "orders-20260501100000"
      })
    )
    expect(plan).toMatchObject({ create: [], start: undefined, runStatuses: [], delete: [], events: [] })
  })

  it("a slot that waited past startingDeadlineSeconds does not start: its record Fails saying so", () => {
    const waiting = run("orders-20260501100000", { phase: "Pending" }, { slot: created })
    const plan = planPass(
      observe({
        spec: { schedule: "@every 1h", startingDeadlineSeconds: 60 },
        now: "2026-05-01T10:02:00Z",
        runs: [waiting]
      })
    )
    expect(plan.start).toBeUndefined()
    expect(statusOf(plan, "orders-20260501100000")).toMatchObject({
      phase: "Failed",
      message: "the run of 2026-05-01T10:00:00Z did not start within spec.startingDeadlineSeconds (60s)"
    })
    expect(plan.events.map((event) => event.reason)).toEqual(["MissedSchedule"])
  })

  it("a spec edit that changes what is backed up: one run of the new target now, once per generation", () => {
    const target = (schema: string) =>
      `pg-postgresql.postgres.svc.cluster.local:5432/api/${schema} -> gs://operator-db-backups-bucket`
    const last = run(
      "orders-20260501100000",
      { phase: "Succeeded", startTime: "2026-05-01T10:00:01Z", target: target("api") },
      { slot: created }
    )
    const edited = observe({
      spec: { schedule: "@every 1h", dbSchema: "billing" },
      now: "2026-05-01T10:20:00Z",
      runs: [last],
      status: { status: "Success", lastScheduleTime: created }
    })
    const plan = planPass({
      ...edited,
      resource: { ...edited.resource, metadata: { ...edited.resource.metadata, generation: 2 } }
    })
    expect(plan.create).toEqual([{ name: "orders-g2" }])
    expect(plan.start).toMatchObject({ record: "orders-g2", scheduled: false })
    expect(statusOf(plan, "orders-g2")).toMatchObject({ phase: "Running", target: target("billing") })
    expect(plan.events.map((event) => event.reason)).toEqual(["TargetChanged", "BackupStarted"])
    // Once it has run (whatever its outcome), the target is the current one: nothing more.
    const ran = run("orders-g2", { phase: "Failed", startTime: "2026-05-01T10:20:00Z", target: target("billing") })
    const after = planPass({
      ...edited,
      runs: [last, ran],
      now: at("2026-05-01T10:25:00Z"),
      resource: { ...edited.resource, metadata: { ...edited.resource.metadata, generation: 3 } }
    })
    expect(after.create).toEqual([])
    expect(after.start).toBeUndefined()
    // An edit that changes nothing backed up (here: none at all) starts nothing.
    expect(
      planPass(
        observe({
          now: "2026-05-01T10:20:00Z",
          runs: [{ ...last, status: { ...last.status, target: target("api") } }],
          status: { lastScheduleTime: created }
        })
      ).start
    ).toBeUndefined()
  })

  it("the workload-identity check is a condition (a Warning when it turns False), never a reason not to run", () => {
    const unbound = {
      status: "False",
      reason: "ServiceAccountNotBound",
      message: "ServiceAccount team-a/default (...) has no annotation iam.gke.io/gcp-service-account"
    } as const
    const plan = planPass({ ...observe({ now: "2026-05-01T10:00:01Z" }), identity: unbound })
    expect(plan.start).toBeDefined()
    expect(plan.status.conditions?.find((condition) => condition.type === "WorkloadIdentity")).toMatchObject(unbound)
    expect(plan.events.map((event) => event.reason)).toContain("ServiceAccountNotBound")
    // Reported once: the next pass, with the same finding in status, adds no Event.
    const again = planPass({
      ...observe({ now: "2026-05-01T10:00:05Z", status: plan.status }),
      identity: unbound
    })
    expect(again.events.map((event) => event.reason)).not.toContain("ServiceAccountNotBound")
    // Not checked (an emulator): the condition goes.
    const unchecked = planPass(observe({ now: "2026-05-01T10:00:05Z", status: plan.status }))
    expect(unchecked.status.conditions?.some((condition) => condition.type === "WorkloadIdentity")).toBe(false)
  })

  it("a missed slot past startingDeadlineSeconds: no record, one MissedSchedule Warning", () => {
    const plan = planPass(
      observe({
        spec: { schedule: "@every 1h", startingDeadlineSeconds: 60 },
        now: "2026-05-01T12:10:00Z",
        status: { lastScheduleTime: "2026-05-01T11:00:00Z", nextScheduleTime: "2026-05-01T12:00:00Z" }
      })
    )
    expect(plan.create).toEqual([])
    expect(plan.start).toBeUndefined()
    expect(plan.events.map((event) => event.reason)).toEqual(["MissedSchedule"])
    expect(plan.status.nextScheduleTime).toBe("2026-05-01T13:00:00Z")
  })
})
