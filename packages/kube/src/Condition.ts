import { Schema } from "effect"

/**
 * `metav1.Condition`: a status condition with its shape and validation, so
 * `kubectl wait --for=condition=Ready`, `kubectl describe` and every dashboard
 * understand it. Custom kinds put it in their status; the operator package's
 * `Conditions` helpers set and read it. (Built-in kinds report looser
 * conditions; see `BuiltinCondition`.)
 *
 * @module
 */

/** `True`, `False` or `Unknown`. */
export const ConditionStatus = Schema.Literals(["True", "False", "Unknown"])
export type ConditionStatus = typeof ConditionStatus.Type

// The validation metav1.Condition carries in its OpenAPI schema (the `u` flag makes
// Schema emit the pattern into the generated CRD).
const typePattern =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/u
const reasonPattern = /^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/u

/**
 * One status condition (`metav1.Condition`). Use it in a custom kind's status as
 * `conditions: Schema.optionalKey(Schema.Array(Condition))`.
 *
 * @example
 * ```ts
 * const Status = Schema.Struct({
 *   observedGeneration: Schema.optionalKey(Schema.Int),
 *   conditions: Schema.optionalKey(Schema.Array(Condition))
 * })
 * ```
 */
export const Condition = Schema.Struct({
  type: Schema.String.check(Schema.isPattern(typePattern), Schema.isMaxCodePoints(316)).annotate({
    description: "Type of condition in CamelCase or in foo.example.com/CamelCase."
  }),
  status: ConditionStatus.annotate({ description: "Status of the condition, one of True, False, Unknown." }),
  observedGeneration: Schema.optionalKey(
    Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)).annotate({
      description: "The .metadata.generation that the condition was set based upon."
    })
  ),
  lastTransitionTime: Schema.String.annotate({
    format: "date-time",
    description: "Last time the condition transitioned from one status to another."
  }),
  reason: Schema.String.check(
    Schema.isMinCodePoints(1),
    Schema.isMaxCodePoints(1024),
    Schema.isPattern(reasonPattern)
  ).annotate({
    description: "A programmatic identifier (CamelCase) of the reason for the condition's last transition."
  }),
  message: Schema.String.check(Schema.isMaxCodePoints(32768)).annotate({
    description: "A human readable message indicating details about the transition."
  })
}).annotate({ description: "Condition contains details for one aspect of the current state of this API Resource." })
export type Condition = typeof Condition.Type
