/**
 * Typed builders for the Kubernetes `x-kubernetes-*` schema extensions, written
 * as Schema annotations on a kind's Schema: CEL rules, list and map merge
 * types, int-or-string, preserved unknown fields. Plain data, so an API package
 * can annotate its kinds without loading the operator runtime; the operator
 * package's CRD generator passes every `x-kubernetes-*` annotation through to
 * the OpenAPI schema of the field it is on, and re-exports these builders as
 * `CrdSchema.validations` and so on.
 *
 * @module
 */

/**
 * CEL rules the API server checks on every write of the annotated field.
 *
 * @example
 * ```ts
 * const Window = Schema.Struct({ min: Schema.Int, max: Schema.Int }).annotate(
 *   CrdSchema.validations([{ rule: "self.min <= self.max", message: "min must not exceed max" }])
 * )
 * ```
 */
export const validations = (
  rules: ReadonlyArray<ValidationRule>
): { readonly "x-kubernetes-validations": ReadonlyArray<ValidationRule> } => ({
  "x-kubernetes-validations": rules
})

/**
 * Keep fields the Schema does not declare instead of pruning them (free-form
 * maps, embedded arbitrary JSON). Only where declared: everything else is pruned.
 *
 * @example
 * ```ts
 * const Extra = Schema.Record(Schema.String, Schema.Unknown).annotate(CrdSchema.preserveUnknownFields)
 * ```
 */
export const preserveUnknownFields = { "x-kubernetes-preserve-unknown-fields": true } as const

/**
 * An integer or a string (`IntOrString`, e.g. `maxUnavailable: 1` or `"25%"`).
 *
 * @example
 * ```ts
 * const MaxUnavailable = Schema.Union([Schema.Int, Schema.String]).annotate(CrdSchema.intOrString)
 * ```
 */
export const intOrString = { "x-kubernetes-int-or-string": true } as const

/**
 * How server-side apply merges a list: `atomic` (replace whole), `set` (unique
 * scalars) or `map` (items keyed by `keys`).
 *
 * @example
 * ```ts
 * const Port = Schema.Struct({ name: Schema.String, port: Schema.Int })
 * const Ports = Schema.Array(Port).annotate(CrdSchema.listType("map", ["name"]))
 * ```
 */
export const listType = (
  type: "atomic" | "set" | "map",
  keys?: ReadonlyArray<string>
): {
  readonly "x-kubernetes-list-type": "atomic" | "set" | "map"
  readonly "x-kubernetes-list-map-keys"?: ReadonlyArray<string>
} =>
  keys === undefined
    ? { "x-kubernetes-list-type": type }
    : { "x-kubernetes-list-type": type, "x-kubernetes-list-map-keys": keys }

/**
 * How server-side apply merges an object: `granular` (per field) or `atomic`.
 *
 * @example
 * ```ts
 * const Selector = Schema.Record(Schema.String, Schema.String).annotate(CrdSchema.mapType("atomic"))
 * ```
 */
export const mapType = (type: "granular" | "atomic"): { readonly "x-kubernetes-map-type": "granular" | "atomic" } => ({
  "x-kubernetes-map-type": type
})

/**
 * A CEL validation rule (`x-kubernetes-validations[]`), checked by the API
 * server on every write. `self` is the value of the field the rule sits on;
 * `oldSelf` the previous value (transition rules).
 */
export interface ValidationRule {
  readonly rule: string
  readonly message?: string
  readonly messageExpression?: string
  /** JSONPath, relative to the field, of the field the error is reported on, e.g. `.max`. */
  readonly fieldPath?: string
  readonly reason?: "FieldValueInvalid" | "FieldValueForbidden" | "FieldValueRequired" | "FieldValueDuplicate"
  readonly optionalOldSelf?: boolean
}
