import { RunnerContract, type StorageLocation } from "@db-backup-operator/backup-api/contract"
import type { ObjectStore } from "@db-backup-operator/storage"
import { Effect, Layer } from "effect"
import { InvalidConfiguration } from "./errors.ts"

/**
 * The {@link ObjectStore} a run writes to, as its contract names it. Each
 * store's client is imported only when a run uses it: a run to a volume
 * never loads a cloud SDK, and memory stays what the one store needs.
 *
 * Credentials: S3 takes the AWS SDK's default chain (the Job's
 * `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` from a Secret, else EKS IAM
 * roles for service accounts or Pod Identity); Azure the account key in
 * `AZURE_STORAGE_KEY` (from a Secret), else Azure Workload Identity; GCS
 * Application Default Credentials (GKE workload identity).
 *
 * @example
 * ```ts
 * declare const contract: Parameters<typeof storeLayer>[0]
 * declare const backup: Effect.Effect<void, never, Layer.Success<ReturnType<typeof storeLayer>>>
 * backup.pipe(Effect.provide(storeLayer(contract, process.env)))
 * ```
 */
export const storeLayer = (
  contract: RunnerContract.StoreSettings & {
    readonly store: StorageLocation.StoreKind
  },
  env: Readonly<Record<string, string | undefined>>
): Layer.Layer<ObjectStore, InvalidConfiguration> =>
  Layer.unwrap(
    Effect.gen(function* () {
      switch (contract.store) {
        case "gcs": {
          const { layer } = yield* Effect.promise(() => import("@db-backup-operator/storage/gcs"))
          return layer({ apiEndpoint: contract.gcsEndpoint })
        }
        case "s3": {
          const { layer } = yield* Effect.promise(() => import("@db-backup-operator/storage/s3"))
          return layer({
            region: contract.s3Region ?? "us-east-1",
            ...(contract.s3Endpoint === undefined ? {} : { endpoint: contract.s3Endpoint }),
            forcePathStyle: contract.s3ForcePathStyle
          })
        }
        case "azure": {
          if (contract.azureAccount === undefined) {
            return yield* new InvalidConfiguration({
              message: "environment variable AZURE_STORAGE_ACCOUNT is required with BACKUP_STORE=azure"
            })
          }
          const { layer } = yield* Effect.promise(() => import("@db-backup-operator/storage/azure"))
          const accountKey = env[RunnerContract.StoreSecretEnv.azureAccountKey]
          return layer({
            accountName: contract.azureAccount,
            ...(contract.azureEndpoint === undefined ? {} : { endpoint: contract.azureEndpoint }),
            ...(accountKey === undefined || accountKey === "" ? {} : { credentials: { accountKey } })
          })
        }
        case "file": {
          const { layer } = yield* Effect.promise(() => import("@db-backup-operator/storage/file"))
          return layer()
        }
      }
    })
  )
