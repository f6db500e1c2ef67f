import {
  type BackupDatabaseSchema,
  defaultCompression,
  defaultDumpFormat,
  JobLabels,
  RunnerContract,
  StorageLocation,
  type Tls
} from "@db-backup-operator/backup-api"
import type { Job, OwnerReference } from "@db-backup-operator/kube"
import { serverOf } from "./admission.ts"
import type { BackupSettingsShape } from "./BackupSettings.ts"
import { jobName } from "./jobName.ts"
import { credentialEnv, type Storage, storagePodLabels, storageVolume, storeContract, storeOf } from "./storage.ts"

/** Where one run goes and who runs it; decided before the Job exists. */
export interface Run {
  readonly jobName: string
  readonly jobNamespace: string
  /** The TLS mode the runner connects with (the resource's, or the operator's default). */
  readonly sslMode: Tls.SslMode
  /** When the run's Job and objects are named after: its slot, or an on-demand run's creation. */
  readonly scheduledAt: Date
  /** The `Backup` record of the run. */
  readonly record?: string
  /** Whether `scheduledAt` is a schedule slot (false: an on-demand run, which no slot counts). */
  readonly scheduled: boolean
  /** Where its objects go. */
  readonly storage: Storage
  readonly objects: StorageLocation.BackupObjects
  /** URL of the dump (`gs://bucket/object`, ...): exactly what `status.backupLocation` reports. */
  readonly location: string
}

/** What a run of a resource is given before it is planned: its Job's namespace, TLS mode and storage. */
export interface RunSettings {
  readonly jobNamespace: string
  readonly sslMode: Tls.SslMode
  readonly storage: Storage
}

/**
 * Plans the run of `backup` named after `at` (second precision): a schedule
 * slot, or (`scheduled: false`) the creation of an on-demand `Backup`.
 */
export const planRun = (
  backup: BackupDatabaseSchema,
  where: RunSettings,
  at: Date,
  options: { readonly record?: string; readonly scheduled?: boolean } = {}
): Run => {
  const { jobNamespace, sslMode, storage } = where
  const scheduledAt = new Date(Math.floor(at.getTime() / 1000) * 1000)
  const namespace = backup.metadata.namespace ?? ""
  const name = backup.metadata.name ?? ""
  const objects = StorageLocation.backupObjects({
    namespace,
    name,
    startedAt: scheduledAt,
    compression: backup.spec.compression ?? defaultCompression,
    format: backup.spec.format ?? defaultDumpFormat,
    encrypted: backup.spec.encryption !== undefined
  })
  return {
    // A Job in the resource's own namespace cannot meet another resource of the same name.
    jobName: jobName(jobNamespace === namespace ? { name } : { name, namespace }, scheduledAt),
    jobNamespace,
    sslMode,
    scheduledAt,
    ...(options.record === undefined ? {} : { record: options.record }),
    scheduled: options.scheduled ?? true,
    storage,
    objects,
    location: StorageLocation.objectUrl(storeOf(storage.spec), objects.object)
  }
}

/**
 * What a spec backs up and where to, as the Job's `target` annotation
 * records it: a spec edit (or a storage edit) that changes it calls for a run
 * of the new target.
 *
 * @example
 * ```ts
 * targetOf({ dbHost: "pg", dbPort: 5432, dbName: "api", dbSchema: "billing" }, { spec: { gcs: { bucket: "b" } } })
 * // "pg:5432/api/billing -> gs://b"
 * ```
 */
export const targetOf = (
  spec: { readonly dbHost: string; readonly dbPort: number; readonly dbName: string; readonly dbSchema: string },
  storage: Storage
): string => `${serverOf(spec)}/${spec.dbName}/${spec.dbSchema} -> ${StorageLocation.storeUrl(storeOf(storage.spec))}`

/**
 * A literal env value as the kubelet will pass it: it expands `$(NAME)` to
 * the value of an earlier variable, so a database or role named `$(DB_HOST)`
 * would otherwise change meaning. `$$` is its escape for `$`.
 */
export const literal = ({ name, value }: RunnerContract.EnvVarValue): RunnerContract.EnvVarValue => ({
  name,
  value: value.replaceAll("$", () => "$$")
})

/** A resource list with every quantity as the string the Pod API takes (`1` -> `"1"`). */
export const quantities = (list: Readonly<Record<string, string | number>> | undefined) =>
  list === undefined
    ? undefined
    : Object.fromEntries(Object.entries(list).map(([name, value]) => [name, String(value)]))

export const rootCertRef = (source: NonNullable<BackupDatabaseSchema["spec"]["sslRootCert"]>): RunnerContract.KeyRef =>
  source.secretKeyRef === undefined
    ? { configMapKeyRef: { name: source.configMapKeyRef?.name ?? "", key: source.configMapKeyRef?.key ?? "" } }
    : { secretKeyRef: { name: source.secretKeyRef.name, key: source.secretKeyRef.key } }

/**
 * A runner Pod's placement and identity: the backup resource's scheduling
 * fields, and non-root with the runtime's seccomp profile (backup and restore
 * Pods alike).
 */
export const runnerPodPlacement = (
  spec:
    | Pick<BackupDatabaseSchema["spec"], "nodeSelector" | "tolerations" | "priorityClassName" | "affinity">
    | undefined,
  settings: Pick<BackupSettingsShape, "runAsUser">
) => ({
  ...(spec?.nodeSelector === undefined ? {} : { nodeSelector: spec.nodeSelector }),
  ...(spec?.tolerations === undefined ? {} : { tolerations: spec.tolerations }),
  ...(spec?.priorityClassName === undefined ? {} : { priorityClassName: spec.priorityClassName }),
  ...(spec?.affinity === undefined ? {} : { affinity: spec.affinity }),
  securityContext: {
    runAsNonRoot: true,
    runAsUser: settings.runAsUser,
    runAsGroup: settings.runAsUser,
    fsGroup: settings.runAsUser,
    seccompProfile: { type: "RuntimeDefault" as const }
  }
})

