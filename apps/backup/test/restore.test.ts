import {
  type Backup,
  type BackupStatus,
  type BackupStorage,
  Restore,
  type RestoreSpec,
  type RestoreStatus
} from "@db-backup-operator/backup-api"
import type { Job } from "@db-backup-operator/kube"
import { describe, expect, it } from "@effect/vitest"
import { Schema } from "effect"
import type { AccessSettings } from "../src/access.ts"
import { defaults } from "../src/BackupSettings.ts"
import { type ObservedRestoreJob, planRestore } from "../src/restore/plan.ts"
import { restoreArgs, restoreJob } from "../src/restore/restoreJob.ts"
import { type ReadySource, resolveRestoreSource, type SourceObservation } from "../src/restore/source.ts"
import { backupWith } from "./fixtures.ts"

const open: AccessSettings = { allowedNamespaces: [], requireSecretOptIn: false, minSslMode: "disable" }
const now = Date.parse("2026-12-04T10:00:00Z")
const dump = "gs://operator-db-backups-bucket/backups/team-a/orders"

const restoreWith = (spec: RestoreSpec, status?: RestoreStatus): Restore => ({
  ...Schema.decodeUnknownSync(Restore.schema)({
    apiVersion: "backup.csyeteam03.xyz/v1",
    kind: "Restore",
    metadata: { namespace: "team-a", name: "back", uid: "r-1", generation: 1 },
    spec
  }),
  ...(status === undefined ? {} : { status })
})

const record = (name: string, status: BackupStatus, resource = "orders"): Backup => ({
  apiVersion: "backup.csyeteam03.xyz/v1",
  kind: "Backup",
  metadata: { name, namespace: "team-a" },
  spec: { backupDatabaseSchemaName: resource },
  status
})

const succeeded = (name: string, completionTime: string): Backup =>
  record(name, {
    phase: "Succeeded",
    completionTime,
    location: `${dump}/backup-${name.slice(-14, -6)}-${name.slice(-6)}.sql.gz`,
    manifestLocation: `${dump}/backup-${name.slice(-14, -6)}-${name.slice(-6)}.json`
  })

const observed = (overrides: Partial<SourceObservation> = {}): SourceObservation => ({
  records: [],
  resource: backupWith(),
  storage: undefined,
  ...overrides
})

const ready = (restore: Restore, observation = observed(), settings = open): ReadySource => {
  const source = resolveRestoreSource(restore, observation, settings)
  if (source._tag !== "Ready") throw new Error(`expected Ready, got ${source._tag}: ${source.message}`)
  return source
}

