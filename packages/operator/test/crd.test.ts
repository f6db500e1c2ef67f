import { CrdSchema, Resource } from "@db-backup-operator/kube"
import { Crd } from "@db-backup-operator/operator"
import { assert, describe, it } from "@effect/vitest"
import { Schema } from "effect"
import { parse } from "yaml"
import { Widget, type WidgetSpec, WidgetStatus, widgetOptions } from "./fixtures/Widget.ts"

type Props = Crd.JSONSchemaProps

const crd = Crd.make(Widget, widgetOptions)
const [version] = crd.spec.versions
const root: Props = version?.schema.openAPIV3Schema ?? {}
const spec: Props = root.properties?.spec ?? {}
const status: Props = root.properties?.status ?? {}
const field = (name: string): Props => spec.properties?.[name] ?? {}

/** Independent structural walk: every node typed (or int-or-string / preserved), nothing Kubernetes rejects. */
const structuralProblems = (node: unknown, path: string): Array<string> => {
  if (typeof node !== "object" || node === null) return [`${path}: not a schema`]
  const schema = node as Record<string, unknown>
  const problems: Array<string> = []
  for (const key of ["$ref", "$schema", "$defs", "definitions", "const", "anyOf", "oneOf", "not", "prefixItems"]) {
    if (key in schema) problems.push(`${path}: has ${key}`)
  }
  if (schema.additionalProperties === true || schema.additionalProperties === false) {
    problems.push(`${path}: boolean additionalProperties`)
  }
  if (schema.uniqueItems === true) problems.push(`${path}: uniqueItems`)
  const typed =
    typeof schema.type === "string" ||
    schema["x-kubernetes-int-or-string"] === true ||
    schema["x-kubernetes-preserve-unknown-fields"] === true
  if (!typed) problems.push(`${path}: no type`)
  if (Array.isArray(schema.type)) problems.push(`${path}: type union`)
  const properties = schema.properties
  if (typeof properties === "object" && properties !== null) {
    for (const [name, child] of Object.entries(properties))
      problems.push(...structuralProblems(child, `${path}.${name}`))
  }
  if (schema.items !== undefined) problems.push(...structuralProblems(schema.items, `${path}[*]`))
  if (typeof schema.additionalProperties === "object") {
    problems.push(...structuralProblems(schema.additionalProperties, `${path}[*]`))
  }
  return problems
}

const throwsAt = (make: () => unknown, path: string, reason: RegExp) => {
  try {
    make()
  } catch (error) {
    assert.instanceOf(error, Crd.StructuralSchemaError)
    assert.strictEqual(error.path, path)
    assert.match(error.message, reason)
    assert.isTrue(error.message.startsWith(`${path}: `), error.message)
    return
  }
  assert.fail(`expected a StructuralSchemaError at ${path}`)
}

const kind = (specSchema: Schema.Top, statusSchema?: Schema.Top) =>
  Resource.custom({
    group: "example.com",
    version: "v1",
    kind: "Gadget",
    plural: "gadgets",
    namespaced: false,
    spec: specSchema as typeof WidgetSpec,
    status: (statusSchema ?? WidgetStatus) as typeof WidgetStatus
  })

