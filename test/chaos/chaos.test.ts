import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as E2E from "../e2e/environment.ts"
import { chaosStackLayer } from "./chaosStack.ts"
import { operatorKills, prepare, prepareOnce, type ScenarioResult, violated } from "./scenarios.ts"
import { silentWatches } from "./silentWatch.ts"

// The short profile of `npm run chaos`: the same scenarios and invariants, fewer runs. The stack is
// the chaos one (chaosStack.ts): the operator behind the fault proxies, which pass everything
// through except in their own scenario. Scenarios whose short run takes well over a minute
// (store-faults, db-restart) run only in `npm run chaos`.

const summary = (result: ScenarioResult) =>
  `chaos short profile, ${result.scenario}: ${result.faults} faults, ${result.invariants.slots} slots, ${result.invariants.runs} runs in ${result.seconds.toFixed(0)} s`

layer(chaosStackLayer({ runnerImage: E2E.runnerImage }), { timeout: "600 seconds", excludeTestServices: true })(
  "chaos, short profile",
  (it) => {
    it.effect("operator SIGKILLed at random moments: no duplicated run, no lost outcome, no incomplete object", () =>
      Effect.gen(function* () {
        yield* prepare
        const result = yield* operatorKills({ runs: 12, resources: 4, maxMinutes: 5 })
        console.log(
          `chaos short profile: ${result.faults} kills, ${result.invariants.slots} slots, ${result.invariants.runs} runs in ${result.seconds.toFixed(0)} s`
        )
        assert.isFalse(violated(result), result.invariants.violations.join("\n"))
        // The faults happened and the runs went on through them.
        assert.isAtLeast(result.faults, 2)
        assert.isAtLeast(result.invariants.runs, 12)
      })
    )

    it.effect("a watch that dies silently: the operator notices, reconnects and creates Jobs again", () =>
      Effect.gen(function* () {
        yield* prepareOnce
        const result = yield* silentWatches({ runs: 6, resources: 3, maxMinutes: 3 })
        console.log(summary(result))
        assert.isFalse(violated(result), result.invariants.violations.join("\n"))
        assert.isAtLeast(result.faults, 1)
        // The 15 s HTTP/2 PING drops a frozen connection within about 30 s; the watchdog alone would take 5.5 minutes or more.
        assert.isBelow(Math.max(...result.recoveries), 120_000)
      })
    )
  }
)