describe("resolveRestoreSource", () => {
  const cases: ReadonlyArray<{
    readonly name: string
    readonly spec: RestoreSpec
    readonly observation: SourceObservation
    readonly settings?: AccessSettings
    readonly expected: { readonly _tag: string; readonly reason?: string; readonly location?: string }
  }> = [
    {
      name: "a Succeeded Backup by name: its manifest",
      spec: { source: { backupName: "orders-20261203000000" } },
      observation: observed({ records: [succeeded("orders-20261203000000", "2026-12-03T00:01:00Z")] }),
      expected: { _tag: "Ready", location: `${dump}/backup-20261203-000000.json` }
    },
    {
      name: "a Backup not found yet: waits",
      spec: { source: { backupName: "orders-20261203000000" } },
      observation: observed(),
      expected: { _tag: "Waiting", reason: "BackupNotFound" }
    },
    {
      name: "a running Backup: waits for it",
      spec: { source: { backupName: "orders-20261203000000" } },
      observation: observed({ records: [record("orders-20261203000000", { phase: "Running" })] }),
      expected: { _tag: "Waiting", reason: "BackupNotFinished" }
    },
    {
      name: "a failed Backup: refused, nothing to restore",
      spec: { source: { backupName: "orders-20261203000000" } },
      observation: observed({ records: [record("orders-20261203000000", { phase: "Failed", message: "boom" })] }),
      expected: { _tag: "Refused", reason: "BackupFailed" }
    },
    {
      name: "the latest successful backup of a resource, not a newer failed one",
      spec: { source: { backupDatabaseSchemaName: "orders" } },
      observation: observed({
        records: [
          succeeded("orders-20261201000000", "2026-12-01T00:01:00Z"),
          succeeded("orders-20261202000000", "2026-12-02T00:01:00Z"),
          record("orders-20261203000000", { phase: "Failed", completionTime: "2026-12-03T00:01:00Z" })
        ]
      }),
      expected: { _tag: "Ready", location: `${dump}/backup-20261202-000000.json` }
    },
    {
      name: "a resource without a successful backup: waits",
      spec: { source: { backupDatabaseSchemaName: "orders" } },
      observation: observed({ records: [record("orders-20261203000000", { phase: "Running" })] }),
      expected: { _tag: "Waiting", reason: "NoSuccessfulBackup" }
    },
    {
      name: "a Backup whose resource is gone: waits for it",
      spec: { source: { backupName: "orders-20261203000000" } },
      observation: observed({
        records: [succeeded("orders-20261203000000", "2026-12-03T00:01:00Z")],
        resource: undefined
      }),
      expected: { _tag: "Waiting", reason: "BackupDatabaseSchemaNotFound" }
    },
    {
      name: "a URL with its target: reached with the store's defaults",
      spec: {
        source: { location: `${dump}/backup-20261203-000000.json` },
        target: { dbUser: "app", dbPasswordSecretName: "app-pw", dbPasswordSecretKey: "password" }
      },
      observation: observed({ resource: undefined }),
      expected: { _tag: "Ready", location: `${dump}/backup-20261203-000000.json` }
    },
    {
      name: "a URL and a storage elsewhere: refused, naming both",
      spec: {
        source: { location: `${dump}/backup-20261203-000000.json`, storageRef: { name: "archive" } },
        target: { dbUser: "app", dbPasswordSecretName: "app-pw", dbPasswordSecretKey: "password" }
      },
      observation: observed({
        resource: undefined,
        storage: { metadata: { name: "archive" }, spec: { s3: { bucket: "other" } } } as BackupStorage
      }),
      expected: { _tag: "Refused", reason: "StorageMismatch" }
    },
    {
      name: "another server with the resource's password: refused (it goes only to its own server)",
      spec: { source: { backupName: "orders-20261203000000" }, target: { dbHost: "elsewhere.example.com" } },
      observation: observed({ records: [succeeded("orders-20261203000000", "2026-12-03T00:01:00Z")] }),
      expected: { _tag: "Refused", reason: "TargetCredentialsRequired" }
    },
    {
      name: "another server with its own role and Secret: ready",
      spec: {
        source: { backupName: "orders-20261203000000" },
        target: { dbHost: "elsewhere.example.com", dbUser: "app", dbPasswordSecretName: "pw", dbPasswordSecretKey: "k" }
      },
      observation: observed({ records: [succeeded("orders-20261203000000", "2026-12-03T00:01:00Z")] }),
      expected: { _tag: "Ready" }
    },
    {
      name: "a target weaker than the operator's TLS minimum: refused",
      spec: { source: { backupName: "orders-20261203000000" }, target: { sslMode: "disable" } },
      observation: observed({ records: [succeeded("orders-20261203000000", "2026-12-03T00:01:00Z")] }),
      settings: { ...open, minSslMode: "require" },
      expected: { _tag: "Refused", reason: "SslModeNotAllowed" }
    }
  ]
  for (const testCase of cases) {
    it(testCase.name, () => {
      const source = resolveRestoreSource(restoreWith(testCase.spec), testCase.observation, testCase.settings ?? open)
      expect(source).toMatchObject(testCase.expected)
    })
  }

  it("the target replaces the resource's database and role; the identity Secret needs consent where the password's does", () => {
    const spec: RestoreSpec = {
      source: { backupName: "orders-20261203000000" },
      target: { dbName: "scratch", dbUser: "app", dbPasswordSecretName: "app-pw", dbPasswordSecretKey: "password" },
      decryption: { ageIdentitySecretRef: { name: "age", key: "identity" } }
    }
    const records = [succeeded("orders-20261203000000", "2026-12-03T00:01:00Z")]
    const source = ready(restoreWith(spec), observed({ records }), { ...open, requireSecretOptIn: true })
    expect(source.connection).toMatchObject({
      host: "pg-postgresql.postgres.svc.cluster.local",
      port: 5432,
      database: "scratch",
      schema: "api",
      user: "app",
      passwordSecret: { name: "app-pw", key: "password" }
    })
    expect(source.needConsent.map((use) => use.name)).toEqual(["app-pw", "age"])
    // In its own namespace, without the opt-in rule, no Secret is read.
    expect(ready(restoreWith(spec), observed({ records })).needConsent).toEqual([])
  })
})

