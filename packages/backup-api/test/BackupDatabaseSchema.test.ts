import {
  BackupDatabaseSchema,
  BackupDatabaseSchemaSpec,
  BackupDatabaseSchemaStatus
} from "@db-backup-operator/backup-api"
import { describe, expect, it } from "@effect/vitest"
import { Schema } from "effect"
import { Yaml } from "effect/encoding"

// Verbatim from the original operator's README (shared/seed/README.md).
const originalExample = `apiVersion: backup.csyeteam03.xyz/v1
kind: BackupDatabaseSchema
metadata:
  name: database-backup
  namespace: backup-job-namespace
spec:
  # Database connection details
  dbHost: "pg-postgresql.postgres.svc.cluster.local"
  dbUser: "team03"
  dbPasswordSecretName: "backup-secret"
  dbPasswordSecretNamespace: "backup-job-namespace"
  dbPasswordSecretKey: "password"
  dbName: "api"
  dbSchema: "api"
  dbPort: 5432
  
  # Storage details
  gcsBucket: "operator-db-backups-bucket"
  
  # Service accounts for authorization
  kubeServiceAccount: "backup-sa"
  gcpServiceAccount: "db-operator-gsa"
  backupJobNamespace: "backup-job-namespace"
`

const decode = Schema.decodeUnknownSync(BackupDatabaseSchema.schema)
const spec = Schema.decodeUnknownSync(BackupDatabaseSchemaSpec)
const isSpec = Schema.is(BackupDatabaseSchemaSpec)
const validSpec = (Yaml.parse(originalExample) as { spec: Record<string, unknown> }).spec

describe("BackupDatabaseSchema", () => {
  it("identifies the original API", () => {
    expect(BackupDatabaseSchema.apiVersion).toBe("backup.csyeteam03.xyz/v1")
    expect(BackupDatabaseSchema.kind).toBe("BackupDatabaseSchema")
    expect(BackupDatabaseSchema.plural).toBe("backupdatabaseschemas")
    expect(BackupDatabaseSchema.namespaced).toBe(true)
  })

  it("decodes the original example resource unchanged", () => {
    const raw = Yaml.parse(originalExample)
    const backup = decode(raw)
    expect(backup.metadata).toEqual({ name: "database-backup", namespace: "backup-job-namespace" })
    expect(backup.spec).toEqual({
      dbHost: "pg-postgresql.postgres.svc.cluster.local",
      dbUser: "team03",
      dbPasswordSecretName: "backup-secret",
      dbPasswordSecretNamespace: "backup-job-namespace",
      dbPasswordSecretKey: "password",
      dbName: "api",
      dbSchema: "api",
      dbPort: 5432,
      gcsBucket: "operator-db-backups-bucket",
      kubeServiceAccount: "backup-sa",
      gcpServiceAccount: "db-operator-gsa",
      backupJobNamespace: "backup-job-namespace"
    })
    // Round trip: what we write back is what the user wrote.
    expect(Schema.encodeSync(BackupDatabaseSchema.schema)(backup)).toEqual(raw)
  })

  it("accepts a spec without the optional fields", () => {
    const { dbPasswordSecretNamespace: _a, kubeServiceAccount: _b, backupJobNamespace: _c, ...required } = validSpec
    expect(spec(required)).toEqual(required)
  })

  it.each(["dbHost", "dbUser", "dbPasswordSecretName", "dbPasswordSecretKey", "dbName", "dbSchema", "dbPort"])(
    "requires %s",
    (field) => {
      const { [field]: _, ...rest } = validSpec
      expect(isSpec(rest)).toBe(false)
    }
  )

  // Exactly one of gcsBucket and storageRef, and gcpServiceAccount with gcsBucket: CEL rules the
  // API server enforces (apps/backup/test/crds.test.ts, test/e2e/stores.test.ts).
  it("takes a storageRef instead of gcsBucket and gcpServiceAccount", () => {
    const { gcsBucket: _, gcpServiceAccount: __, ...rest } = validSpec
    expect(isSpec({ ...rest, storageRef: { name: "archive" } })).toBe(true)
    expect(isSpec({ ...rest, storageRef: { name: "Not_A_Name" } })).toBe(false)
  })

  it.each([
    ["dbHost", ""],
    ["dbHost", "has space"],
    ["dbUser", ""],
    ["dbName", "x".repeat(64)],
    ["dbSchema", ""],
    ["dbPort", 0],
    ["dbPort", 65536],
    ["dbPort", 5432.5],
    ["dbPort", "5432"],
    ["dbPasswordSecretName", "Backup_Secret"],
    ["dbPasswordSecretName", ""],
    ["dbPasswordSecretNamespace", "ns.with.dots"],
    ["dbPasswordSecretNamespace", "-ns"],
    ["dbPasswordSecretKey", "pass word"],
    ["kubeServiceAccount", "SA"],
    ["backupJobNamespace", "x".repeat(64)],
    ["gcsBucket", "ab"],
    ["gcsBucket", "x".repeat(64)],
    ["gcsBucket", "Upper-Case"],
    ["gcsBucket", "-starts-with-dash"],
    ["gcsBucket", "ends-with-dot."],
    ["gcsBucket", "has space"],
    // GCS's own rules, refused by GCS at the first upload before (issue 11).
    ["gcsBucket", "goog-bucket"],
    ["gcsBucket", "my-google-backups"],
    ["gcsBucket", "g00gle-backups"],
    ["gcsBucket", "192.168.5.4"],
    ["gcsBucket", "a..b"],
    ["gcsBucket", "a.-b"],
    // PostgreSQL's limit is 63 bytes, not characters: it cuts longer names short where they are created.
    ["dbSchema", "é".repeat(32)],
    ["dbName", `d${"日".repeat(21)}`],
    ["dbUser", "😀".repeat(16)],
    ["gcpServiceAccount", ""],
    ["gcpServiceAccount", "gsa@example.com"],
    ["gcpServiceAccount", "Has Upper"],
    // pg_dump's other formats are directories or tar files, which do not stream into one object.
    ["format", "directory"],
    ["format", "tar"],
    ["format", "Custom"]
  ])("rejects %s = %j", (field, value) => {
    expect(isSpec({ ...validSpec, [field]: value })).toBe(false)
  })

  it.each([
    ["gcsBucket", "abc"],
    ["gcsBucket", "my_bucket.backups-1"],
    ["gcsBucket", "x".repeat(63)],
    ["gcsBucket", "backups.example.com"],
    ["gcsBucket", "1.2.3.4.5"],
    ["gcsBucket", "gog-backups"],
    ["gcpServiceAccount", "db-operator-gsa@my-project.iam.gserviceaccount.com"],
    ["gcpServiceAccount", "123456789-compute@developer.gserviceaccount.com"],
    ["dbPort", 1],
    ["dbPort", 65535],
    ["dbSchema", "MixedCase Schema"],
    ["dbSchema", `${"é".repeat(31)}x`],
    ["dbUser", `${"日".repeat(21)}`],
    ["dbHost", "10.0.0.5"],
    ["dbPasswordSecretName", "backup.secret-1"],
    ["format", "plain"],
    ["format", "custom"]
  ])("accepts %s = %j", (field, value) => {
    expect(isSpec({ ...validSpec, [field]: value })).toBe(true)
  })

  it("describes every spec and status field, and keeps patterns in the JSON Schema", () => {
    for (const schema of [BackupDatabaseSchemaSpec, BackupDatabaseSchemaStatus]) {
      const document = Schema.toJsonSchemaDocument(schema)
      // A structural CRD schema allows no description or format inside allOf.
      expect(JSON.stringify(document)).not.toContain("allOf")
      const properties = (document.schema as { properties: Record<string, { description?: string }> }).properties
      for (const [name, property] of Object.entries(properties)) {
        expect(property.description, name).toBeTypeOf("string")
      }
    }
    const spec = Schema.toJsonSchemaDocument(BackupDatabaseSchemaSpec).schema as {
      properties: Record<string, { pattern?: string; minimum?: number; maximum?: number }>
      required: Array<string>
    }
    expect(spec.properties.gcsBucket?.pattern).toBeTypeOf("string")
    expect(spec.properties.dbPasswordSecretName?.pattern).toBeTypeOf("string")
    expect(spec.properties.dbPasswordSecretNamespace?.pattern).toBeTypeOf("string")
    expect(spec.properties.gcpServiceAccount?.pattern).toBeTypeOf("string")
    expect(spec.properties.dbPort).toMatchObject({ minimum: 1, maximum: 65535 })
    expect(spec.properties.gcsBucket).toMatchObject({ minLength: 3, maxLength: 63 })
    expect([...spec.required].sort()).toEqual(
      ["dbHost", "dbUser", "dbPasswordSecretName", "dbPasswordSecretKey", "dbName", "dbSchema", "dbPort"].sort()
    )
  })
})

