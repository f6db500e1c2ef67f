import { JobLabels, type Restore, RunnerContract } from "@db-backup-operator/backup-api"
import type { Job, OwnerReference } from "@db-backup-operator/kube"
import { Schema } from "effect"
import type { BackupSettingsShape } from "../BackupSettings.ts"
import { literal, quantities, rootCertRef, runnerContainerSecurity, runnerPodPlacement } from "../backupJob.ts"
import { restoreJobName } from "../jobName.ts"
import { credentialEnv, storagePodLabels, storageVolume, storeContract } from "../storage.ts"
import { type ReadySource, targetText } from "./source.ts"

const encodeStoreEnv = Schema.encodeSync(RunnerContract.StoreEnv)

/**
 * The Job name of a Restore whose Job runs in `jobNamespace`: hashed with the
 * Restore's namespace when that is another one, where Restores of several
 * namespaces may meet.
 */
export const restoreJobNameFor = (restore: Restore, jobNamespace: string): string => {
  const name = restore.metadata.name ?? ""
  const namespace = restore.metadata.namespace ?? ""
  return restoreJobName(jobNamespace === namespace ? { name } : { name, namespace })
}

/**
 * The runner's command line for a restore: `restore <URL>` and one
 * `--option=value` word per setting, so no value can be taken for an option
 * (the values are the CRD's validated names, and no shell ever sees them).
 *
 * @example
 * ```ts
 * declare const restore: Parameters<typeof restoreArgs>[0], source: Parameters<typeof restoreArgs>[1]
 * restoreArgs(restore, source) // ["restore", "gs://dumps/backups/team/api/backup-20261203-000000.json", "--username=app", "--host=pg", ...]
 * ```
 */
export const restoreArgs = (restore: Restore, source: ReadySource): ReadonlyArray<string> => {
  const { connection } = source
  const verify = restore.spec.verify === true
  return [
    verify ? "verify" : "restore",
    source.location,
    `--username=${connection.user}`,
    ...(connection.host === undefined ? [] : [`--host=${connection.host}`]),
    ...(connection.port === undefined ? [] : [`--port=${connection.port}`]),
    ...(connection.database === undefined ? [] : [`--dbname=${connection.database}`]),
    ...(verify ? [] : [`--schema-exists=${restore.spec.schemaExists === "Replace" ? "replace" : "fail"}`]),
    `--sslmode=${source.sslMode}`,
    ...(!verify && restore.spec.noOwner === true ? ["--no-owner"] : []),
    ...(!verify && restore.spec.noPrivileges === true ? ["--no-privileges"] : [])
  ]
}

/**
 * The Job of one Restore: the runner image's `db-backup-runner restore`, with
 * the password, the store's credentials, the CA and the age identity only
 * through `secretKeyRef`/`configMapKeyRef` env (never in args, status or
 * Events), as non-root with a read-only root filesystem and no
 * service-account token. No retries (`backoffLimit: 0`): a restore commits
 * all or nothing, and a failure it reports (a checksum, a schema in the way)
 * would only fail again; another Restore tries again.
 */
export const restoreJob = (
  restore: Restore,
  source: ReadySource,
  settings: BackupSettingsShape,
  owner: OwnerReference | undefined
): Job => {
  const namespace = restore.metadata.namespace ?? ""
  const name = restore.metadata.name ?? ""
  const labels = JobLabels.restoreJobLabels({ uid: restore.metadata.uid ?? "" })
  const { store: _store, bucket: _bucket, ...storeSettings } = storeContract(source.storage.spec, settings.gcsEndpoint)
  const storeEnv: Readonly<Record<string, string | undefined>> = encodeStoreEnv(storeSettings)
  const volume = storageVolume(source.storage.spec)
  const resourceSpec = source.resource?.spec
  const serviceAccount = restore.spec.kubeServiceAccount ?? resourceSpec?.kubeServiceAccount
  const identity = restore.spec.decryption?.ageIdentitySecretRef
  const sslRootCert = source.connection.sslRootCert
  return {
    metadata: {
      name: restoreJobNameFor(restore, source.jobNamespace),
      namespace: source.jobNamespace,
      labels,
      annotations: {
        [JobLabels.Annotation.restore]: `${namespace}/${name}`,
        ...(source.backupName === undefined ? {} : { [JobLabels.Annotation.backup]: source.backupName }),
        [JobLabels.Annotation.location]: source.location,
        [JobLabels.Annotation.target]: targetText(source.connection)
      },
      ...(owner === undefined ? {} : { ownerReferences: [owner] })
    },
    spec: {
      backoffLimit: 0,
      activeDeadlineSeconds: restore.spec.activeDeadlineSeconds ?? settings.activeDeadlineSeconds,
      podReplacementPolicy: "Failed",
      template: {
        metadata: { labels: { ...labels, ...storagePodLabels(source.storage.spec) } },
        spec: {
          restartPolicy: "Never",
          ...(serviceAccount === undefined ? {} : { serviceAccountName: serviceAccount }),
          automountServiceAccountToken: false,
          ...runnerPodPlacement(resourceSpec, settings),
          volumes: [{ name: "tmp", emptyDir: { sizeLimit: "64Mi" } }, ...(volume === undefined ? [] : [volume.volume])],
          containers: [
            {
              name: "runner",
              image: settings.runnerImage,
              imagePullPolicy: "IfNotPresent",
              // The kubelet expands $(NAME) in args as in env: `$$` keeps a `$` in a name literal.
              args: restoreArgs(restore, source).map((word) => word.replaceAll("$", () => "$$")),
              env: [
                ...Object.entries(storeEnv).flatMap(([variable, value]) =>
                  value === undefined ? [] : [literal({ name: variable, value })]
                ),
                {
                  name: RunnerContract.EnvVar.terminationMessagePath,
                  value: RunnerContract.defaultTerminationMessagePath
                },
                RunnerContract.passwordEnvVar(source.connection.passwordSecret),
                ...(sslRootCert === undefined ? [] : [RunnerContract.sslRootCertEnvVar(rootCertRef(sslRootCert))]),
                ...credentialEnv(source.storage),
                ...(identity === undefined
                  ? []
                  : [RunnerContract.secretEnvVar(RunnerContract.AGE_IDENTITY_ENV, identity)])
              ],
              resources: {
                requests: quantities(resourceSpec?.resources?.requests) ?? settings.resources.requests,
                limits: quantities(resourceSpec?.resources?.limits) ?? settings.resources.limits
              },
              securityContext: runnerContainerSecurity,
              terminationMessagePath: RunnerContract.defaultTerminationMessagePath,
              terminationMessagePolicy: "FallbackToLogsOnError",
              volumeMounts: [
                { name: "tmp", mountPath: "/tmp" },
                // A restore only reads the volume store.
                ...(volume === undefined ? [] : [{ ...volume.mount, readOnly: true }])
              ]
            }
          ]
        }
      }
    }
  }
}