describe("restoreJob", () => {
  it("passes settings as --option=value words and secrets only by reference", () => {
    const restore = restoreWith({
      source: { backupName: "orders-20261203000000" },
      schemaExists: "Replace",
      noOwner: true,
      decryption: { ageIdentitySecretRef: { name: "age", key: "identity" } }
    })
    const source = ready(restore, observed({ records: [succeeded("orders-20261203000000", "2026-12-03T00:01:00Z")] }))
    expect(restoreArgs(restore, source)).toEqual([
      "restore",
      `${dump}/backup-20261203-000000.json`,
      "--username=team03",
      "--host=pg-postgresql.postgres.svc.cluster.local",
      "--port=5432",
      "--dbname=api",
      "--schema-exists=replace",
      "--sslmode=prefer",
      "--no-owner"
    ])
    const job = restoreJob(restore, source, defaults, undefined)
    const container = job.spec?.template.spec?.containers[0]
    expect(job.metadata.name).toBe("back-restore")
    expect(job.spec?.backoffLimit).toBe(0)
    expect(container?.securityContext).toMatchObject({ runAsNonRoot: true, readOnlyRootFilesystem: true })
    expect(container?.env).toContainEqual({
      name: "PGPASSWORD",
      valueFrom: { secretKeyRef: { name: "backup-secret", key: "password" } }
    })
    expect(container?.env).toContainEqual({
      name: "BACKUP_AGE_IDENTITY",
      valueFrom: { secretKeyRef: { name: "age", key: "identity" } }
    })
    expect(JSON.stringify(container?.args)).not.toContain("backup-secret")
  })

  it("a verification runs `verify`, without the restore's schema and ownership options", () => {
    const restore = restoreWith({ source: { backupName: "orders-20261203000000" }, verify: true })
    const source = ready(restore, observed({ records: [succeeded("orders-20261203000000", "2026-12-03T00:01:00Z")] }))
    expect(restoreArgs(restore, source)).toEqual([
      "verify",
      `${dump}/backup-20261203-000000.json`,
      "--username=team03",
      "--host=pg-postgresql.postgres.svc.cluster.local",
      "--port=5432",
      "--dbname=api",
      "--sslmode=prefer"
    ])
    const started = planRestore({ restore, job: undefined, source, now })
    expect(started.events.map((event) => event.reason)).toEqual(["VerificationStarted"])
    const failed = planRestore({
      restore: { ...restore, status: started.status },
      job: {
        job: { metadata: { name: "back-restore" } } as Job,
        outcome: { phase: "Failed", finishedAt: undefined, reason: "verification failed: checksum" }
      },
      source: undefined,
      now
    })
    expect(failed.status.conditions?.[0]).toMatchObject({
      type: "Succeeded",
      status: "False",
      reason: "VerificationFailed"
    })
  })

  it("keeps a $ in a name literal (the kubelet expands $(NAME) in args)", () => {
    const restore = restoreWith({
      source: { backupName: "orders-20261203000000" },
      target: { dbName: "a$(DB_HOST)", dbUser: "app", dbPasswordSecretName: "pw", dbPasswordSecretKey: "k" }
    })
    const source = ready(restore, observed({ records: [succeeded("orders-20261203000000", "2026-12-03T00:01:00Z")] }))
    const job = restoreJob(restore, source, defaults, undefined)
    expect(job.spec?.template.spec?.containers[0]?.args).toContain("--dbname=a$$(DB_HOST)")
  })
})