describe("BackupDatabaseSchemaStatus", () => {
  const status = Schema.decodeUnknownSync(BackupDatabaseSchemaStatus)
  const isStatus = Schema.is(BackupDatabaseSchemaStatus)

  it("accepts an empty status and the original fields", () => {
    expect(status({})).toEqual({})
    const original = {
      lastBackupTime: "2025-03-04T05:06:07Z",
      backupLocation: "gs://operator-db-backups-bucket/backups/ns/db/backup-20250304-050607.sql.gz",
      status: "Running",
      jobName: "database-backup-20250304-050607"
    }
    expect(status(original)).toEqual(original)
  })

  it("accepts the full status", () => {
    const full = {
      lastBackupTime: "2025-03-04T05:06:07Z",
      backupLocation: "gs://b/backups/ns/db/backup-20250304-050607.sql.gz",
      status: "Success",
      jobName: "db-20250304-050607",
      observedGeneration: 2,
      conditions: [
        {
          type: "Ready",
          status: "True",
          reason: "BackupSucceeded",
          message: "",
          lastTransitionTime: "2025-03-04T05:07:00.123Z",
          observedGeneration: 2
        }
      ],
      lastSuccessfulBackupTime: "2025-03-04T05:07:00+02:00",
      lastBackupSizeBytes: 123456,
      lastBackupSha256: "a".repeat(64)
    }
    expect(status(full)).toEqual(full)
  })

  it.each([
    { status: "Completed" },
    { lastBackupTime: "yesterday" },
    { lastBackupSizeBytes: -1 },
    { lastBackupSha256: "ABC" },
    { observedGeneration: 1.5 },
    {
      conditions: [
        { type: "Ready", status: "Yes", reason: "R", message: "", lastTransitionTime: "2025-03-04T05:07:00Z" }
      ]
    },
    {
      conditions: [
        { type: "Ready", status: "True", reason: "has space", message: "", lastTransitionTime: "2025-03-04T05:07:00Z" }
      ]
    },
    { conditions: [{ type: "Ready", status: "True", reason: "R", message: "" }] }
  ])("rejects %j", (value) => {
    expect(isStatus(value)).toBe(false)
  })
})
