import {
  BackupDatabaseSchema,
  type BackupStorage,
  type BackupStorageSpec,
  RunnerContract
} from "@db-backup-operator/backup-api"
import { Job } from "@db-backup-operator/kube"
import { describe, expect, it } from "@effect/vitest"
import { Schema } from "effect"
import { access } from "../src/access.ts"
import { defaults } from "../src/BackupSettings.ts"
import { backupJob, planRun, targetOf } from "../src/backupJob.ts"
import { isStorage, resolveStorage, type Storage, storageKeysOf } from "../src/storage.ts"
import { backupWith, originalSpec } from "./fixtures.ts"

const { gcsBucket: _, gcpServiceAccount: __, ...withoutBucket } = originalSpec
const referencing = (name: string) =>
  Schema.decodeUnknownSync(BackupDatabaseSchema.schema)({
    ...backupWith(),
    spec: { ...withoutBucket, storageRef: { name } }
  })

const storageNamed = (name: string, spec: BackupStorageSpec): BackupStorage => ({
  apiVersion: "backup.csyeteam03.xyz/v1",
  kind: "BackupStorage",
  metadata: { name, namespace: "team-a" },
  spec
})

const s3: BackupStorageSpec = {
  s3: {
    bucket: "dumps",
    region: "eu-west-1",
    endpoint: "http://127.0.0.1:7070",
    forcePathStyle: true,
    accessKeyIdSecretRef: { name: "s3-keys", key: "id" },
    secretAccessKeySecretRef: { name: "s3-keys", key: "secret" }
  }
}
const azureStore = { storageAccount: "acme", container: "dumps" }
const azure: BackupStorageSpec = { azure: azureStore }
const volume: BackupStorageSpec = { volume: { persistentVolumeClaimName: "backups", subPath: "team-a/db" } }

/** The Job of a run of `orders` referencing `spec`, and its runner container. */
const jobFor = (spec: BackupStorageSpec) => {
  const backup = referencing("archive")
  const storage = resolveStorage(backup, storageNamed("archive", spec)) as Storage
  const run = planRun(backup, { jobNamespace: "team-a", sslMode: "prefer", storage }, new Date("2026-05-01T10:00:00Z"))
  const job = backupJob(backup, run, defaults, undefined)
  const pod = job.spec?.template
  const container = pod?.spec?.containers[0]
  const env = Object.fromEntries((container?.env ?? []).map((v) => [v.name, v.value ?? v.valueFrom]))
  return { run, job, pod, container, env }
}

describe("resolving a resource's storage", () => {
  it("takes the original gcsBucket as a GCS storage, and names no BackupStorage to watch", () => {
    const backup = backupWith()
    expect(resolveStorage(backup, undefined)).toEqual({ spec: { gcs: { bucket: "operator-db-backups-bucket" } } })
    expect(storageKeysOf(backup)).toEqual([])
    // As before this storage existed: an upgrade does not look like a new target.
    expect(targetOf(backup.spec, { spec: { gcs: { bucket: "operator-db-backups-bucket" } } })).toBe(
      "pg-postgresql.postgres.svc.cluster.local:5432/api/api -> gs://operator-db-backups-bucket"
    )
  })

  it("waits with StorageNotFound naming the field while the referenced BackupStorage does not exist", () => {
    const backup = referencing("archive")
    expect(storageKeysOf(backup)).toEqual(["team-a/archive"])
    const resolved = resolveStorage(backup, undefined)
    expect(isStorage(resolved)).toBe(false)
    expect(resolved).toEqual({
      reason: "StorageNotFound",
      message: "BackupStorage team-a/archive (spec.storageRef.name) not found"
    })
  })
})

