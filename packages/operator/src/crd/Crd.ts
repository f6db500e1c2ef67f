import type { Resource } from "@db-backup-operator/kube"
import type { Schema } from "effect"
import { stringify } from "yaml"
import type { JSONSchemaProps } from "./JsonSchemaProps.ts"
import * as Structural from "./Structural.ts"
import { fail } from "./StructuralSchemaError.ts"
import { toStructural } from "./toStructural.ts"

export type { JSONSchemaProps } from "./JsonSchemaProps.ts"
export { violations } from "./Structural.ts"
export { StructuralSchemaError } from "./StructuralSchemaError.ts"
export { toStructural } from "./toStructural.ts"

/** A `kubectl get` column (`additionalPrinterColumns[]`). */
export interface PrinterColumn {
  readonly name: string
  readonly type: "string" | "integer" | "number" | "boolean" | "date"
  /** JSONPath into the object, e.g. `.status.phase`. */
  readonly jsonPath: string
  readonly description?: string
  /** 0 shows in `kubectl get`; higher only with `-o wide`. */
  readonly priority?: number
  readonly format?: string
}

/** How the kind presents itself beyond what its Resource already says. */
export interface Options {
  readonly shortNames?: ReadonlyArray<string>
  readonly categories?: ReadonlyArray<string>
  /** Defaults to the lower-cased kind. */
  readonly singular?: string
  /** Defaults to `<Kind>List`. */
  readonly listKind?: string
  readonly printerColumns?: ReadonlyArray<PrinterColumn>
  /** Description of the whole object (the spec and status Schemas describe themselves). */
  readonly description?: string
}

/** The parts of a custom `Resource` a CRD is made from. */
export type CustomResource = Pick<Resource.Resource, "group" | "version" | "kind" | "plural" | "namespaced"> & {
  readonly spec?: Schema.Top | undefined
  readonly status?: Schema.Top | undefined
}

export interface Names {
  readonly plural: string
  readonly singular: string
  readonly kind: string
  readonly listKind: string
  readonly shortNames?: ReadonlyArray<string>
  readonly categories?: ReadonlyArray<string>
}

export interface Version {
  readonly name: string
  readonly served: boolean
  readonly storage: boolean
  readonly schema: { readonly openAPIV3Schema: JSONSchemaProps }
  readonly subresources?: { readonly status?: Record<string, never> }
  readonly additionalPrinterColumns?: ReadonlyArray<PrinterColumn>
}

/** An `apiextensions.k8s.io/v1` CustomResourceDefinition as plain JSON. */
export interface CustomResourceDefinition {
  readonly apiVersion: "apiextensions.k8s.io/v1"
  readonly kind: "CustomResourceDefinition"
  readonly metadata: { readonly name: string }
  readonly spec: {
    readonly group: string
    readonly names: Names
    readonly scope: "Namespaced" | "Cluster"
    readonly versions: ReadonlyArray<Version>
  }
}

const simplePath = /^(\.[A-Za-z_][A-Za-z0-9_-]*)+$/u

/** Fails unless a simple `.a.b` column path names a field of the schema (catches typos at generation time). */
const checkColumn = (column: PrinterColumn, root: JSONSchemaProps): void => {
  const where = `additionalPrinterColumns[${column.name}]`
  if (column.name.length === 0) fail(where, "a printer column needs a name")
  if (!column.jsonPath.startsWith(".")) fail(where, `jsonPath ${column.jsonPath} must start with "."`)
  // Filters, indexes and wildcards are left to the API server.
  if (!simplePath.test(column.jsonPath)) return
  let node: JSONSchemaProps = root
  for (const segment of column.jsonPath.slice(1).split(".")) {
    // metadata, preserved and map-typed fields have no declared children to check against.
    if (node.properties === undefined) return
    const child: JSONSchemaProps | undefined = node.properties[segment]
    if (child === undefined) {
      fail(where, `jsonPath ${column.jsonPath} names no field of the schema`)
      return
    }
    node = child
  }
  if (column.type === "date" && node.type !== undefined && node.type !== "string") {
    fail(where, `a date column needs a string (RFC 3339) field, ${column.jsonPath} is ${node.type}`)
  }
}

const hasRequired = (schema: JSONSchemaProps): boolean => (schema.required ?? []).length > 0

