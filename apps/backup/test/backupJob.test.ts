import type { BackupDatabaseSchemaSpec } from "@db-backup-operator/backup-api"
import { describe, expect, it } from "@effect/vitest"
import { defaults } from "../src/BackupSettings.ts"
import { backupJob, planRun } from "../src/backupJob.ts"
import { backupWith } from "./fixtures.ts"

const jobOf = (overrides: Partial<BackupDatabaseSchemaSpec>, settings = defaults) => {
  const backup = backupWith({ dbHost: "pg.db.svc", ...overrides })
  const run = planRun(backup, { jobNamespace: "team-a", sslMode: backup.spec.sslMode ?? "prefer" }, new Date(0))
  return backupJob(backup, run, settings, undefined)
}

const envOf = (overrides: Partial<BackupDatabaseSchemaSpec>, settings = defaults) =>
  jobOf(overrides, settings).spec?.template.spec?.containers[0]?.env ?? []

describe("backupJob", () => {
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