/** The runner container's security context: read-only root filesystem, no privilege escalation, no capabilities. */
export const runnerContainerSecurity = {
  runAsNonRoot: true,
  readOnlyRootFilesystem: true,
  allowPrivilegeEscalation: false,
  capabilities: { drop: ["ALL"] }
}

/**
 * The Job of one run. The password reaches the runner only through a
 * `secretKeyRef`; the Pod runs as non-root with a read-only root filesystem,
 * no service-account token (the runner does not call the Kubernetes API; GKE
 * workload identity needs none) and bounded resources.
 */
export const backupJob = (
  backup: BackupDatabaseSchema,
  run: Run,
  settings: BackupSettingsShape,
  owner: OwnerReference | undefined
): Job => {
  const namespace = backup.metadata.namespace ?? ""
  const name = backup.metadata.name ?? ""
  const labels = JobLabels.jobLabels({ namespace, name, uid: backup.metadata.uid ?? "" })
  const retention = backup.spec.retention ?? settings.defaultRetention
  const volume = storageVolume(run.storage.spec)
  const contract: RunnerContract.Contract = {
    host: backup.spec.dbHost,
    port: backup.spec.dbPort,
    user: backup.spec.dbUser,
    database: backup.spec.dbName,
    schema: backup.spec.dbSchema,
    sslMode: run.sslMode,
    allowCleartextPassword: settings.allowCleartextPassword,
    ...storeContract(run.storage.spec, settings.gcsEndpoint),
    object: run.objects.object,
    manifestObject: run.objects.manifest,
    format: backup.spec.format ?? defaultDumpFormat,
    compression: backup.spec.compression ?? defaultCompression,
    gzipLevel: RunnerContract.defaultGzipLevel,
    terminationMessagePath: RunnerContract.defaultTerminationMessagePath,
    resource: { namespace, name },
    // The resource's own retention, else the operator's default (none: keep everything).
    ...(retention === undefined ? {} : { retention }),
    ...(backup.spec.timeZone === undefined ? {} : { timeZone: backup.spec.timeZone }),
    ...(backup.spec.encryption?.ageRecipients === undefined
      ? {}
      : { ageRecipients: backup.spec.encryption.ageRecipients.join("\n") })
  }
  return {
    metadata: {
      name: run.jobName,
      namespace: run.jobNamespace,
      labels,
      annotations: {
        [JobLabels.Annotation.resource]: `${namespace}/${name}`,
        [JobLabels.Annotation.location]: run.location,
        [JobLabels.Annotation.databaseServer]: serverOf(backup.spec),
        [JobLabels.Annotation.target]: targetOf(backup.spec, run.storage),
        ...(run.scheduled ? { [JobLabels.Annotation.scheduledAt]: run.scheduledAt.toISOString() } : {}),
        ...(run.record === undefined ? {} : { [JobLabels.Annotation.backup]: run.record })
      },
      ...(owner === undefined ? {} : { ownerReferences: [owner] })
    },
    spec: {
      backoffLimit: backup.spec.backoffLimit ?? settings.backoffLimit,
      activeDeadlineSeconds: backup.spec.activeDeadlineSeconds ?? settings.activeDeadlineSeconds,
      // A retry starts only once the lost Pod has stopped: a deleted Pod's runner may still be
      // writing the manifest of a dump it stored, and two attempts never write the same objects at once.
      podReplacementPolicy: "Failed",
      template: {
        metadata: { labels: { ...labels, ...storagePodLabels(run.storage.spec) } },
        spec: {
          restartPolicy: "Never",
          ...(backup.spec.kubeServiceAccount === undefined
            ? {}
            : { serviceAccountName: backup.spec.kubeServiceAccount }),
          automountServiceAccountToken: false,
          ...runnerPodPlacement(backup.spec, settings),
          volumes: [{ name: "tmp", emptyDir: { sizeLimit: "64Mi" } }, ...(volume === undefined ? [] : [volume.volume])],
          containers: [
            {
              name: "runner",
              image: settings.runnerImage,
              imagePullPolicy: "IfNotPresent",
              env: [
                ...RunnerContract.toEnv(contract).map(literal),
                RunnerContract.passwordEnvVar({
                  name: backup.spec.dbPasswordSecretName,
                  key: backup.spec.dbPasswordSecretKey
                }),
                ...(backup.spec.sslRootCert === undefined
                  ? []
                  : [RunnerContract.sslRootCertEnvVar(rootCertRef(backup.spec.sslRootCert))]),
                ...credentialEnv(run.storage),
                ...(backup.spec.encryption?.ageRecipientsSecretRef === undefined
                  ? []
                  : [
                      RunnerContract.secretEnvVar(
                        RunnerContract.AGE_RECIPIENTS_SECRET_ENV,
                        backup.spec.encryption.ageRecipientsSecretRef
                      )
                    ])
              ],
              resources: {
                requests: quantities(backup.spec.resources?.requests) ?? settings.resources.requests,
                limits: quantities(backup.spec.resources?.limits) ?? settings.resources.limits
              },
              securityContext: runnerContainerSecurity,
              terminationMessagePath: RunnerContract.defaultTerminationMessagePath,
              terminationMessagePolicy: "FallbackToLogsOnError",
              volumeMounts: [{ name: "tmp", mountPath: "/tmp" }, ...(volume === undefined ? [] : [volume.mount])]
            }
          ]
        }
      }
    }
  }
}
