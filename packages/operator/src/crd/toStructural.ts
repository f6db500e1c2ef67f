import { Schema } from "effect"
import type { JSONSchemaProps } from "./JsonSchemaProps.ts"
import { assertExportablePatterns } from "./patternFlags.ts"
import { fail } from "./StructuralSchemaError.ts"

// Converts Effect's draft-2020-12 JSON Schema into the structural OpenAPI v3
// subset a CRD accepts: every node typed, no $ref/const/type unions, nullable
// instead of `null` branches, vendor extensions passed through. Anything that
// has no faithful structural form is an error naming the field, never a silent
// loss of validation.

type Json = { readonly [key: string]: unknown }
type Mutable = { -readonly [K in keyof JSONSchemaProps]: JSONSchemaProps[K] }

const isJson = (value: unknown): value is Json => typeof value === "object" && value !== null && !Array.isArray(value)

const extensions = new Set([
  "x-kubernetes-validations",
  "x-kubernetes-preserve-unknown-fields",
  "x-kubernetes-int-or-string",
  "x-kubernetes-embedded-resource",
  "x-kubernetes-list-type",
  "x-kubernetes-list-map-keys",
  "x-kubernetes-map-type"
])
/** Informational keywords Kubernetes has no field for. */
const dropped = new Set([
  "$schema",
  "$id",
  "$comment",
  "readOnly",
  "writeOnly",
  "deprecated",
  "contentEncoding",
  "contentMediaType",
  "contentSchema"
])
const documentation = ["title", "description", "default", "format"] as const
const valueKeywords = [
  "minimum",
  "maximum",
  "multipleOf",
  "minLength",
  "maxLength",
  "pattern",
  "minItems",
  "maxItems",
  "minProperties",
  "maxProperties"
] as const
const handled = new Set<string>([
  ...documentation,
  ...valueKeywords,
  "type",
  "properties",
  "required",
  "additionalProperties",
  "items",
  "uniqueItems",
  "enum",
  "const",
  "exclusiveMinimum",
  "exclusiveMaximum",
  "examples",
  "anyOf",
  "oneOf",
  "allOf",
  "not",
  "$ref"
])
/** Why a keyword Effect can emit has no structural equivalent. */
const unsupported: { readonly [keyword: string]: string } = {
  prefixItems: "tuples cannot be expressed in a CRD schema (items must be one schema); use an array or a struct",
  patternProperties:
    "records keyed by a pattern or template literal cannot be expressed; key the record by Schema.String",
  propertyNames: "records with constrained keys cannot be expressed; key the record by Schema.String",
  contains: "`contains` is not supported by Kubernetes",
  dependentRequired: "dependent required properties are not supported; use a CEL rule (CrdSchema.validations)",
  dependentSchemas: "dependent schemas are not supported; use a CEL rule (CrdSchema.validations)",
  if: "conditional schemas are not supported; use a CEL rule (CrdSchema.validations)"
}

const maxSafe = Number.MAX_SAFE_INTEGER
const nonFinite = new Set<unknown>(["Infinity", "-Infinity", "NaN"])

type Primitive = "object" | "array" | "string" | "integer" | "number" | "boolean"
const typeOfValue = (value: unknown): Primitive | "null" => {
  if (value === null) return "null"
  if (Array.isArray(value)) return "array"
  switch (typeof value) {
    case "string":
      return "string"
    case "boolean":
      return "boolean"
    case "number":
      return Number.isInteger(value) ? "integer" : "number"
    default:
      return "object"
  }
}

interface Context {
  readonly definitions: Json
  readonly resolving: ReadonlyArray<string>
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b)

