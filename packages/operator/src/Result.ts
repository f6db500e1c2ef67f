import { Duration, Schema } from "effect"

/**
 * What a successful reconcile asks of the work queue.
 *
 * - `Done`: the object is where it should be; forget its failure count and wait
 *   for the next change.
 * - `RequeueAfter`: look again after `delay` even if nothing changes (polling an
 *   external system, the next scheduled run). One timer per key: a shorter
 *   pending requeue wins.
 *
 * A failed reconcile needs no Result: the queue retries it with per-key
 * exponential backoff, unless it failed with {@link TerminalError}.
 */
export type Result = Done | RequeueAfter

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
 * const reconcile = (key: string) => Effect.succeed(Result.done)
 * ```
 */
export const done: Result = { _tag: "Done" }

/**
 * The reconcile finished; reconcile the key again after `delay`.
 *
 * @example
 * ```ts
 * const reconcile = (key: string) => Effect.succeed(Result.requeueAfter("5 minutes"))
 * ```
 */
export const requeueAfter = (delay: Duration.Input): Result => ({
  _tag: "RequeueAfter",
  delay: Duration.fromInputUnsafe(delay)
})

/**
 * Narrows a Result to a requeue.
 *
 * @example
 * ```ts
 * if (Result.isRequeueAfter(result)) yield* Effect.log(`again in ${Duration.format(result.delay)}`)
 * ```
 */
export const isRequeueAfter = (result: Result): result is RequeueAfter => result._tag === "RequeueAfter"

/**
 * A reconcile failure that retrying cannot fix (an invalid spec, a forbidden
 * reference). The queue records nothing and does not retry it; the key is
 * reconciled again only when the object changes. The controller is expected to
 * surface it (status condition, Event) before failing with it.
 *
 * `reason` is a CamelCase condition reason; `message` is for humans.
 *
 * @example
 * ```ts
 * const reconcile = (key: string) =>
 *   Effect.fail(new Result.TerminalError({ reason: "InvalidSchedule", message: "spec.schedule: not a cron expression" }))
 * ```
 */
export class TerminalError extends Schema.TaggedError<TerminalError>()("TerminalError", {
  reason: Schema.String,
  message: Schema.String,
  cause: Schema.optionalKey(Schema.Defect())
}) {}

/**
 * True for a {@link TerminalError}, whatever else the error union holds.
 *
 * @example
 * ```ts
 * const retry = Cause.findErrorOption(cause).pipe(Option.exists((e) => !Result.isTerminalError(e)))
 * ```
 */
export const isTerminalError = (error: unknown): error is TerminalError => error instanceof TerminalError
