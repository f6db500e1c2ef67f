import { Schema } from "effect"

/** The local control plane could not be started, or a command against it could not run. */
export class ControlPlaneError extends Schema.TaggedError<ControlPlaneError>()("ControlPlaneError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

/** Wraps any error with a `message` as a {@link ControlPlaneError} prefixed with `what`. */
export const controlPlaneError =
  (what: string) =>
  (cause: { readonly message: string }): ControlPlaneError =>
    new ControlPlaneError({ message: `${what}: ${cause.message}`, cause })