describe("a run to each store", () => {
  it.each([
    [s3, "s3://dumps/backups/team-a/orders/backup-20260501-100000.sql.gz"],
    [azure, "azblob://acme/dumps/backups/team-a/orders/backup-20260501-100000.sql.gz"],
    [volume, "file:///var/lib/db-backup/backups/team-a/db/backups/team-a/orders/backup-20260501-100000.sql.gz"],
    [{ gcs: { bucket: "dumps" } }, "gs://dumps/backups/team-a/orders/backup-20260501-100000.sql.gz"]
  ] as const)("%o: status.backupLocation is the store's URL of the dump", (spec, location) => {
    expect(jobFor(spec).run.location).toBe(location)
  })

  it("S3: the contract names the store, endpoint, region and path style; the keys come from the Secret", () => {
    const { env } = jobFor(s3)
    expect(env).toMatchObject({
      BACKUP_STORE: "s3",
      BACKUP_BUCKET: "dumps",
      S3_REGION: "eu-west-1",
      S3_ENDPOINT: "http://127.0.0.1:7070",
      S3_FORCE_PATH_STYLE: "true",
      [RunnerContract.StoreSecretEnv.s3AccessKeyId]: { secretKeyRef: { name: "s3-keys", key: "id" } },
      [RunnerContract.StoreSecretEnv.s3SecretAccessKey]: { secretKeyRef: { name: "s3-keys", key: "secret" } }
    })
    expect(env.GCS_ENDPOINT).toBeUndefined()
  })

  it("Azure without a key: workload identity, for which the Pod carries the webhook's label", () => {
    const { env, pod } = jobFor(azure)
    expect(env).toMatchObject({ BACKUP_STORE: "azure", BACKUP_BUCKET: "dumps", AZURE_STORAGE_ACCOUNT: "acme" })
    expect(env[RunnerContract.StoreSecretEnv.azureAccountKey]).toBeUndefined()
    expect(pod?.metadata?.labels?.["azure.workload.identity/use"]).toBe("true")
    const withKey = jobFor({ azure: { ...azureStore, accountKeySecretRef: { name: "az", key: "key" } } })
    expect(withKey.env[RunnerContract.StoreSecretEnv.azureAccountKey]).toEqual({
      secretKeyRef: { name: "az", key: "key" }
    })
    expect(withKey.pod?.metadata?.labels?.["azure.workload.identity/use"]).toBeUndefined()
  })

  it("a volume: the claim is mounted where the location says, its subPath in the claim", () => {
    const { env, pod, container } = jobFor(volume)
    expect(env).toMatchObject({ BACKUP_STORE: "file", BACKUP_BUCKET: "/var/lib/db-backup/backups/team-a/db" })
    expect(pod?.spec?.volumes).toContainEqual({
      name: "backup-storage",
      persistentVolumeClaim: { claimName: "backups" }
    })
    expect(container?.volumeMounts).toContainEqual({
      name: "backup-storage",
      mountPath: "/var/lib/db-backup/backups/team-a/db",
      subPath: "team-a/db"
    })
    // The root filesystem stays read-only: the claim is the only place the runner writes to.
    expect(container?.securityContext?.readOnlyRootFilesystem).toBe(true)
    // What reaches the API server: encoding keeps the claim and the subPath (a volume that lost its
    // source would be taken for an emptyDir, and the backup would vanish with the Pod).
    const sent = Schema.encodeSync(Job.schema)(jobFor(volume).job)
    expect(sent.spec?.template.spec?.volumes).toContainEqual({
      name: "backup-storage",
      persistentVolumeClaim: { claimName: "backups" }
    })
    expect(sent.spec?.template.spec?.containers[0]?.volumeMounts).toContainEqual(
      expect.objectContaining({ subPath: "team-a/db" })
    )
  })

  it("no credential ever appears as a literal value in the Job", () => {
    for (const spec of [s3, azure, volume]) {
      const { container } = jobFor(spec)
      for (const variable of container?.env ?? []) {
        if (/KEY|SECRET|^PGPASSWORD$/u.test(variable.name)) expect(variable.value, variable.name).toBeUndefined()
      }
    }
  })
})

describe("credential Secrets follow the password's consent rules", () => {
  const storage = resolveStorage(referencing("archive"), storageNamed("archive", s3)) as Storage

  it("in the resource's own namespace, no consent is asked (as for the password)", () => {
    const decided = access(
      referencing("archive"),
      { allowedNamespaces: [], requireSecretOptIn: false, minSslMode: "disable" },
      storage
    )
    expect(decided).toMatchObject({ _tag: "Allowed", needConsent: [] })
  })

  it("with requireSecretOptIn, both S3 key Secrets must consent, each named by its field", () => {
    const decided = access(
      referencing("archive"),
      { allowedNamespaces: [], requireSecretOptIn: true, minSslMode: "disable" },
      storage
    )
    expect(decided._tag === "Allowed" ? decided.needConsent : []).toEqual([
      { field: "spec.dbPasswordSecretName", namespace: "team-a", name: "backup-secret" },
      { field: "BackupStorage archive spec.s3.accessKeyIdSecretRef.name", namespace: "team-a", name: "s3-keys" },
      { field: "BackupStorage archive spec.s3.secretAccessKeySecretRef.name", namespace: "team-a", name: "s3-keys" }
    ])
  })
})
