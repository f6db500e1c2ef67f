import { BackupSettings, backupController, restoreController } from "@db-backup-operator/backup"
import { jobCleanupController } from "@db-backup-operator/job-cleanup"
import { type Connection, KubeClient } from "@db-backup-operator/kube"
import { EventRecorder, Manager } from "@db-backup-operator/operator"
import { Effect, Layer } from "effect"
import type { OperatorConfig } from "./OperatorConfig.ts"

/** The Lease both replicas campaign on. */
export const leaseName = "db-backup-operator"

/**
 * What the Manager watches: the namespaces the operator serves and, as backup
 * Jobs run where their Secret is, every namespace a served one may use
 * (`--allowed-namespaces` pairs); all namespaces when it serves all.
 *
 * @example
 * ```ts
 * watchedNamespaces({ namespaces: ["a"], allowedNamespaces: [{ from: "a", to: "c" }] }) // ["a", "c"]
 * ```
 */
export const watchedNamespaces = (
  config: Pick<OperatorConfig, "namespaces" | "allowedNamespaces">
): ReadonlyArray<string> | undefined => {
  const served = config.namespaces
  if (served === undefined) return undefined
  const targets = config.allowedNamespaces.filter(({ from }) => served.includes(from)).map(({ to }) => to)
  return [...new Set([...served, ...targets])]
}

/**
 * One Manager hosting the backup, restore and job-cleanup reconcilers, configured by
 * {@link OperatorConfig}. Runs until interrupted; fails (exit 1) when leadership
 * is lost.
 *
 * @example
 * ```ts
 * import type { OperatorConfig } from "./OperatorConfig.ts"
 * declare const config: OperatorConfig
 * yield* runOperator({ ...config, kubeconfig: "/tmp/env/kubeconfig", leaderElect: false })
 * ```
 */
export const runOperator = (
  config: OperatorConfig
): Effect.Effect<void, Manager.ManagerError | Connection.ConfigError> =>
  Effect.gen(function* () {
    yield* Effect.logInfo("starting db-backup-operator").pipe(
      Effect.annotateLogs({
        namespaces: config.namespaces?.join(",") ?? "all",
        allowedNamespaces: config.allowedNamespaces.map(({ from, to }) => `${from}:${to}`).join(","),
        requireSecretOptIn: config.requireSecretOptIn,
        minSslMode: config.minSslMode,
        allowCleartextPassword: config.allowCleartextPassword,
        runnerImage: config.runnerImage,
        leaderElect: config.leaderElect,
        backupWorkers: config.backupWorkers,
        kubeApiQps: config.kubeApi.qps,
        kubeApiBurst: config.kubeApi.burst
      })
    )
    yield* Manager.run({
      controllers: [
        backupController({ namespaces: config.namespaces, workers: config.backupWorkers }),
        restoreController({ namespaces: config.namespaces }),
        jobCleanupController({})
      ],
      namespaces: watchedNamespaces(config),
      metrics: config.metricsAddress,
      health: config.healthAddress,
      ...(config.leaderElect
        ? {
            leaderElection: {
              namespace: config.leaderElectionNamespace,
              name: leaseName,
              ...config.leaderElectionTiming
            }
          }
        : {})
    })
  }).pipe(
    Effect.scoped,
    Effect.provide(
      Layer.mergeAll(
        BackupSettings.layer({
          runnerImage: config.runnerImage,
          gcsEndpoint: config.gcsEndpoint,
          allowedNamespaces: config.allowedNamespaces,
          requireSecretOptIn: config.requireSecretOptIn,
          minSslMode: config.minSslMode,
          allowCleartextPassword: config.allowCleartextPassword,
          interval: config.backupInterval,
          defaultRetention: config.defaultRetention,
          maxConcurrentBackups: config.maxConcurrentBackups,
          maxConcurrentBackupsPerServer: config.maxConcurrentBackupsPerServer
        }),
        EventRecorder.layer({
          reportingController: "backup.csyeteam03.xyz/db-backup-operator",
          reportingInstance: config.instance
        })
      ).pipe(
        Layer.provideMerge(
          KubeClient.layer(
            config.kubeconfig === undefined ? { _tag: "Default" } : { _tag: "File", path: config.kubeconfig },
            config.kubeApi
          )
        )
      )
    )
  )
