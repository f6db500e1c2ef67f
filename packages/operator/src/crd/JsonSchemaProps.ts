import type { CrdSchema } from "@db-backup-operator/kube"

/**
 * The OpenAPI v3 schema subset a CustomResourceDefinition accepts
 * (`apiextensions.k8s.io/v1` `JSONSchemaProps`), limited to what the generator
 * emits. Plain JSON: it goes straight into YAML or an API request.
 */
export interface JSONSchemaProps {
  readonly type?: "object" | "array" | "string" | "integer" | "number" | "boolean"
  readonly format?: string
  readonly title?: string
  readonly description?: string
  readonly default?: unknown
  readonly example?: unknown
  readonly nullable?: boolean
  readonly enum?: ReadonlyArray<unknown>
  readonly minimum?: number
  readonly maximum?: number
  readonly exclusiveMinimum?: boolean
  readonly exclusiveMaximum?: boolean
  readonly multipleOf?: number
  readonly minLength?: number
  readonly maxLength?: number
  readonly pattern?: string
  readonly minItems?: number
  readonly maxItems?: number
  readonly items?: JSONSchemaProps
  readonly minProperties?: number
  readonly maxProperties?: number
  readonly properties?: { readonly [name: string]: JSONSchemaProps }
  readonly required?: ReadonlyArray<string>
  readonly additionalProperties?: JSONSchemaProps
  /** Value validations only (no type, description, default): extra patterns, bounds. */
  readonly allOf?: ReadonlyArray<JSONSchemaProps>
  readonly "x-kubernetes-validations"?: ReadonlyArray<CrdSchema.ValidationRule>
  readonly "x-kubernetes-preserve-unknown-fields"?: boolean
  readonly "x-kubernetes-int-or-string"?: boolean
  readonly "x-kubernetes-embedded-resource"?: boolean
  readonly "x-kubernetes-list-type"?: "atomic" | "set" | "map"
  readonly "x-kubernetes-list-map-keys"?: ReadonlyArray<string>
  readonly "x-kubernetes-map-type"?: "granular" | "atomic"
}
