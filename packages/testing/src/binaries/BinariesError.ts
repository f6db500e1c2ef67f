import { Schema } from "effect"

/** A test binary could not be found, built or cached. */
export class BinariesError extends Schema.TaggedError<BinariesError>()("BinariesError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}