describe("Crd.make", () => {
  it("describes the kind: names, scope, one served storage version, status subresource", () => {
    assert.strictEqual(crd.apiVersion, "apiextensions.k8s.io/v1")
    assert.strictEqual(crd.kind, "CustomResourceDefinition")
    assert.strictEqual(crd.metadata.name, "widgets.example.com")
    assert.deepStrictEqual(crd.spec.names, {
      plural: "widgets",
      singular: "widget",
      kind: "Widget",
      listKind: "WidgetList",
      shortNames: ["wd"],
      categories: ["examples"]
    })
    assert.strictEqual(crd.spec.scope, "Namespaced")
    assert.strictEqual(crd.spec.versions.length, 1)
    assert.strictEqual(version?.name, "v1alpha1")
    assert.isTrue(version?.served)
    assert.isTrue(version?.storage)
    assert.deepStrictEqual(version?.subresources, { status: {} })
    assert.strictEqual(Crd.fileName(crd), "example.com_widgets.yaml")
  })

  it("generates a structural schema", () => {
    assert.deepStrictEqual(structuralProblems(root, "<root>"), [])
    assert.deepStrictEqual(Crd.violations(root), [])
    assert.deepStrictEqual(Object.keys(root.properties ?? {}), ["apiVersion", "kind", "metadata", "spec", "status"])
    assert.deepStrictEqual(root.properties?.metadata, { type: "object" })
    assert.deepStrictEqual(root.required, ["spec"])
  })

  it("keeps validation: enum, min/max, pattern, lengths, required", () => {
    assert.deepStrictEqual(field("size").enum, ["small", "medium", "large"])
    assert.strictEqual(field("size").type, "string")
    assert.deepInclude(field("replicas"), { type: "integer", minimum: 1, maximum: 10 })
    assert.deepInclude(field("name"), { type: "string", pattern: "^[a-z][a-z0-9-]*$", minLength: 1, maxLength: 20 })
    // Draft 2020-12 exclusive bounds become OpenAPI 3.0 booleans.
    assert.deepInclude(field("ratio"), { type: "number", minimum: 0, exclusiveMinimum: true, maximum: 1 })
    assert.deepInclude(field("tags"), { type: "array", minItems: 1, maxItems: 5, items: { type: "string" } })
    assert.deepStrictEqual(spec.required, ["size", "name"])
    // Schema.Int's ±2^53 bounds are dropped.
    assert.deepStrictEqual(status.properties?.observedGeneration, { type: "integer", minimum: 0 })
  })

  it("keeps descriptions and defaults from annotations", () => {
    assert.strictEqual(spec.description, "Desired state of the widget.")
    assert.strictEqual(field("size").description, "How big the widget is.")
    assert.deepInclude(field("replicas"), { description: "How many copies run.", default: 1 })
    assert.strictEqual(field("startedAt").format, "date-time")
  })

  it("passes Kubernetes extensions through where they are declared", () => {
    assert.deepStrictEqual(field("window")["x-kubernetes-validations"], [
      { rule: "self.min <= self.max", message: "window.min must not exceed window.max", reason: "FieldValueInvalid" }
    ])
    assert.deepStrictEqual(field("extra"), { type: "object", "x-kubernetes-preserve-unknown-fields": true })
    assert.deepStrictEqual(field("maxUnavailable"), { "x-kubernetes-int-or-string": true })
    assert.deepInclude(field("ports"), { "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"] })
    assert.strictEqual(field("selector")["x-kubernetes-map-type"], "atomic")
    // Only where declared.
    const preserved = JSON.stringify(root).match(/preserve-unknown-fields/gu) ?? []
    assert.strictEqual(preserved.length, 1)
  })

  it("maps unions to structural forms", () => {
    assert.deepStrictEqual(field("mode"), { type: "string", enum: ["fast", "safe"] })
    assert.deepStrictEqual(field("note"), { type: "string", nullable: true })
    assert.deepStrictEqual(field("labels"), { type: "object", additionalProperties: { type: "string" } })
    // uniqueItems is forbidden in CRDs; a set-typed list enforces uniqueness.
    assert.deepStrictEqual(field("aliases"), {
      type: "array",
      items: { type: "string" },
      "x-kubernetes-list-type": "set"
    })
  })

  it("merges a tagged union of structs into one object", () => {
    const Source = Schema.Union([
      Schema.TaggedStruct("Git", { url: Schema.String, ref: Schema.optionalKey(Schema.String) }),
      Schema.TaggedStruct("Bucket", { url: Schema.String, region: Schema.String })
    ])
    const generated = Crd.make(kind(Schema.Struct({ source: Source })))
    const source = generated.spec.versions[0]?.schema.openAPIV3Schema.properties?.spec?.properties?.source
    assert.deepStrictEqual(source, {
      type: "object",
      properties: {
        _tag: { type: "string", enum: ["Git", "Bucket"] },
        url: { type: "string" },
        ref: { type: "string" },
        region: { type: "string" }
      },
      required: ["_tag", "url"]
    })
    assert.strictEqual(generated.spec.scope, "Cluster")
  })

  it("inlines Schema.Class and identified schemas (no $ref)", () => {
    class Endpoint extends Schema.Class<Endpoint>("Endpoint")({
      host: Schema.String,
      port: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 65535 }))
    }) {}
    const Name = Schema.String.check(Schema.isMaxLength(10)).annotate({ identifier: "Name" })
    const generated = Crd.make(
      kind(Schema.Struct({ primary: Endpoint, replica: Schema.optionalKey(Endpoint), a: Name, b: Name }))
    )
    const schema = generated.spec.versions[0]?.schema.openAPIV3Schema
    assert.notInclude(JSON.stringify(schema), "$ref")
    const endpoint: Props = {
      type: "object",
      properties: { host: { type: "string" }, port: { type: "integer", minimum: 1, maximum: 65535 } },
      required: ["host", "port"]
    }
    assert.deepStrictEqual(schema?.properties?.spec?.properties?.primary, endpoint)
    assert.deepStrictEqual(schema?.properties?.spec?.properties?.replica, endpoint)
    assert.deepStrictEqual(schema?.properties?.spec?.properties?.b, { type: "string", maxLength: 10 })
  })

  it("adds printer columns", () => {
    assert.deepStrictEqual(version?.additionalPrinterColumns, [
      { name: "Size", type: "string", jsonPath: ".spec.size", description: "How big." },
      { name: "Replicas", type: "integer", jsonPath: ".spec.replicas", priority: 1 },
      { name: "Phase", type: "string", jsonPath: ".status.phase" },
      { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" }
    ])
  })

  it("does not require an all-optional spec, and has no status subresource without a status Schema", () => {
    const Plain = {
      group: "example.com",
      version: "v1",
      kind: "Plain",
      plural: "plains",
      namespaced: true,
      spec: Schema.Struct({ a: Schema.optionalKey(Schema.String) })
    }
    const generated = Crd.make(Plain)
    const [only] = generated.spec.versions
    assert.isUndefined(only?.schema.openAPIV3Schema.required)
    assert.isUndefined(only?.subresources)
    assert.isUndefined(only?.schema.openAPIV3Schema.properties?.status)
    assert.isUndefined(generated.spec.names.shortNames)
  })
})

