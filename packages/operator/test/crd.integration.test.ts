import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Crd } from "@db-backup-operator/operator"
import { ControlPlane } from "@db-backup-operator/testing"
import { assert, layer } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { Widget, widgetOptions } from "./fixtures/Widget.ts"

// The generated Widget CRD against a real kube-apiserver: it must be accepted
// (structural, valid CEL), become Established, and then enforce every rule the
// Schema declares, with errors that name the field.

const crd = Crd.make(Widget, widgetOptions)
const crdFile = join(mkdtempSync(join(tmpdir(), "widget-crd-")), Crd.fileName(crd))
writeFileSync(crdFile, Crd.toYaml(crd, { source: "packages/operator/test/fixtures/Widget.ts" }))

let counter = 0
const widget = (spec: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  apiVersion: "example.com/v1alpha1",
  kind: "Widget",
  metadata: { name: `w-${++counter}`, namespace: "default" },
  spec,
  ...extra
})

const validSpec = { size: "small", name: "alpha" }

layer(ControlPlane.layer({ controllerManager: false, crds: [crdFile] }), {
  timeout: "5 minutes",
  excludeTestServices: true
})("generated CRD on a real API server", (it) => {
  it.effect("is accepted and Established", () =>
    Effect.gen(function* () {
      const { kubectl } = yield* ControlPlane
      const result = yield* kubectl([
        "get",
        "crd",
        "widgets.example.com",
        "-o",
        `jsonpath={.status.conditions[?(@.type=="Established")].status}`
      ])
      assert.strictEqual(result.exitCode, 0, result.stderr)
      assert.strictEqual(result.stdout.trim(), "True")
      const names = yield* kubectl([
        "get",
        "crd",
        "widgets.example.com",
        "-o",
        "jsonpath={.status.acceptedNames.shortNames}"
      ])
      assert.include(names.stdout, "wd")
    })
  )

  it.effect("round-trips a valid object: defaults applied, unknown fields pruned, declared free-form kept", () =>
    Effect.gen(function* () {
      const { kubectl } = yield* ControlPlane
      const object = widget({
        ...validSpec,
        window: { min: 1, max: 2 },
        extra: { anything: { nested: [1, "two"] } },
        maxUnavailable: "25%",
        ports: [{ name: "http", port: 80 }],
        note: null,
        bogus: "pruned"
      })
      const created = yield* kubectl(["create", "--validate=ignore", "-o", "json", "-f", "-"], {
        stdin: JSON.stringify(object)
      })
      assert.strictEqual(created.exitCode, 0, created.stderr)
      const read = yield* kubectl(["get", "widget", object.metadata.name, "-n", "default", "-o", "json"])
      const json: unknown = JSON.parse(read.stdout)
      const decoded = Schema.decodeUnknownSync(Widget.schema)(json)
      assert.strictEqual(decoded.spec.replicas, 1)
      assert.deepStrictEqual(decoded.spec.extra, { anything: { nested: [1, "two"] } })
      assert.strictEqual(decoded.spec.maxUnavailable, "25%")
      assert.isNull(decoded.spec.note)
      assert.notProperty((json as { spec: object }).spec, "bogus")
      // Printer columns and the short name work.
      const table = yield* kubectl(["get", "wd", object.metadata.name, "-n", "default"])
      assert.match(table.stdout, /NAME\s+SIZE\s+PHASE\s+AGE/u)
    })
  )

  const rejected = (spec: Record<string, unknown>, ...expected: ReadonlyArray<string>) =>
    Effect.gen(function* () {
      const { kubectl } = yield* ControlPlane
      const result = yield* kubectl(["create", "-f", "-"], { stdin: JSON.stringify(widget(spec)) })
      assert.notStrictEqual(result.exitCode, 0, `accepted: ${JSON.stringify(spec)}`)
      for (const text of expected) assert.include(result.stderr, text)
    })

  it.effect("rejects a value outside the enum", () =>
    rejected({ ...validSpec, size: "huge" }, "spec.size", 'Unsupported value: "huge"')
  )
  it.effect("rejects a value below the minimum", () => rejected({ ...validSpec, replicas: 0 }, "spec.replicas"))
  it.effect("rejects a string not matching the pattern", () =>
    rejected({ ...validSpec, name: "Bad_Name" }, "spec.name")
  )
  it.effect("rejects a missing required field", () => rejected({ size: "small" }, "spec.name", "Required value"))
  it.effect("rejects a list that is too long", () =>
    rejected({ ...validSpec, tags: ["a", "b", "c", "d", "e", "f"] }, "spec.tags")
  )
  it.effect("rejects an exclusive bound", () => rejected({ ...validSpec, ratio: 0 }, "spec.ratio"))
  it.effect("rejects a CEL rule violation with its message", () =>
    rejected({ ...validSpec, window: { min: 5, max: 1 } }, "spec.window", "window.min must not exceed window.max")
  )
  it.effect("rejects duplicate set items and map keys", () =>
    Effect.gen(function* () {
      yield* rejected({ ...validSpec, aliases: ["a", "a"] }, "spec.aliases")
      yield* rejected(
        {
          ...validSpec,
          ports: [
            { name: "http", port: 80 },
            { name: "http", port: 81 }
          ]
        },
        "spec.ports"
      )
    })
  )
  it.effect("rejects a status outside the enum through the status subresource", () =>
    Effect.gen(function* () {
      const { kubectl } = yield* ControlPlane
      const object = widget(validSpec)
      const created = yield* kubectl(["create", "-f", "-"], { stdin: JSON.stringify(object) })
      assert.strictEqual(created.exitCode, 0, created.stderr)
      const patched = yield* kubectl([
        "patch",
        "widget",
        object.metadata.name,
        "-n",
        "default",
        "--subresource=status",
        "--type=merge",
        "-p",
        JSON.stringify({ status: { phase: "Exploded" } })
      ])
      assert.notStrictEqual(patched.exitCode, 0)
      assert.include(patched.stderr, "status.phase")
    })
  )
})