const deref = (node: Json, path: string, context: Context): { node: Json; context: Context } => {
  const ref = node.$ref
  if (typeof ref !== "string") return { node, context }
  const name = ref.replace(/^#\/\$defs\//u, "")
  if (context.resolving.includes(name)) {
    fail(
      path,
      `recursive Schema (${name}) cannot be a structural schema; cut the recursion or use preserveUnknownFields`
    )
  }
  const target = context.definitions[name]
  if (!isJson(target)) return fail(path, `unresolved reference ${ref}`)
  const { $ref: _, ...siblings } = node
  const next = { ...context, resolving: [...context.resolving, name] }
  const resolved = deref(target, path, next)
  return { node: { ...resolved.node, ...siblings }, context: resolved.context }
}

/** The single type of a node, with `null` folded into `nullable`. */
const typeOf = (node: Json, path: string): { type: Primitive | undefined; nullable: boolean } => {
  const declared = node.type
  const types = Array.isArray(declared) ? declared : declared === undefined ? [] : [declared]
  const nonNull = types.filter((t) => t !== "null")
  const nullable = nonNull.length < types.length
  if (nonNull.length > 1) fail(path, `a value of several types (${nonNull.join(" | ")}) is not structural`)
  const [only] = nonNull
  if (only !== undefined) {
    if (typeof only !== "string" || !["object", "array", "string", "integer", "number", "boolean"].includes(only)) {
      fail(path, `unsupported type ${JSON.stringify(only)}`)
    }
    return { type: only as Primitive, nullable }
  }
  if (nullable) fail(path, "a value that can only be null is not structural")
  // No declared type: infer it from const/enum values (all must agree).
  const values = node.const !== undefined ? [node.const] : Array.isArray(node.enum) ? node.enum : []
  const inferred = new Set(values.map(typeOfValue).map((t) => (t === "integer" ? "number" : t)))
  inferred.delete("null")
  if (inferred.size > 1) fail(path, `an enum of mixed types (${[...inferred].join(", ")}) is not structural`)
  const [single] = inferred
  const type = single === "number" && values.every((v) => Number.isInteger(v)) ? "integer" : single
  return { type: type === "null" ? undefined : type, nullable: values.includes(null) }
}

const isNullOnly = (node: unknown): boolean => isJson(node) && node.type === "null" && Object.keys(node).length === 1

const convert = (raw: unknown, path: string, context: Context, valueOnly = false): JSONSchemaProps => {
  if (!isJson(raw))
    return fail(path, `a schema that ${raw === false ? "rejects" : "accepts"} everything is not structural`)
  const { node, context: inner } = deref(raw, path, context)
  for (const key of Object.keys(node)) {
    const why = unsupported[key]
    if (why !== undefined) fail(path, why)
    if (key.startsWith("x-kubernetes-")) {
      if (!extensions.has(key)) fail(path, `unknown Kubernetes extension ${key}`)
    } else if (!handled.has(key) && !dropped.has(key)) {
      fail(path, `JSON Schema keyword "${key}" has no Kubernetes equivalent`)
    }
  }

  let out: Mutable
  if (Array.isArray(node.anyOf) || Array.isArray(node.oneOf)) {
    const branches = [
      ...(Array.isArray(node.anyOf) ? node.anyOf : []),
      ...(Array.isArray(node.oneOf) ? node.oneOf : [])
    ]
    out = node["x-kubernetes-int-or-string"] === true ? {} : union(branches, path, inner)
  } else if (node.not !== undefined) {
    // Effect writes an empty Struct as "anything but null"; in a CRD that is an object with no fields.
    if (!isNullOnly(node.not)) fail(path, "`not` schemas are not supported; use a CEL rule")
    out = { type: "object", properties: {} }
  } else {
    out = typed(node, path, inner)
  }

  if (Array.isArray(node.allOf)) {
    for (const part of node.allOf) mergeValidation(out, convert(part, path, inner, true), path)
  }

  for (const key of documentation) {
    if (node[key] !== undefined) (out as Record<string, unknown>)[key] = node[key]
  }
  if (Array.isArray(node.examples) && node.examples.length > 0) out.example = node.examples[0]
  for (const key of extensions) {
    if (node[key] !== undefined) (out as Record<string, unknown>)[key] = node[key]
  }

  if (out["x-kubernetes-int-or-string"] === true) {
    // Kubernetes wants no type here; keep documentation only.
    const { type: _type, enum: _enum, minimum: _min, maximum: _max, pattern: _pattern, ...rest } = out
    out = rest
  }
  if (out.type === "array" && node.uniqueItems === true && out["x-kubernetes-list-type"] === undefined) {
    // Kubernetes forbids uniqueItems (quadratic); a set-typed list enforces uniqueness instead.
    const items = out.items
    if (items === undefined || items.type === "object" || items.type === "array") {
      fail(path, "unique items are only supported for lists of scalars (x-kubernetes-list-type: set)")
    }
    out["x-kubernetes-list-type"] = "set"
  }

  out = canonical(out)
  if (!valueOnly) {
    const preserved = out["x-kubernetes-preserve-unknown-fields"] === true
    if (out.type === undefined && out["x-kubernetes-int-or-string"] !== true && !preserved) {
      fail(
        path,
        "has no type (Schema.Unknown or Schema.Any?); give it a type, or annotate it with CrdSchema.preserveUnknownFields"
      )
    }
    if (out.type === "object" && out.properties === undefined && out.additionalProperties === undefined && !preserved) {
      fail(
        path,
        "a free-form object (Record(String, Unknown)) would lose all its fields to pruning; annotate it with CrdSchema.preserveUnknownFields"
      )
    }
  }
  return out
}

// Key order of the output: what a reader looks for first (description, type),
// then constraints, then children, then extensions, as in kubebuilder's CRDs.
const keyOrder = [
  "description",
  "title",
  "type",
  "format",
  "nullable",
  "enum",
  "default",
  "example",
  "minimum",
  "exclusiveMinimum",
  "maximum",
  "exclusiveMaximum",
  "multipleOf",
  "minLength",
  "maxLength",
  "pattern",
  "minItems",
  "maxItems",
  "minProperties",
  "maxProperties",
  "allOf",
  "items",
  "properties",
  "required",
  "additionalProperties"
]
const rank = (key: string): number => {
  const index = keyOrder.indexOf(key)
  return index === -1 ? keyOrder.length : index
}
const canonical = (schema: Mutable): Mutable =>
  Object.fromEntries(Object.entries(schema).sort(([a], [b]) => rank(a) - rank(b))) as Mutable

/** Node with a declared (or inferable) single type. */
const typed = (node: Json, path: string, context: Context): Mutable => {
  const { type, nullable } = typeOf(node, path)
  const out: Mutable = {}
  if (type !== undefined) out.type = type
  if (nullable) out.nullable = true

  if (node.const !== undefined) out.enum = [node.const]
  else if (Array.isArray(node.enum)) out.enum = node.enum

  for (const key of valueKeywords) {
    const value = node[key]
    if (typeof value === "number" || typeof value === "string") (out as Record<string, unknown>)[key] = value
  }
  // Draft 2020-12 numeric exclusive bounds become OpenAPI 3.0's boolean form.
  if (typeof node.exclusiveMinimum === "number") {
    if (out.minimum === undefined || node.exclusiveMinimum >= out.minimum) {
      out.minimum = node.exclusiveMinimum
      out.exclusiveMinimum = true
    }
  }
  if (typeof node.exclusiveMaximum === "number") {
    if (out.maximum === undefined || node.exclusiveMaximum <= out.maximum) {
      out.maximum = node.exclusiveMaximum
      out.exclusiveMaximum = true
    }
  }
  // Schema.Int adds ±(2^53 - 1) bounds: noise in a CRD.
  if (type === "integer") {
    if (out.minimum === -maxSafe) delete out.minimum
    if (out.maximum === maxSafe) delete out.maximum
  }

  if (isJson(node.properties)) {
    const properties: Record<string, JSONSchemaProps> = {}
    for (const [name, property] of Object.entries(node.properties)) {
      properties[name] = convert(property, `${path}.${name}`, context)
    }
    out.properties = properties
  }
  if (Array.isArray(node.required) && node.required.length > 0) out.required = node.required.map(String)
  // `true` is the JSON Schema default and forbidden next to `properties` in a CRD;
  // `false` is what pruning does anyway.
  if (isJson(node.additionalProperties)) {
    if (out.properties !== undefined && Object.keys(out.properties).length > 0) {
      fail(path, "an object with both fixed fields and extra keys (StructWithRest) cannot be expressed in a CRD")
    }
    out.additionalProperties = convert(node.additionalProperties, `${path}[*]`, context)
  }
  if (node.items !== undefined) {
    if (!isJson(node.items)) fail(path, "array items must be one schema")
    out.items = convert(node.items, `${path}[*]`, context)
  }
  if (type === "array" && out.items === undefined) {
    fail(path, "an array needs an item schema (Schema.Array(X), not an empty tuple)")
  }
  return out
}

/** anyOf/oneOf: at most one non-null shape survives, or alternatives of one type that merge losslessly. */
const union = (branches: ReadonlyArray<unknown>, path: string, context: Context): Mutable => {
  const nonNull = branches.filter((branch) => !isNullOnly(branch))
  const nullable = nonNull.length < branches.length
  if (nonNull.length === 0) return fail(path, "a value that can only be null is not structural")
  const converted = nonNull.map((branch) => convert(branch, path, context))
  if (
    converted.some((c) => c.type === "number") &&
    converted.some((c) => c.type === "string" && c.enum !== undefined && c.enum.every((v) => nonFinite.has(v)))
  ) {
    fail(
      path,
      'Schema.Number also accepts "Infinity", "-Infinity" and "NaN" as strings; use Schema.Finite or Schema.Int'
    )
  }
  const merged: Mutable = { ...merge(converted, path) }
  if (nullable) merged.nullable = true
  return merged
}

const describe = (schema: JSONSchemaProps): string => schema.type ?? "untyped"

/** Merges alternatives into one structural schema, or fails naming the field. */
const merge = (alternatives: ReadonlyArray<JSONSchemaProps>, path: string): JSONSchemaProps => {
  const [first, ...rest] = alternatives
  if (first === undefined) return fail(path, "empty union")
  if (rest.every((alternative) => same(alternative, first))) return first

  const types = new Set(alternatives.map(describe))
  if (types.size === 2 && types.has("integer") && types.has("string") && alternatives.length === 2) {
    const plain = alternatives.every((a) => Object.keys(a).every((k) => k === "type"))
    if (plain) return { "x-kubernetes-int-or-string": true }
    fail(path, "an integer-or-string union with constraints cannot be expressed; drop the constraints")
  }
  if (types.size > 1) {
    fail(path, `a union of different types (${[...types].join(" | ")}) is not structural`)
  }
  const [type] = types
  // Literal unions (and Schema.Enum, whose members carry a title): one enum of all the values.
  const literal = (a: JSONSchemaProps) =>
    Array.isArray(a.enum) && Object.keys(a).every((k) => k === "type" || k === "enum" || k === "title")
  if (alternatives.every(literal)) {
    const values: Array<unknown> = []
    for (const alternative of alternatives) {
      for (const value of alternative.enum ?? []) if (!values.some((v) => same(v, value))) values.push(value)
    }
    return type === "untyped" ? { enum: values } : { type: first.type ?? "string", enum: values }
  }
  if (type === "object") return mergeObjects(alternatives, path)
  return fail(
    path,
    `a union of differently constrained ${type} values cannot be expressed; use one ${type} Schema or a CEL rule`
  )
}

/**
 * Object alternatives (e.g. a tagged union) become one object with every
 * property; a property is required only if every alternative requires it.
 * Shared property names must merge too (e.g. the `_tag` literals become one enum).
 */
const mergeObjects = (alternatives: ReadonlyArray<JSONSchemaProps>, path: string): JSONSchemaProps => {
  const names: Array<string> = []
  for (const alternative of alternatives) {
    for (const name of Object.keys(alternative.properties ?? {})) if (!names.includes(name)) names.push(name)
  }
  const properties: Record<string, JSONSchemaProps> = {}
  for (const name of names) {
    const candidates = alternatives.flatMap((a) => {
      const property = a.properties?.[name]
      return property === undefined ? [] : [property]
    })
    properties[name] = merge(candidates, `${path}.${name}`)
  }
  const required = names.filter((name) => alternatives.every((a) => (a.required ?? []).includes(name)))
  const out: Mutable = { type: "object", properties }
  if (required.length > 0) out.required = required
  if (alternatives.some((a) => a["x-kubernetes-preserve-unknown-fields"] === true)) {
    out["x-kubernetes-preserve-unknown-fields"] = true
  }
  return out
}

/** Folds a value-only `allOf` part into the node; clashing keywords stay in `allOf` (no type there). */
const mergeValidation = (out: Mutable, part: JSONSchemaProps, path: string): void => {
  if (part.additionalProperties !== undefined || part.properties !== undefined) {
    fail(path, "an object with both fixed fields and extra keys (StructWithRest) cannot be expressed in a CRD")
  }
  const leftover: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(part)) {
    if (key === "type" || key === "description" || key === "title" || key === "default" || key === "nullable") continue
    const current = (out as Record<string, unknown>)[key]
    if (current === undefined) (out as Record<string, unknown>)[key] = value
    else if (!same(current, value)) leftover[key] = value
  }
  if (Object.keys(leftover).length > 0) out.allOf = [...(out.allOf ?? []), leftover as JSONSchemaProps]
}

/**
 * The structural OpenAPI v3 schema of one Schema (the encoded JSON side), for a
 * CRD field at `path` (used in error messages).
 *
 * @example
 * ```ts
 * const props = toStructural(Schema.Struct({ size: Schema.Literals(["S", "M"]) }), "spec")
 * // { type: "object", properties: { size: { type: "string", enum: ["S", "M"] } }, required: ["size"] }
 * ```
 */
export const toStructural = (schema: Schema.Top, path: string): JSONSchemaProps => {
  assertExportablePatterns(schema, path)
  const document = Schema.toJsonSchemaDocument(schema, {
    referencePolicy: () => undefined,
    includeAnnotationKey: (key) => key.startsWith("x-kubernetes-")
  })
  return convert(document.schema, path, { definitions: document.definitions, resolving: [] })
}
