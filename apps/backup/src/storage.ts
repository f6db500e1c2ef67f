import {
  type BackupDatabaseSchema,
  type BackupStorage,
  type BackupStorageSpec,
  RunnerContract,
  type SecretKeyRef,
  StorageLocation
} from "@db-backup-operator/backup-api"
import type { SecretUse } from "./access.ts"

/**
 * Where a resource's backups go, resolved: its `gcsBucket` (the original
 * API) or the `BackupStorage` its `spec.storageRef` names. Everything the
 * Job needs to reach the store comes from here: the contract's store fields,
 * the credentials' `secretKeyRef`s and, for a volume, the claim's mount.
 */
export interface Storage {
  /** `BackupStorage` name, or undefined for `spec.gcsBucket`. */
  readonly name?: string | undefined
  readonly spec: BackupStorageSpec
}

/** Why the resource's storage cannot be used yet. */
export interface StorageProblem {
  readonly reason: "StorageNotFound"
  readonly message: string
}

/**
 * The key of the `BackupStorage` a resource references, for the watch that
 * wakes it when that storage changes.
 *
 * @example
 * ```ts
 * declare const backup: Parameters<typeof storageKeysOf>[0] // in team-a, storageRef archive
 * storageKeysOf(backup) // ["team-a/archive"]
 * ```
 */
export const storageKeysOf = (backup: BackupDatabaseSchema): ReadonlyArray<string> =>
  backup.spec.storageRef === undefined ? [] : [`${backup.metadata.namespace ?? ""}/${backup.spec.storageRef.name}`]

/**
 * Resolves where `backup` stores its dumps, given the `BackupStorage` of its
 * namespace it names (`found`, undefined when there is none).
 *
 * @example
 * ```ts
 * declare const backup: Parameters<typeof resolveStorage>[0] // gcsBucket: "dumps"
 * resolveStorage(backup, undefined) // { spec: { gcs: { bucket: "dumps" } } }
 * ```
 */
export const resolveStorage = (
  backup: BackupDatabaseSchema,
  found: BackupStorage | undefined
): Storage | StorageProblem => {
  const ref = backup.spec.storageRef
  if (ref === undefined) return { spec: { gcs: { bucket: backup.spec.gcsBucket ?? "" } } }
  if (found === undefined) {
    return {
      reason: "StorageNotFound",
      message: `BackupStorage ${backup.metadata.namespace ?? ""}/${ref.name} (spec.storageRef.name) not found`
    }
  }
  return { name: ref.name, spec: found.spec }
}

/** Whether {@link resolveStorage} found a storage. */
export const isStorage = (resolved: Storage | StorageProblem): resolved is Storage => "spec" in resolved

/**
 * The store and bucket a storage definition writes to.
 *
 * @example
 * ```ts
 * storeOf({ volume: { persistentVolumeClaimName: "dumps" } }) // { kind: "file", bucket: "/var/lib/db-backup/dumps" }
 * ```
 */
export const storeOf = (spec: BackupStorageSpec): StorageLocation.Store => {
  if (spec.s3 !== undefined) return { kind: "s3", bucket: spec.s3.bucket }
  if (spec.azure !== undefined) {
    return { kind: "azure", bucket: spec.azure.container, account: spec.azure.storageAccount }
  }
  if (spec.volume !== undefined) {
    return {
      kind: "file",
      bucket: StorageLocation.volumeDirectory(spec.volume.persistentVolumeClaimName, spec.volume.subPath)
    }
  }
  return { kind: "gcs", bucket: spec.gcs?.bucket ?? "" }
}

/** The contract's fields that say where the runner writes. */
export type StoreContract = Pick<
  RunnerContract.Contract,
  "store" | "bucket" | "gcsEndpoint" | "s3Region" | "s3Endpoint" | "s3ForcePathStyle" | "azureAccount" | "azureEndpoint"
>

/**
 * The runner contract's store fields. `gcsEndpoint` is the operator's
 * `--gcs-endpoint` (a test emulator) unless the storage names its own.
 *
 * @example
 * ```ts
 * storeContract({ s3: { bucket: "dumps", endpoint: "https://minio:9000", forcePathStyle: true } }, undefined)
 * // { store: "s3", bucket: "dumps", s3Endpoint: "https://minio:9000", s3ForcePathStyle: true }
 * ```
 */
