import { Duration } from "effect"

/**
 * What a successful reconcile asks of the work queue (kube-rs calls it an
 * `Action`).
 *
 * - `Done`: the object is where it should be; forget its failure count and wait
 *   for the next change.
 * - `RequeueAfter`: look again after `delay` even if nothing changes (polling an
 *   external system, the next scheduled run). One timer per key: a shorter
 *   pending requeue wins.
 *
 * A failed reconcile needs no Action: the queue retries it with per-key
 * exponential backoff, unless it failed with a `TerminalError`.
 */
export type Action = Done | RequeueAfter

export interface Done {
  readonly _tag: "Done"
}

export interface RequeueAfter {
  readonly _tag: "RequeueAfter"
  readonly delay: Duration.Duration
}

/**
 * The reconcile finished; nothing to do until the object changes.
 *
 * @example
 * ```ts
 * const reconcile = (key: string) => Effect.succeed(Action.done)
 * ```
 */
export const done: Action = { _tag: "Done" }

/**
 * The reconcile finished; reconcile the key again after `delay`.
 *
 * @example
 * ```ts
 * const reconcile = (key: string) => Effect.succeed(Action.requeueAfter("5 minutes"))
 * ```
 */
export const requeueAfter = (delay: Duration.Input): Action => ({
  _tag: "RequeueAfter",
  delay: Duration.fromInputUnsafe(delay)
})

/**
 * Narrows an Action to a requeue.
 *
 * @example
 * ```ts
 * declare const action: Action.Action
 * if (Action.isRequeueAfter(action)) yield* Effect.log(`again in ${Duration.format(action.delay)}`)
 * ```
 */
export const isRequeueAfter = (action: Action): action is RequeueAfter => action._tag === "RequeueAfter"
