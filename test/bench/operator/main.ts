import { KubeClient } from "@db-backup-operator/kube"
import { Manager } from "@db-backup-operator/operator"
import { Config, Effect } from "effect"
import { benchController } from "./BenchItem.ts"

// The operator process `npm run bench:operator` measures: one Manager, one
// controller, configured by the environment the benchmark sets.

const settings = Config.all({
  concurrency: Config.Int("BENCH_CONCURRENCY").pipe(Config.withDefault(1)),
  qps: Config.Number("BENCH_QPS").pipe(Config.withDefault(50)),
  burst: Config.Int("BENCH_BURST").pipe(Config.withDefault(100)),
  metricsPort: Config.Port("METRICS_PORT").pipe(Config.withDefault(8080)),
  healthPort: Config.Port("HEALTH_PORT").pipe(Config.withDefault(8081))
})

const main = Effect.gen(function* () {
  const config = yield* settings
  yield* Manager.run({
    controllers: [benchController(config.concurrency)],
    metrics: { host: "127.0.0.1", port: config.metricsPort },
    health: { host: "127.0.0.1", port: config.healthPort }
  }).pipe(Effect.provide(KubeClient.layer({ _tag: "Default" }, { qps: config.qps, burst: config.burst })))
})

Manager.runMain(main, { logLevel: "Warn" })
