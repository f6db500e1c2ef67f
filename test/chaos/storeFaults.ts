import { Duration, Effect, Random, Ref } from "effect"
import { type HttpFault, HttpFaultProxy, type ProxiedRequest } from "./faultProxy.ts"
import { between, type ScenarioOptions, scenario } from "./scenarios.ts"

/**
 * The object store failing under the runners (issue 13): every 2-6 s the
 * store proxy (chaosStack.ts) hurts the next request a runner makes to the
 * GCS emulator with a fault drawn at random: a connection reset mid-request,
 * a 503 or a 500, or a stall mid-upload of 2-15 s, or of 65 s (past the 60 s
 * the client gives a non-resumable request such as the manifest's). What must
 * hold is what always must: a run that could not store its dump and its
 * manifest fails and leaves nothing that looks complete.
 */

/**
 * Requests that carry an object's bytes, for a stall to hit mid-body: a
 * resumable upload's PUT (the dump) or a multipart POST (the manifest), not
 * the POST that opens a resumable session.
 */
const isUpload = (request: ProxiedRequest) =>
  request.method === "PUT" || (request.method === "POST" && request.path.includes("uploadType=multipart"))

const anyRequest = () => true

/** One fault, drawn at random, and which requests it may hit; a quarter of the stalls are long ones, if allowed. */
const drawFault = (
  longStalls: boolean
): Effect.Effect<{ readonly fault: HttpFault; readonly match: (request: ProxiedRequest) => boolean }> =>
  Effect.gen(function* () {
    switch (yield* Random.nextIntBetween(0, 4, { halfOpen: true })) {
      case 0:
        return { fault: { _tag: "Reset" }, match: anyRequest }
      case 1:
        return { fault: { _tag: "ServerError", status: 503 }, match: anyRequest }
      case 2:
        return { fault: { _tag: "ServerError", status: 500 }, match: anyRequest }
      default: {
        const long = longStalls && (yield* Random.nextIntBetween(0, 4, { halfOpen: true })) === 0
        const duration = long ? Duration.seconds(65) : Duration.millis(yield* between(2000, 15_000))
        return { fault: { _tag: "Stall", duration }, match: isUpload }
      }
    }
  })

const describeFault = (fault: HttpFault) =>
  fault._tag === "Reset"
    ? "reset"
    : fault._tag === "ServerError"
      ? String(fault.status)
      : Duration.toSeconds(fault.duration) > 60
        ? "stall > 60 s"
        : "stall"

/** {@link ScenarioOptions}, and whether stalls may outlast the client's timeout. */
export interface StoreFaultOptions extends ScenarioOptions {
  /** A quarter of the stalls last 65 s (default true); the short profile leaves them out. */
  readonly longStalls?: boolean | undefined
}

/**
 * The store proxy hurts one request every 2-6 s (see the module comment);
 * no recovery time (the store itself never went down). Prints how many
 * faults of each kind hit, and which requests.
 */
export const storeFaults = (options: StoreFaultOptions) =>
  Effect.gen(function* () {
    const hits = yield* Ref.make<ReadonlyMap<string, number>>(new Map())
    const result = yield* scenario(
      "object store failing",
      "store-faults",
      [2000, 6000],
      () =>
        Effect.gen(function* () {
          const proxy = yield* HttpFaultProxy
          const { fault, match } = yield* drawFault(options.longStalls ?? true)
          // No runner talking to the store for this long: nothing to hit this time (the fault is disarmed).
          const injected = yield* proxy.inject(fault, match).pipe(Effect.timeoutOption("20 seconds"))
          if (injected._tag === "None") return undefined
          const key = `${describeFault(fault)} on ${injected.value.method}`
          yield* Ref.update(hits, (all) => new Map(all).set(key, (all.get(key) ?? 0) + 1))
          return {}
        }),
      options
    )
    const summary = [...(yield* Ref.get(hits))].map(([key, n]) => `${n} ${key}`).join(", ")
    console.log(`object store failing: ${summary}`)
    return result
  })
