import { Schema } from "effect"

/**
 * A process could not be started, exited with an unexpected status, or did not
 * become ready in time. `output` carries the tail of what it printed.
 */
export class ProcessError extends Schema.TaggedError<ProcessError>()("ProcessError", {
  message: Schema.String,
  command: Schema.String,
  output: Schema.optional(Schema.String),
  cause: Schema.optional(Schema.Defect())
}) {}