describe("Crd.make rejects what cannot be structural", () => {
  it("a union of different types", () =>
    throwsAt(
      () =>
        Crd.make(
          kind(Schema.Struct({ target: Schema.Union([Schema.String, Schema.Struct({ host: Schema.String })]) }))
        ),
      "spec.target",
      /union of different types \(string \| object\)/u
    ))

  it("a union of a number and a string", () =>
    throwsAt(
      () => Crd.make(kind(Schema.Struct({ x: Schema.Union([Schema.Finite, Schema.String]) }))),
      "spec.x",
      /union of different types \(number \| string\)/u
    ))

  it("a map-typed list whose key is optional", () =>
    throwsAt(
      () =>
        Crd.make(
          kind(
            Schema.Struct({
              ports: Schema.Array(Schema.Struct({ name: Schema.optionalKey(Schema.String) })).annotate(
                CrdSchema.listType("map", ["name"])
              )
            })
          )
        ),
      "Gadget",
      /spec\.ports: list map key "name" must be required or have a default/u
    ))

  it("Schema.Number (it admits non-finite strings)", () =>
    throwsAt(() => Crd.make(kind(Schema.Struct({ ratio: Schema.Number }))), "spec.ratio", /Schema\.Finite/u))

  it("a pattern without the u flag", () =>
    throwsAt(
      () => Crd.make(kind(Schema.Struct({ items: Schema.Array(Schema.String.check(Schema.isPattern(/^a+$/))) }))),
      "spec.items[*]",
      /lacks the "u" flag/u
    ))

  it("an untyped field", () =>
    throwsAt(() => Crd.make(kind(Schema.Struct({ anything: Schema.Unknown }))), "spec.anything", /has no type/u))

  it("a free-form map that would be pruned", () =>
    throwsAt(
      () => Crd.make(kind(Schema.Struct({ extra: Schema.Record(Schema.String, Schema.Unknown) }))),
      "spec.extra",
      /preserveUnknownFields/u
    ))

  it("a tuple", () =>
    throwsAt(
      () => Crd.make(kind(Schema.Struct({ pair: Schema.Tuple([Schema.String, Schema.Int]) }))),
      "spec.pair",
      /tuples/u
    ))

  it("a struct with extra keys", () =>
    throwsAt(
      () =>
        Crd.make(
          kind(
            Schema.Struct({
              env: Schema.StructWithRest(Schema.Struct({ PATH: Schema.String }), [
                Schema.Record(Schema.String, Schema.String)
              ])
            })
          )
        ),
      "spec.env",
      /StructWithRest/u
    ))

  it("a recursive Schema", () => {
    interface Tree {
      readonly children: ReadonlyArray<Tree>
    }
    const Tree: Schema.Codec<Tree> = Schema.Struct({
      children: Schema.Array(Schema.suspend((): Schema.Codec<Tree> => Tree))
    })
    throwsAt(() => Crd.make(kind(Schema.Struct({ tree: Tree }))), "spec.tree.children[*]", /recursive/u)
  })

  it("a printer column naming no field", () =>
    throwsAt(
      () =>
        Crd.make(Widget, {
          printerColumns: [{ name: "Phase", type: "string", jsonPath: ".status.phaze" }]
        }),
      "additionalPrinterColumns[Phase]",
      /names no field/u
    ))

  it("a date column on a non-string field", () =>
    throwsAt(
      () =>
        Crd.make(Widget, {
          printerColumns: [{ name: "When", type: "date", jsonPath: ".spec.replicas" }]
        }),
      "additionalPrinterColumns[When]",
      /string/u
    ))
})

describe("Crd.toYaml", () => {
  it("writes a do-not-edit header and the CRD", () => {
    const text = Crd.toYaml(crd, { source: "packages/example" })
    const [header] = text.split("\n")
    assert.strictEqual(header, "# Generated by npm run crds from packages/example. Do not edit.")
    assert.deepStrictEqual(parse(text), JSON.parse(JSON.stringify(crd)))
  })

  it("never folds long lines", () => {
    const long = "x".repeat(300)
    const generated = Crd.make(kind(Schema.Struct({ a: Schema.String.annotate({ description: long }) })))
    assert.include(Crd.toYaml(generated), `description: ${long}\n`)
  })
})