/**
 * The CustomResourceDefinition of a custom kind: one served and storage version
 * whose structural OpenAPI schema is generated from the kind's spec and status
 * Schemas (validation, defaults, descriptions, CEL rules), with the status
 * subresource when there is a status Schema. Throws a `StructuralSchemaError`
 * naming the field if a Schema has no structural form.
 *
 * @example
 * ```ts
 * const crd = Crd.make(Widget, {
 *   shortNames: ["wd"],
 *   printerColumns: [{ name: "Size", type: "integer", jsonPath: ".spec.size" }]
 * })
 * ```
 */
export const make = (resource: CustomResource, options: Options = {}): CustomResourceDefinition => {
  if (resource.group === "") fail(resource.kind, "a custom resource needs an API group")
  if (resource.spec === undefined) fail(resource.kind, "not a custom kind: it has no spec Schema")
  const spec = resource.spec === undefined ? {} : toStructural(resource.spec, "spec")
  const status = resource.status === undefined ? undefined : toStructural(resource.status, "status")

  const openAPIV3Schema: JSONSchemaProps = {
    type: "object",
    ...(options.description === undefined ? {} : { description: options.description }),
    properties: {
      apiVersion: {
        type: "string",
        description: "Versioned schema of this representation of an object (group/version)."
      },
      kind: { type: "string", description: "REST resource this object represents, in CamelCase." },
      metadata: { type: "object" },
      spec,
      ...(status === undefined ? {} : { status })
    },
    // An empty spec may be omitted; a spec with required fields may not.
    ...(hasRequired(spec) ? { required: ["spec"] } : {})
  }
  const problems = Structural.violations(openAPIV3Schema)
  if (problems.length > 0) fail(resource.kind, `generated schema is not structural:\n  ${problems.join("\n  ")}`)

  const columns = options.printerColumns ?? []
  for (const column of columns) checkColumn(column, openAPIV3Schema)

  const names: Names = {
    plural: resource.plural,
    singular: options.singular ?? resource.kind.toLowerCase(),
    kind: resource.kind,
    listKind: options.listKind ?? `${resource.kind}List`,
    ...(options.shortNames === undefined || options.shortNames.length === 0 ? {} : { shortNames: options.shortNames }),
    ...(options.categories === undefined || options.categories.length === 0 ? {} : { categories: options.categories })
  }
  const version: Version = {
    name: resource.version,
    served: true,
    storage: true,
    schema: { openAPIV3Schema },
    ...(status === undefined ? {} : { subresources: { status: {} } }),
    ...(columns.length === 0 ? {} : { additionalPrinterColumns: columns.map(printerColumn) })
  }
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${resource.plural}.${resource.group}` },
    spec: {
      group: resource.group,
      names,
      scope: resource.namespaced ? "Namespaced" : "Cluster",
      versions: [version]
    }
  }
}

/** A column with its keys in the API's order and no undefined values (YAML/JSON friendly). */
const printerColumn = (column: PrinterColumn): PrinterColumn => ({
  name: column.name,
  type: column.type,
  jsonPath: column.jsonPath,
  ...(column.description === undefined ? {} : { description: column.description }),
  ...(column.priority === undefined ? {} : { priority: column.priority }),
  ...(column.format === undefined ? {} : { format: column.format })
})

/**
 * The conventional file name of a CRD manifest (`<group>_<plural>.yaml`, as kubebuilder names them).
 *
 * @example
 * ```ts
 * Crd.fileName(crd)   // "example.com_widgets.yaml"
 * ```
 */
export const fileName = (crd: CustomResourceDefinition): string => `${crd.spec.group}_${crd.spec.names.plural}.yaml`

/**
 * The CRD as a YAML manifest for `kubectl apply -f`, headed by a do-not-edit
 * comment naming where it is generated from.
 *
 * @example
 * ```ts
 * writeFileSync("crds/example.com_widgets.yaml", Crd.toYaml(crd, { source: "packages/widgets" }))
 * ```
 */
export const toYaml = (crd: CustomResourceDefinition, options: { readonly source?: string } = {}): string => {
  const source = options.source ?? `the ${crd.spec.names.kind} Schemas`
  // lineWidth 0: never fold long descriptions or CEL rules, so diffs stay line-based.
  return `# Generated by npm run crds from ${source}. Do not edit.\n${stringify(crd, { lineWidth: 0 })}`
}
