import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as E2E from "../e2e/environment.ts"
import { operatorKills, prepare, violated } from "./scenarios.ts"

// The short profile of `npm run chaos`: the same scenario and invariants, fewer runs.

layer(E2E.layer, { timeout: "600 seconds", excludeTestServices: true })("chaos, short profile", (it) => {
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
})