describe("planRestore", () => {
  const restore = restoreWith({ source: { backupName: "orders-20261203000000" } })
  const source = ready(restore, observed({ records: [succeeded("orders-20261203000000", "2026-12-03T00:01:00Z")] }))
  const job = { metadata: { name: "back-restore", namespace: "team-a" } } as Job
  const running: RestoreStatus = {
    phase: "Running",
    location: source.location,
    target: "pg:5432/api/api",
    jobName: "back-restore",
    jobNamespace: "team-a",
    startTime: "2026-12-04T09:59:00Z"
  }
  const summary = {
    result: "Restored" as const,
    location: source.location,
    database: "api",
    schema: "api",
    tables: 3,
    rowsVerified: true,
    storedBytes: 1234,
    sqlBytes: 5678,
    seconds: 1.5
  }
  const cases: ReadonlyArray<{
    readonly name: string
    readonly status?: RestoreStatus
    readonly job?: ObservedRestoreJob
    readonly source?: ReadonlyArray<Parameters<typeof planRestore>[0]["source"]>[number]
    readonly phase: string | undefined
    readonly starts: boolean
    readonly events: ReadonlyArray<string>
    readonly requeue: boolean
  }> = [
    {
      name: "a ready source starts its Job",
      source,
      phase: "Running",
      starts: true,
      events: ["RestoreStarted"],
      requeue: false
    },
    {
      name: "a waiting source: Pending, one Warning, looked at again",
      source: { _tag: "Waiting", reason: "BackupNotFinished", message: "waits for Backup" },
      phase: "Pending",
      starts: false,
      events: ["BackupNotFinished"],
      requeue: true
    },
    {
      name: "still waiting for the same: no second Warning",
      status: { phase: "Pending", message: "waits for Backup" },
      source: { _tag: "Waiting", reason: "BackupNotFinished", message: "waits for Backup" },
      phase: "Pending",
      starts: false,
      events: [],
      requeue: true
    },
    {
      name: "a refused source fails the Restore",
      source: { _tag: "Refused", reason: "BackupFailed", message: "Backup failed" },
      phase: "Failed",
      starts: false,
      events: ["BackupFailed"],
      requeue: false
    },
    {
      name: "a running Job: Running, woken by its changes",
      status: running,
      job: { job },
      phase: "Running",
      starts: false,
      events: [],
      requeue: false
    },
    {
      name: "a Pod that cannot start: its reason, once",
      status: running,
      job: { job, notStarted: true, problem: { reason: "SecretNotFound", message: "secret not found" } },
      phase: "Running",
      starts: false,
      events: ["SecretNotFound"],
      requeue: true
    },
    {
      name: "a Job that succeeded: Succeeded with its summary",
      status: running,
      job: { job, outcome: { phase: "Succeeded", finishedAt: "2026-12-04T10:00:00Z", summary } },
      phase: "Succeeded",
      starts: false,
      events: ["RestoreSucceeded"],
      requeue: false
    },
    {
      name: "a Job that failed: Failed with the runner's reason",
      status: running,
      job: { job, outcome: { phase: "Failed", finishedAt: undefined, reason: "restore failed: checksum" } },
      phase: "Failed",
      starts: false,
      events: ["RestoreFailed"],
      requeue: false
    },
    {
      name: "a Running Restore whose Job is gone: Failed, never started again",
      status: running,
      phase: "Failed",
      starts: false,
      events: ["RestoreFailed"],
      requeue: false
    },
    {
      name: "an ended Restore: left as it is",
      status: { ...running, phase: "Succeeded" },
      source,
      phase: "Succeeded",
      starts: false,
      events: [],
      requeue: false
    }
  ]
  for (const testCase of cases) {
    it(testCase.name, () => {
      const plan = planRestore({
        restore: { ...restore, ...(testCase.status === undefined ? {} : { status: testCase.status }) },
        job: testCase.job,
        source: testCase.source,
        now
      })
      expect(plan.status.phase).toBe(testCase.phase)
      expect(plan.start !== undefined).toBe(testCase.starts)
      expect(plan.events.map((event) => event.reason)).toEqual(testCase.events)
      expect(plan.requeueAfter !== undefined).toBe(testCase.requeue)
    })
  }

  it("records what the runner restored and when", () => {
    const plan = planRestore({
      restore: { ...restore, status: running },
      job: { job, outcome: { phase: "Succeeded", finishedAt: "2026-12-04T10:00:00Z", summary } },
      source: undefined,
      now
    })
    expect(plan.status).toMatchObject({
      phase: "Succeeded",
      completionTime: "2026-12-04T10:00:00Z",
      tables: 3,
      rowsVerified: true,
      sizeBytes: 1234,
      conditions: [{ type: "Succeeded", status: "True", reason: "Restored" }]
    })
    expect(plan.status.message).toContain("3 tables")
  })

  it("a Job whose start was not recorded (the status write lost to a newer read): the Job says what it restores", () => {
    const started = restoreJob(restore, source, defaults, undefined)
    const plan = planRestore({
      restore: { ...restore, status: { phase: "Pending", message: "waits for Backup" } },
      job: { job: { ...started, metadata: { ...started.metadata, creationTimestamp: "2026-12-04T09:59:30Z" } } },
      source: undefined,
      now
    })
    expect(plan.start).toBeUndefined()
    expect(plan.events).toEqual([])
    expect(plan.status).toMatchObject({
      phase: "Running",
      backupName: "orders-20261203000000",
      location: source.location,
      target: "pg-postgresql.postgres.svc.cluster.local:5432/api/api",
      jobName: "back-restore",
      jobNamespace: "team-a",
      startTime: "2026-12-04T09:59:30Z"
    })
  })

  it("names the Job and the target when it starts", () => {
    const plan = planRestore({ restore, job: undefined, source, now })
    expect(plan.status).toMatchObject({
      backupName: "orders-20261203000000",
      jobName: "back-restore",
      jobNamespace: "team-a",
      target: "pg-postgresql.postgres.svc.cluster.local:5432/api/api",
      startTime: "2026-12-04T10:00:00.000Z"
    })
  })
})
