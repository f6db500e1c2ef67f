import { KubeClient } from "@db-backup-operator/kube"
import { EventRecorder, LeaderElection, Manager } from "@db-backup-operator/operator"
import { Config, Effect, Option } from "effect"
import { configMapGeneratorController } from "./controller.ts"

// The example as a process: `node main.ts`, configured by the environment as a
// Deployment would configure it. KUBECONFIG (else ~/.kube/config, else the
// in-cluster service account) picks the cluster.

const settings = Config.all({
  /** Comma-separated namespaces to watch; all when unset. */
  namespaces: Config.option(Config.String("WATCH_NAMESPACES")),
  leaderElect: Config.Boolean("LEADER_ELECT").pipe(Config.withDefault(false)),
  leaseNamespace: Config.String("LEASE_NAMESPACE").pipe(Config.withDefault("default")),
  /** This replica: the Lease holder identity and the Events' reportingInstance. */
  identity: Config.String("POD_NAME").pipe(Config.withDefault(LeaderElection.defaultIdentity())),
  metricsPort: Config.Port("METRICS_PORT").pipe(Config.withDefault(8080)),
  healthPort: Config.Port("HEALTH_PORT").pipe(Config.withDefault(8081))
})

const main = Effect.gen(function* () {
  const config = yield* settings
  const namespaces = Option.map(config.namespaces, (list) => list.split(",").map((namespace) => namespace.trim()))
  yield* Manager.run({
    controllers: [configMapGeneratorController()],
    ...(Option.isSome(namespaces) ? { namespaces: namespaces.value } : {}),
    metrics: { port: config.metricsPort },
    health: { port: config.healthPort },
    ...(config.leaderElect
      ? {
          leaderElection: { namespace: config.leaseNamespace, name: "configmap-generator", identity: config.identity }
        }
      : {})
  }).pipe(
    Effect.provide(
      EventRecorder.layer({
        reportingController: "examples.db-backup-operator.dev/configmap-generator",
        reportingInstance: config.identity
      })
    )
  )
}).pipe(Effect.provide(KubeClient.layer({ _tag: "Default" })))

Manager.runMain(main)
