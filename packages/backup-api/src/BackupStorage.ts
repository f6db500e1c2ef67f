import { CrdSchema, Resource } from "@db-backup-operator/kube"
import { Schema } from "effect"
import {
  AzureAccountName,
  AzureContainerName,
  DnsSubdomain,
  EndpointUrl,
  GcsBucketName,
  gcsBucketRules,
  nameValidations,
  S3BucketName,
  SecretKey,
  s3BucketRules,
  VolumeSubPath
} from "./Validation.ts"

/**
 * A storage definition many `BackupDatabaseSchema`s share: where their dumps
 * go (GCS, S3 or an S3-compatible server, Azure Blob Storage, or a
 * PersistentVolumeClaim) and with which credentials. Exactly one store is set.
 * Credentials are Secret keys that reach the backup Pod only as `secretKeyRef`
 * environment variables (the operator never reads them); without them the
 * Pod uses the platform's workload identity (GKE, EKS IRSA or Pod Identity,
 * Azure Workload Identity) through its Kubernetes ServiceAccount.
 */

/** A key of a Secret in the backup Job's namespace. */
export const SecretKeyRef = Schema.Struct({
  name: DnsSubdomain.annotate({ description: "Name of the Secret, in the backup Job's namespace." }),
  key: SecretKey.annotate({ description: "Key in the Secret's data." })
})
export type SecretKeyRef = typeof SecretKeyRef.Type

/** Google Cloud Storage. */
export const GcsStorage = Schema.Struct({
  bucket: GcsBucketName.annotate({ description: "The bucket (it must exist)." }),
  endpoint: Schema.optionalKey(
    EndpointUrl.annotate({
      description: "JSON API endpoint, for a private endpoint. Default: https://storage.googleapis.com."
    })
  )
}).annotate({
  description:
    "Google Cloud Storage, with the Pod's workload identity (the Kubernetes ServiceAccount bound to a GCP service account).",
  ...CrdSchema.validations(nameValidations(gcsBucketRules, "bucket"))
})

/** Amazon S3 or an S3-compatible server. */
export const S3Storage = Schema.Struct({
  bucket: S3BucketName.annotate({ description: "The bucket (it must exist)." }),
  region: Schema.optionalKey(
    Schema.String.check(Schema.isMaxCodePoints(64), Schema.isPattern(/^[a-z0-9][-a-z0-9]*$/u)).annotate({
      description: "Region of the bucket. Default: us-east-1."
    })
  ),
  endpoint: Schema.optionalKey(
    EndpointUrl.annotate({
      description: "Endpoint of an S3-compatible server (MinIO, Ceph, versitygw, ...). Default: AWS's for the region."
    })
  ),
  forcePathStyle: Schema.optionalKey(
    Schema.Boolean.annotate({
      description:
        "Address the bucket in the path (https://endpoint/bucket/object) instead of the host name; most S3-compatible servers need it. Default false."
    })
  ),
  accessKeyIdSecretRef: Schema.optionalKey(
    SecretKeyRef.annotate({ description: "The access key id. Set with secretAccessKeySecretRef, or neither." })
  ),
  secretAccessKeySecretRef: Schema.optionalKey(
    SecretKeyRef.annotate({ description: "The secret access key. Set with accessKeyIdSecretRef, or neither." })
  )
}).annotate({
  description:
    "Amazon S3 or an S3-compatible server. Without keys, the Pod's identity: EKS IAM roles for service accounts or Pod Identity.",
  ...CrdSchema.validations([
    ...nameValidations(s3BucketRules, "bucket"),
    {
      rule: "has(self.accessKeyIdSecretRef) == has(self.secretAccessKeySecretRef)",
      message: "set both accessKeyIdSecretRef and secretAccessKeySecretRef, or neither (workload identity)"
    }
  ])
})