export const storeContract = (spec: BackupStorageSpec, gcsEndpoint: string | undefined): StoreContract => {
  const store = storeOf(spec)
  const endpoint = spec.gcs?.endpoint ?? gcsEndpoint
  return {
    store: store.kind,
    bucket: store.bucket,
    s3ForcePathStyle: spec.s3?.forcePathStyle ?? false,
    ...(store.kind === "gcs" && endpoint !== undefined ? { gcsEndpoint: endpoint } : {}),
    ...(spec.s3?.region === undefined ? {} : { s3Region: spec.s3.region }),
    ...(spec.s3?.endpoint === undefined ? {} : { s3Endpoint: spec.s3.endpoint }),
    ...(spec.azure === undefined ? {} : { azureAccount: spec.azure.storageAccount }),
    ...(spec.azure?.endpoint === undefined ? {} : { azureEndpoint: spec.azure.endpoint })
  }
}

/** The storage's credentials: env var, Secret key and the field that names it. */
const credentialsOf = (
  storage: Storage
): ReadonlyArray<{ readonly env: string; readonly ref: SecretKeyRef; readonly field: string }> => {
  const field = (path: string) => `BackupStorage ${storage.name ?? ""} spec.${path}.name`
  const { s3, azure } = storage.spec
  return [
    ...(s3?.accessKeyIdSecretRef === undefined || s3.secretAccessKeySecretRef === undefined
      ? []
      : [
          {
            env: RunnerContract.StoreSecretEnv.s3AccessKeyId,
            ref: s3.accessKeyIdSecretRef,
            field: field("s3.accessKeyIdSecretRef")
          },
          {
            env: RunnerContract.StoreSecretEnv.s3SecretAccessKey,
            ref: s3.secretAccessKeySecretRef,
            field: field("s3.secretAccessKeySecretRef")
          }
        ]),
    ...(azure?.accountKeySecretRef === undefined
      ? []
      : [
          {
            env: RunnerContract.StoreSecretEnv.azureAccountKey,
            ref: azure.accountKeySecretRef,
            field: field("azure.accountKeySecretRef")
          }
        ])
  ]
}

/**
 * The env entries carrying the store's credentials, each a `secretKeyRef`
 * the kubelet resolves: the operator never reads them.
 */
export const credentialEnv = (storage: Storage) =>
  credentialsOf(storage).map(({ env, ref }) => RunnerContract.secretEnvVar(env, ref))

/**
 * The Secrets the storage makes the Job use, for the same consent rules as
 * the password's (they are read in the Job's namespace).
 */
export const credentialSecrets = (storage: Storage, jobNamespace: string): ReadonlyArray<SecretUse> =>
  credentialsOf(storage).map(({ ref, field }) => ({ field, namespace: jobNamespace, name: ref.name }))

/** The backup Pod's volume and mount of a volume storage (none for the others). */
export const storageVolume = (spec: BackupStorageSpec) => {
  const volume = spec.volume
  if (volume === undefined) return undefined
  return {
    volume: { name: "backup-storage", persistentVolumeClaim: { claimName: volume.persistentVolumeClaimName } },
    mount: {
      name: "backup-storage",
      mountPath: StorageLocation.volumeDirectory(volume.persistentVolumeClaimName, volume.subPath),
      ...(volume.subPath === undefined ? {} : { subPath: volume.subPath })
    }
  } as const
}

/**
 * Labels the backup Pod needs for its storage: Azure Workload Identity's
 * webhook injects the federated token only into Pods labelled
 * `azure.workload.identity/use: "true"`, so an Azure storage without an
 * account key asks for it. (GKE and EKS key on the ServiceAccount alone.)
 *
 * @example
 * ```ts
 * storagePodLabels({ azure: { storageAccount: "acme", container: "dumps" } }) // { "azure.workload.identity/use": "true" }
 * ```
 */
export const storagePodLabels = (spec: BackupStorageSpec): Readonly<Record<string, string>> =>
  spec.azure !== undefined && spec.azure.accountKeySecretRef === undefined
    ? { "azure.workload.identity/use": "true" }
    : {}
