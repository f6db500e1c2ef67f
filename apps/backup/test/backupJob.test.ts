import type { BackupDatabaseSchemaSpec } from "@db-backup-operator/backup-api"
import { describe, expect, it } from "@effect/vitest"
import { defaults } from "../src/BackupSettings.ts"
import { backupJob, planRun } from "../src/backupJob.ts"
import { resolveStorage, type Storage } from "../src/storage.ts"
import { backupWith } from "./fixtures.ts"

const resolved = (backup: ReturnType<typeof backupWith>) => resolveStorage(backup, undefined) as Storage
const storage = resolved(backupWith())

const jobOf = (overrides: Partial<BackupDatabaseSchemaSpec>, settings = defaults) => {
  const backup = backupWith({ dbHost: "pg.db.svc", ...overrides })
  const run = planRun(
    backup,
    { jobNamespace: "team-a", sslMode: backup.spec.sslMode ?? "prefer", storage: resolved(backup) },
    new Date(0)
  )
  return backupJob(backup, run, settings, undefined)
}

const envOf = (overrides: Partial<BackupDatabaseSchemaSpec>, settings = defaults) =>
  jobOf(overrides, settings).spec?.template.spec?.containers[0]?.env ?? []

describe("planRun", () => {
  const at = new Date("2026-05-01T10:00:20Z")
  const dup = (namespace: string) => {
    const backup = backupWith()
    return { ...backup, metadata: { ...backup.metadata, namespace, name: "dup" } }
  }

  it("names a Job in the resource's own namespace <resource>-<slot>, as before", () => {
    expect(planRun(dup("team-a"), { jobNamespace: "team-a", sslMode: "prefer", storage }, at).jobName).toBe(
      "dup-20260501100020"
    )
  })

  it("gives same-named resources of two namespaces sharing one Job namespace different Job names for one slot", () => {
    const a = planRun(dup("a"), { jobNamespace: "x", sslMode: "prefer", storage }, at).jobName
    const b = planRun(dup("b"), { jobNamespace: "x", sslMode: "prefer", storage }, at).jobName
    expect(a).not.toBe(b)
    for (const name of [a, b]) expect(name).toMatch(/^dup-[0-9a-f]{8}-20260501100020$/u)
    // The same resource and slot always get the same name: a retried create finds its Job.
    expect(planRun(dup("a"), { jobNamespace: "x", sslMode: "prefer", storage }, at).jobName).toBe(a)
  })

  it("keeps a long name within 63 characters, still unique per namespace", () => {
    const long = (namespace: string) => {
      const backup = dup(namespace)
      return { ...backup, metadata: { ...backup.metadata, name: "n".repeat(60) } }
    }
    const a = planRun(long("a"), { jobNamespace: "x", sslMode: "prefer", storage }, at).jobName
    const b = planRun(long("b"), { jobNamespace: "x", sslMode: "prefer", storage }, at).jobName
    expect(a.length).toBeLessThanOrEqual(63)
    expect(a).not.toBe(b)
  })
})

/** Keep backup Pods off the database's nodes, where the scheduler can. */
const antiAffinityTerm = {
  weight: 100,
  podAffinityTerm: { topologyKey: "kubernetes.io/hostname", labelSelector: { matchLabels: { app: "postgresql" } } }
}

