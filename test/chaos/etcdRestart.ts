import { ControlPlane } from "@db-backup-operator/testing"
import { Clock, Effect } from "effect"
import { eventually } from "../e2e/support.ts"
import { type ScenarioOptions, scenario } from "./scenarios.ts"

/**
 * etcd stopped (SIGTERM) and started again on the same ports and data, every
 * 20-40 s, under a kube-apiserver that keeps running and must reconnect.
 * Recovery: from the stop until the operator creates its next Job (the API
 * server serving again, then the operator's and the process node's watches
 * and writes going through it).
 */
export const etcdRestarts = (options: ScenarioOptions) =>
  scenario(
    "etcd restart",
    "etcd-restart",
    [20_000, 40_000],
    (runs) =>
      Effect.gen(function* () {
        const controlPlane = yield* ControlPlane
        const before = yield* runs
        const stopped = yield* Clock.currentTimeMillis
        yield* controlPlane.restartEtcd.pipe(Effect.mapError((e) => new Error(e.message)))
        yield* eventually(
          "the operator's next Job after etcd came back",
          Effect.map(runs, (n) => (n > before ? n : undefined)),
          "120 seconds"
        )
        return { recovery: (yield* Clock.currentTimeMillis) - stopped }
      }),
    options
  )
