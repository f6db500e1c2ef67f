import { ConfigMap, KubeClient } from "@db-backup-operator/kube"
import { Action, Controller, Manager } from "@db-backup-operator/operator"
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit } from "effect"
import { dyingKube } from "./fixtures/kube.ts"

// What the Manager refuses before it touches the cluster: this KubeClient dies on any use.
const noCluster = dyingKube("the manager must refuse before any API call")

const named = (name: string) => Controller.make({ name, for: ConfigMap, reconcile: () => Effect.succeed(Action.done) })

describe("Manager", () => {
  it.effect("refuses two controllers with one name (they would share every metric and log label)", () =>
    Effect.gen(function* () {
      const exit = yield* Manager.run({
        controllers: [named("settings"), named("other"), named("settings")],
        metrics: false,
        health: false
      }).pipe(Effect.provideService(KubeClient, noCluster), Effect.exit)
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isSuccess(exit)) return
      const defect = Cause.squash(exit.cause)
      assert.include(String(defect), 'two controllers are named "settings"')
    })
  )
})