describe("backupJob", () => {
  it("gives the backup Pod the spec's resources, placement and limits, else the operator's defaults", () => {
    const job = jobOf({
      resources: { requests: { cpu: "250m", memory: 1073741824 }, limits: { memory: "2Gi" } },
      nodeSelector: { "node-role.kubernetes.io/backup": "true" },
      tolerations: [{ key: "dedicated", operator: "Equal", value: "backup", effect: "NoSchedule" }],
      priorityClassName: "backups",
      affinity: { podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [antiAffinityTerm] } },
      activeDeadlineSeconds: 7200,
      backoffLimit: 0
    })
    const pod = job.spec?.template.spec
    expect(job.spec?.activeDeadlineSeconds).toBe(7200)
    expect(job.spec?.backoffLimit).toBe(0)
    expect(pod?.nodeSelector).toEqual({ "node-role.kubernetes.io/backup": "true" })
    expect(pod?.tolerations).toEqual([{ key: "dedicated", operator: "Equal", value: "backup", effect: "NoSchedule" }])
    expect(pod?.priorityClassName).toBe("backups")
    expect(pod?.affinity).toEqual({
      podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [antiAffinityTerm] }
    })
    expect(pod?.containers[0]?.resources).toEqual({
      requests: { cpu: "250m", memory: "1073741824" },
      limits: { memory: "2Gi" }
    })
    const plain = jobOf({})
    expect(plain.spec?.activeDeadlineSeconds).toBe(defaults.activeDeadlineSeconds)
    expect(plain.spec?.backoffLimit).toBe(defaults.backoffLimit)
    expect(plain.spec?.template.spec?.containers[0]?.resources).toEqual(defaults.resources)
    expect(plain.spec?.template.spec && "nodeSelector" in plain.spec.template.spec).toBe(false)
  })

  it("compresses as the spec asks: the object's suffix and the runner's BACKUP_COMPRESSION follow, gzip by default", () => {
    const at = new Date("2026-05-01T10:00:00Z")
    const where = { jobNamespace: "team-a", sslMode: "prefer", storage } as const
    const envOf = (job: ReturnType<typeof jobOf>, name: string) =>
      job.spec?.template.spec?.containers[0]?.env?.find((variable) => variable.name === name)?.value
    const zstd = planRun(backupWith({ compression: "zstd" }), where, at)
    expect(zstd.location).toMatch(/\/backup-20260501-100000\.sql\.zst$/u)
    expect(envOf(jobOf({ compression: "zstd" }), "BACKUP_COMPRESSION")).toBe("zstd")
    expect(planRun(backupWith({}), where, at).location).toMatch(/\.sql\.gz$/u)
    expect(envOf(jobOf({}), "BACKUP_COMPRESSION")).toBe("gzip")
    expect(planRun(backupWith({ compression: "none" }), where, at).location).toMatch(/\d\.sql$/u)
  })

  it("dumps in the spec's format: the object's name and the runner's BACKUP_FORMAT follow, plain by default", () => {
    const at = new Date("2026-05-01T10:00:00Z")
    const where = { jobNamespace: "team-a", sslMode: "prefer", storage } as const
    const envOf = (job: ReturnType<typeof jobOf>, name: string) =>
      job.spec?.template.spec?.containers[0]?.env?.find((variable) => variable.name === name)?.value
    const custom = planRun(backupWith({ format: "custom" }), where, at)
    expect(custom.location).toMatch(/\/backup-20260501-100000\.dump\.gz$/u)
    expect(custom.objects.manifest).toMatch(/\/backup-20260501-100000\.json$/u)
    expect(envOf(jobOf({ format: "custom" }), "BACKUP_FORMAT")).toBe("custom")
    expect(envOf(jobOf({ format: "custom" }), "BACKUP_OBJECT")).toMatch(/\.dump\.gz$/u)
    expect(planRun(backupWith({ format: "custom", compression: "zstd" }), where, at).location).toMatch(/\.dump\.zst$/u)
    // A resource from before formats: named and dumped as it always was.
    expect(planRun(backupWith({}), where, at).location).toMatch(/\.sql\.gz$/u)
    expect(envOf(jobOf({}), "BACKUP_FORMAT")).toBe("plain")
  })

  it("hands the runner the resource's retention, else the operator's default, and the time zone it is counted in", () => {
    const withDefault = { ...defaults, defaultRetention: { keepDaily: 7 } }
    expect(envOf({ retention: { keepLast: 3, maxAge: "30d" }, timeZone: "Europe/Berlin" }, withDefault)).toEqual(
      expect.arrayContaining([
        { name: "BACKUP_RETENTION", value: "keepLast=3,maxAge=30d" },
        { name: "BACKUP_TIME_ZONE", value: "Europe/Berlin" }
      ])
    )
    expect(envOf({}, withDefault)).toContainEqual({ name: "BACKUP_RETENTION", value: "keepDaily=7" })
    const keepAll = envOf({}, { ...defaults, defaultRetention: undefined })
    expect(
      keepAll.some((variable) => variable.name === "BACKUP_RETENTION" || variable.name === "BACKUP_TIME_ZONE")
    ).toBe(false)
  })

  it("escapes $ so the kubelet passes user values literally instead of expanding $(VAR)", () => {
    const env = envOf({ dbUser: "$(DB_HOST)", dbName: "a$$b", dbSchema: "$(PGPASSWORD)" })
    expect(env).toContainEqual({ name: "DB_USER", value: "$$(DB_HOST)" })
    expect(env).toContainEqual({ name: "DB_NAME", value: "a$$$$b" })
    expect(env).toContainEqual({ name: "DB_SCHEMA", value: "$$(PGPASSWORD)" })
  })

  it("passes the TLS mode and the cleartext setting, and the password only as a secretKeyRef", () => {
    const env = envOf({ sslMode: "verify-full" }, { ...defaults, allowCleartextPassword: true })
    expect(env).toContainEqual({ name: "DB_SSL_MODE", value: "verify-full" })
    expect(env).toContainEqual({ name: "DB_ALLOW_CLEARTEXT_PASSWORD", value: "true" })
    expect(env).toContainEqual({
      name: "PGPASSWORD",
      valueFrom: { secretKeyRef: { name: "backup-secret", key: "password" } }
    })
    expect(env.some((variable) => variable.name === "DB_SSL_ROOT_CERT")).toBe(false)
  })

  it.each([
    [{ configMapKeyRef: { name: "db-ca", key: "ca.crt" } }],
    [{ secretKeyRef: { name: "db-ca", key: "ca.crt" } }]
  ])("hands the CA to the runner through valueFrom %j: the operator never reads it", (source) => {
    expect(envOf({ sslMode: "verify-ca", sslRootCert: source })).toContainEqual({
      name: "DB_SSL_ROOT_CERT",
      valueFrom: source
    })
  })
})

describe("encryption", () => {
  const recipient = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"

  it("names the dump .age after the compression's suffix and hands the runner the recipients", () => {
    const spec = { encryption: { ageRecipients: [recipient] } }
    const backup = backupWith(spec)
    const run = planRun(backup, { jobNamespace: "team-a", sslMode: "prefer", storage }, new Date(0))
    expect(run.location).toMatch(/backup-19700101-000000\.sql\.gz\.age$/u)
    expect(run.objects.manifest).toMatch(/backup-19700101-000000\.json$/u)
    expect(envOf(spec)).toContainEqual({ name: "BACKUP_AGE_RECIPIENTS", value: recipient })
  })

  it("takes more recipients from a Secret, only as a secretKeyRef", () => {
    const env = envOf({ encryption: { ageRecipientsSecretRef: { name: "age-keys", key: "recipients" } } })
    expect(env).toContainEqual({
      name: "BACKUP_AGE_RECIPIENTS_SECRET",
      valueFrom: { secretKeyRef: { name: "age-keys", key: "recipients" } }
    })
    expect(env.some((variable) => variable.name === "BACKUP_AGE_RECIPIENTS")).toBe(false)
  })
})
