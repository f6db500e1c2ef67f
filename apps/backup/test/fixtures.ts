import { BackupDatabaseSchema, type BackupDatabaseSchemaSpec } from "@db-backup-operator/backup-api"
import { Schema } from "effect"

/** The original README's example spec. */
export const originalSpec: BackupDatabaseSchemaSpec = {
  dbHost: "pg-postgresql.postgres.svc.cluster.local",
  dbUser: "team03",
  dbPasswordSecretName: "backup-secret",
  dbPasswordSecretKey: "password",
  dbName: "api",
  dbSchema: "api",
  dbPort: 5432,
  gcsBucket: "operator-db-backups-bucket",
  gcpServiceAccount: "db-operator-gsa"
}

/** `team-a/orders` with the original spec and `overrides`, decoded as the API server's object would be. */
export const backupWith = (overrides: Partial<BackupDatabaseSchemaSpec> = {}) =>
  Schema.decodeUnknownSync(BackupDatabaseSchema.schema)({
    apiVersion: "backup.csyeteam03.xyz/v1",
    kind: "BackupDatabaseSchema",
    metadata: { namespace: "team-a", name: "orders", uid: "u-1" },
    spec: { ...originalSpec, ...overrides }
  })
