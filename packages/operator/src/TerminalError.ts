import { Schema } from "effect"

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
 *   Effect.fail(new TerminalError({ reason: "InvalidSchedule", message: "spec.schedule: not a cron expression" }))
 * ```
 */
export class TerminalError extends Schema.TaggedError<TerminalError>()("TerminalError", {
  reason: Schema.String,
  message: Schema.String,
  cause: Schema.optionalKey(Schema.Defect())
}) {}

/**
 * True for a {@link TerminalError}, whatever else the error union holds. Internal
 * (the queue and the controller use it); users match on `_tag` or `instanceof`.
 */
export const isTerminalError = (error: unknown): error is TerminalError => error instanceof TerminalError
