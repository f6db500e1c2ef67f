import { Effect, Ref } from "effect"
import { eventually } from "../e2e/support.ts"
import { OperatorProcess } from "../stack/localStack.ts"
import { TcpFaultProxy } from "./faultProxy.ts"
import { type ScenarioOptions, scenario } from "./scenarios.ts"

/**
 * A watch that dies silently (issue 13): every 5-15 s the API server proxy
 * (chaosStack.ts) freezes every connection the operator has to the API
 * server: no byte passes either way and none is closed, as when a NAT entry
 * or a load balancer drops a flow without telling either end. Connections
 * made after the freeze work. The operator has to notice on its own that its
 * watches went quiet and connect again; recovery: from the freeze until the
 * operator has restarted a watch (any reason) and created a Job again.
 *
 * What notices first: the operator's HTTP/2 connection sends a PING every
 * 15 s and drops a connection whose PING goes unanswered
 * (packages/kube/src/client/KubeClient.ts), so its watches fail and restart
 * with reason `error` within about 30 s. The reflectors' own watchdog
 * (reason `watchdog`) would only fire after the watch's timeout plus 30 s, 5.5
 * to 10.5 minutes, and the operator binary has no flag to shorten it; the
 * scenario prints which reasons it saw.
 */

type Restarts = Readonly<Record<string, number>>

/** `reflector_watch_restarts_total` by reason, summed over the operator's caches. */
const watchRestarts = Effect.gen(function* () {
  const operator = yield* OperatorProcess
  // The last address: every start of the operator binds a new port and logs it.
  const urls = [...(yield* operator.logs).matchAll(/serving \/metrics[^\n]*? on (http:\/\/[0-9.]+:\d+)/gu)]
  const url = urls.at(-1)?.[1]
  if (url === undefined) return yield* Effect.die(new Error("the operator logged no metrics address"))
  const text = yield* Effect.tryPromise(() => fetch(`${url}/metrics`).then((response) => response.text()))
  const restarts: Record<string, number> = {}
  for (const [, labels = "", value = "0"] of text.matchAll(/^reflector_watch_restarts_total\{([^}]*)\} (\S+)$/gmu)) {
    const reason = /reason="([^"]*)"/u.exec(labels)?.[1] ?? "?"
    restarts[reason] = (restarts[reason] ?? 0) + Number(value)
  }
  return restarts
})

const total = (restarts: Restarts) => Object.values(restarts).reduce((sum, n) => sum + n, 0)

/** Freezes the operator's connections to the API server; see the module comment. */
export const silentWatches = (options: ScenarioOptions) =>
  Effect.gen(function* () {
    // Watch restarts after the freezes, by reason, summed over every freeze.
    const seen = yield* Ref.make<Restarts>({})
    const result = yield* scenario(
      "watch dies silently",
      "silent-watch",
      [5000, 15_000],
      (runs) =>
        Effect.gen(function* () {
          const proxy = yield* TcpFaultProxy
          const before = yield* watchRestarts
          const runsBefore = yield* runs
          const frozenAt = Date.now()
          if ((yield* proxy.freeze) === 0) return undefined
          const after = yield* eventually(
            "the operator to restart a watch and create a Job after the freeze",
            Effect.gen(function* () {
              const now = yield* watchRestarts
              return total(now) > total(before) && (yield* runs) > runsBefore ? now : undefined
            }),
            "900 seconds"
          )
          const recovery = Date.now() - frozenAt
          yield* Ref.update(seen, (all) => {
            const next = { ...all }
            for (const [reason, n] of Object.entries(after))
              next[reason] = (next[reason] ?? 0) + n - (before[reason] ?? 0)
            return next
          })
          return { recovery }
        }),
      options
    )
    const reasons = Object.entries(yield* Ref.get(seen))
      .filter(([, n]) => n > 0)
      .map(([reason, n]) => `${n} ${reason}`)
    console.log(`watch dies silently: watch restarts after the freezes, by reason: ${reasons.join(", ") || "none"}`)
    return result
  })
