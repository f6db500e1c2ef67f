import type { JSONSchemaProps } from "./JsonSchemaProps.ts"

// The API server's structural-schema rules (apiextensions "structural schema"),
// checked on generated output: the generator fails on anything it cannot
// express, and this walk makes sure what it did express would be accepted.

const allowed = new Set<string>([
  "type",
  "format",
  "title",
  "description",
  "default",
  "example",
  "nullable",
  "enum",
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
  "multipleOf",
  "minLength",
  "maxLength",
  "pattern",
  "minItems",
  "maxItems",
  "items",
  "minProperties",
  "maxProperties",
  "properties",
  "required",
  "additionalProperties",
  "allOf",
  "x-kubernetes-validations",
  "x-kubernetes-preserve-unknown-fields",
  "x-kubernetes-int-or-string",
  "x-kubernetes-embedded-resource",
  "x-kubernetes-list-type",
  "x-kubernetes-list-map-keys",
  "x-kubernetes-map-type"
])
/** What an `allOf` part (a pure value validation) may not carry. */
const notInValidation = [
  "type",
  "description",
  "title",
  "default",
  "nullable",
  "additionalProperties",
  "x-kubernetes-validations",
  "x-kubernetes-preserve-unknown-fields",
  "x-kubernetes-int-or-string",
  "x-kubernetes-embedded-resource",
  "x-kubernetes-list-type",
  "x-kubernetes-list-map-keys",
  "x-kubernetes-map-type"
]

const valueMatches = (type: JSONSchemaProps["type"], value: unknown): boolean => {
  switch (type) {
    case "string":
      return typeof value === "string"
    case "integer":
      return typeof value === "number" && Number.isInteger(value)
    case "number":
      return typeof value === "number"
    case "boolean":
      return typeof value === "boolean"
    case "array":
      return Array.isArray(value)
    case "object":
      return typeof value === "object" && value !== null && !Array.isArray(value)
    default:
      return true
  }
}

const walk = (schema: JSONSchemaProps, path: string, inValidation: boolean, out: Array<string>): void => {
  const at = path === "" ? "<root>" : path
  for (const key of Object.keys(schema)) if (!allowed.has(key)) out.push(`${at}: keyword "${key}" is not allowed`)
  if (inValidation) {
    for (const key of notInValidation) if (key in schema) out.push(`${at}: "${key}" is not allowed inside allOf`)
  } else {
    const exempt =
      schema["x-kubernetes-int-or-string"] === true || schema["x-kubernetes-preserve-unknown-fields"] === true
    if (schema.type === undefined && !exempt) out.push(`${at}: missing type`)
    if (schema["x-kubernetes-int-or-string"] === true && schema.type !== undefined) {
      out.push(`${at}: x-kubernetes-int-or-string must not have a type`)
    }
  }
  if (schema.properties !== undefined && schema.additionalProperties !== undefined) {
    out.push(`${at}: properties and additionalProperties are mutually exclusive`)
  }
  for (const value of schema.enum ?? []) {
    if (value !== null && !valueMatches(schema.type, value)) {
      out.push(`${at}: enum value ${JSON.stringify(value)} is not of type ${schema.type}`)
    }
    if (value === null && schema.nullable !== true) out.push(`${at}: enum contains null but the field is not nullable`)
  }
  if (schema.default !== undefined && !valueMatches(schema.type, schema.default)) {
    out.push(`${at}: default ${JSON.stringify(schema.default)} is not of type ${schema.type}`)
  }
  for (const name of schema.required ?? []) {
    if (schema.properties !== undefined && !(name in schema.properties)) {
      out.push(`${at}: required property "${name}" is not declared`)
    }
  }
  if (schema["x-kubernetes-list-type"] !== undefined && schema.type !== "array") {
    out.push(`${at}: x-kubernetes-list-type on a non-array`)
  }
  if (schema.enum !== undefined && schema.enum.length === 0) out.push(`${at}: empty enum`)
  if (schema["x-kubernetes-list-type"] === "set") {
    const itemType = schema.items?.type
    if (itemType === "object" || itemType === "array") out.push(`${at}: a set-typed list needs scalar items`)
  }
  if (schema["x-kubernetes-list-type"] === "map") {
    const keys = schema["x-kubernetes-list-map-keys"] ?? []
    const items = schema.items
    if (keys.length === 0) out.push(`${at}: x-kubernetes-list-type map needs x-kubernetes-list-map-keys`)
    if (items?.type !== "object") out.push(`${at}: a map-typed list needs object items`)
    for (const key of keys) {
      const property = items?.properties?.[key]
      if (property === undefined) out.push(`${at}: list map key "${key}" is not an item property`)
      // The API server needs every key present on every item to merge by it.
      else if (!(items?.required ?? []).includes(key) && property.default === undefined) {
        out.push(`${at}: list map key "${key}" must be required or have a default`)
      }
    }
  }
  if (schema["x-kubernetes-map-type"] !== undefined && schema.type !== "object") {
    out.push(`${at}: x-kubernetes-map-type on a non-object`)
  }
  for (const [name, property] of Object.entries(schema.properties ?? {})) {
    walk(property, path === "" ? name : `${path}.${name}`, inValidation, out)
  }
  if (schema.items !== undefined) walk(schema.items, `${path}[*]`, inValidation, out)
  if (schema.additionalProperties !== undefined) walk(schema.additionalProperties, `${path}[*]`, inValidation, out)
  for (const part of schema.allOf ?? []) walk(part, path, true, out)
}

/**
 * Every way `schema` breaks the structural-schema rules the API server enforces
 * for CRDs (each message names the field); empty when it is structural.
 *
 * @example
 * ```ts
 * Structural.violations({ type: "object", properties: { x: {} } })   // ["x: missing type"]
 * ```
 */
export const violations = (schema: JSONSchemaProps): ReadonlyArray<string> => {
  const out: Array<string> = []
  walk(schema, "", false, out)
  return out
}
