import { Data } from "effect"

/**
 * A Schema that cannot become a Kubernetes structural OpenAPI schema, thrown at
 * CRD generation time (`npm run crds`), long before an API server would reject it.
 * `path` names the field, e.g. `spec.targets[*].port`.
 */
export class StructuralSchemaError extends Data.TaggedError("StructuralSchemaError")<{
  readonly path: string
  readonly reason: string
  readonly message: string
}> {}

/** Builds the error with a message that leads with the field path. */
export const fail = (path: string, reason: string): never => {
  throw new StructuralSchemaError({ path, reason, message: `${path}: ${reason}` })
}
