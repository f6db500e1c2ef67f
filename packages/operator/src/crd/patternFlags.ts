import { Schema } from "effect"
import { fail } from "./StructuralSchemaError.ts"

// Effect's JSON Schema emitter silently drops a `pattern` whose RegExp flags are
// not `u`-based (it cannot be expressed as a plain JSON Schema pattern). A CRD
// would then accept values the Schema rejects, so the generator refuses instead.
// The Schema's representation keeps every check with its source and flags.

const exportableFlags = /^[dg]*uy?$/

type Node = { readonly [key: string]: unknown }
const isNode = (value: unknown): value is Node => typeof value === "object" && value !== null

const walk = (value: unknown, path: string): void => {
  if (Array.isArray(value)) {
    for (const item of value) walk(item, path)
    return
  }
  if (!isNode(value)) return
  const representation = value.representation
  if (value._tag === "Filter" && isNode(representation) && representation.id === "effect/schema/isPattern") {
    const payload = representation.payload
    if (isNode(payload) && typeof payload.flags === "string" && !exportableFlags.test(payload.flags)) {
      const source = typeof payload.source === "string" ? payload.source : "?"
      fail(
        path,
        `pattern /${source}/${payload.flags} is lost in the OpenAPI schema because its RegExp lacks the "u" flag (or uses i/m/s); write /${source}/u`
      )
    }
  }
  if (value._tag === "Objects") {
    for (const property of Array.isArray(value.propertySignatures) ? value.propertySignatures : []) {
      if (isNode(property)) walk(property.type, `${path}.${String(property.name)}`)
    }
    for (const index of Array.isArray(value.indexSignatures) ? value.indexSignatures : []) {
      if (isNode(index)) walk(index.type, `${path}[*]`)
    }
    walk(value.checks, path)
    return
  }
  if (value._tag === "Arrays") {
    walk(value.elements, `${path}[*]`)
    walk(value.rest, `${path}[*]`)
    walk(value.checks, path)
    return
  }
  for (const child of Object.values(value)) walk(child, path)
}

/** Throws a StructuralSchemaError naming the field of the first pattern that would be dropped. */
export const assertExportablePatterns = (schema: Schema.Top, path: string): void => {
  const document = Schema.toRepresentation(schema)
  walk(document.representation, path)
  for (const [name, reference] of Object.entries(document.references)) walk(reference, `${path} (${name})`)
}