/** Azure Blob Storage. */
export const AzureStorage = Schema.Struct({
  storageAccount: AzureAccountName.annotate({ description: "The storage account." }),
  container: AzureContainerName.annotate({ description: "The blob container (it must exist)." }),
  endpoint: Schema.optionalKey(
    EndpointUrl.annotate({
      description:
        "Blob service endpoint, for sovereign clouds, private endpoints or Azurite. Default: https://<storageAccount>.blob.core.windows.net."
    })
  ),
  accountKeySecretRef: Schema.optionalKey(
    SecretKeyRef.annotate({
      description: "The storage account's access key. Without it, the Pod's Azure Workload Identity is used."
    })
  )
}).annotate({
  description: "Azure Blob Storage. Without a key, the Pod's Azure Workload Identity."
})

/** A PersistentVolumeClaim mounted in the backup Pod. */
export const VolumeStorage = Schema.Struct({
  persistentVolumeClaimName: DnsSubdomain.annotate({
    description: "The claim, in the backup Job's namespace. It must allow writes from the backup Pod's user."
  }),
  subPath: Schema.optionalKey(
    VolumeSubPath.annotate({ description: "A directory in the volume for the backups (created if missing)." })
  )
}).annotate({ description: "A PersistentVolumeClaim: the dumps are files in it." })

/** The store of a `BackupStorage`: exactly one of the four. */
export const BackupStorageSpec = Schema.Struct({
  gcs: Schema.optionalKey(GcsStorage),
  s3: Schema.optionalKey(S3Storage),
  azure: Schema.optionalKey(AzureStorage),
  volume: Schema.optionalKey(VolumeStorage)
}).annotate({
  description: "Where backups go: exactly one of gcs, s3, azure and volume.",
  ...CrdSchema.validations([
    {
      rule: "[has(self.gcs), has(self.s3), has(self.azure), has(self.volume)].filter(x, x).size() == 1",
      message: "set exactly one of gcs, s3, azure and volume"
    }
  ])
})
export type BackupStorageSpec = typeof BackupStorageSpec.Type

/**
 * The `BackupStorage` kind (`backup.csyeteam03.xyz/v1`): a storage definition
 * that `BackupDatabaseSchema`s of its namespace reference by
 * `spec.storageRef.name`.
 *
 * @example
 * ```ts
 * declare const objectFromTheApiServer: unknown
 * const storage = Schema.decodeUnknownSync(BackupStorage.schema)(objectFromTheApiServer)
 * storage.spec.s3?.bucket // "backups"
 * ```
 */
export const BackupStorage = Resource.custom({
  group: "backup.csyeteam03.xyz",
  version: "v1",
  kind: "BackupStorage",
  plural: "backupstorages",
  namespaced: true,
  spec: BackupStorageSpec,
  // Nothing yet: the resources that use a storage report its problems.
  status: Schema.Struct({})
})
export type BackupStorage = Resource.Type<typeof BackupStorage>

/**
 * How the `BackupStorage` CRD presents itself in kubectl.
 *
 * ```
 * $ kubectl get backupstorages
 * NAME      GCS   S3        AZURE   VOLUME   AGE
 * archive         backups                    3d
 * ```
 */
export const backupStorageCrdOptions = {
  description: "Where backups go (GCS, S3, Azure Blob or a PersistentVolumeClaim), shared by many resources.",
  shortNames: ["bstore"],
  categories: ["backups"],
  printerColumns: [
    { name: "GCS", type: "string", jsonPath: ".spec.gcs.bucket", description: "GCS bucket." },
    { name: "S3", type: "string", jsonPath: ".spec.s3.bucket", description: "S3 bucket." },
    { name: "Azure", type: "string", jsonPath: ".spec.azure.container", description: "Azure Blob container." },
    {
      name: "Volume",
      type: "string",
      jsonPath: ".spec.volume.persistentVolumeClaimName",
      description: "PersistentVolumeClaim."
    },
    { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" }
  ]
} as const

/** File name of the generated CRD under `crds/`. */
export const backupStorageCrdFile = "backup.csyeteam03.xyz_backupstorages.yaml"
