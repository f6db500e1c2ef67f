import { Schema } from "effect"

/**
 * The process node could not start (Node registration failed, a bad image
 * mapping), or a caller asked for the logs of a Pod or container it never ran.
 */
export class ProcessNodeError extends Schema.TaggedError<ProcessNodeError>()("ProcessNodeError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}
