import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { ControlPlane } from "@db-backup-operator/testing"
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { parseAllDocuments } from "yaml"
import { files } from "../stack/localStack.ts"

// Every resource README.md shows is accepted by a real API server with the
// generated CRDs (kubectl apply --dry-run=server): a field renamed, a rule
// tightened or a default changed in the Schemas breaks this test, not a user
// who copies the README. A block that shows only some `spec` fields ("# ...")
// is completed with the first full BackupDatabaseSchema example, as its
// comment tells the reader to.

const root = fileURLToPath(new URL("../../", import.meta.url))

type Document = {
  readonly apiVersion?: string
  readonly kind?: string
  readonly metadata?: { readonly name?: string; readonly namespace?: string }
  readonly spec?: Record<string, unknown>
}

/** The YAML blocks of README.md, each with the line it starts on, parsed into documents. */
const readmeDocuments = (): ReadonlyArray<{ readonly line: number; readonly document: Document }> => {
  const text = readFileSync(join(root, "README.md"), "utf8")
  const found: Array<{ line: number; document: Document }> = []
  for (const match of text.matchAll(/^```yaml\n([\s\S]*?)^```/gmu)) {
    const line = text.slice(0, match.index).split("\n").length
    for (const document of parseAllDocuments(match[1] ?? "")) {
      const value = document.toJS() as Document | null
      if (value !== null && typeof value === "object") found.push({ line, document: value })
    }
  }
  return found
}

const group = "backup.csyeteam03.xyz/v1"
const storageFields = ["gcsBucket", "gcpServiceAccount"]

/** The resources to apply: full examples as written, spec fragments on top of the first full example. */
const examples = () => {
  const documents = readmeDocuments()
  const base = documents.find(
    ({ document }) => document.apiVersion === group && document.kind === "BackupDatabaseSchema"
  )
  if (base === undefined) throw new Error("README.md has no full BackupDatabaseSchema example")
  const baseSpec = base.document.spec ?? {}
  return documents.flatMap(({ line, document }, index) => {
    const where = `README.md line ${line}`
    if (document.apiVersion === group && document.kind === "BackupDatabaseSchema" && document !== base.document) {
      // "dbHost, dbUser, ... as above": the connection fields of the first example, not its storage.
      const spec = document.spec ?? {}
      const inherited = Object.entries(baseSpec).filter(
        ([key]) => !(key in spec) && !("storageRef" in spec && storageFields.includes(key))
      )
      return [{ where, resource: { ...document, spec: { ...Object.fromEntries(inherited), ...spec } } }]
    }
    if (document.apiVersion === group) return [{ where, resource: document }]
    if (document.apiVersion === undefined && document.spec !== undefined) {
      return [
        {
          where,
          resource: {
            ...base.document,
            metadata: { ...base.document.metadata, name: `readme-fragment-${index}` },
            spec: { ...baseSpec, ...document.spec }
          }
        }
      ]
    }
    return []
  })
}

layer(ControlPlane.layer({ controllerManager: false, crds: files.crds }), {
  timeout: "5 minutes",
  excludeTestServices: true
})("README.md's examples", (it) => {
  it.effect("every backup resource it shows is accepted by the API server with the generated CRDs", () =>
    Effect.gen(function* () {
      const { kubectl } = yield* ControlPlane
      const all = examples()
      const kinds = all.map(({ resource }) => (resource as Document).kind)
      // The README shows each kind, and several spec fragments: the test cannot pass on an empty list.
      for (const kind of ["BackupDatabaseSchema", "Backup", "BackupStorage", "Restore"]) assert.include(kinds, kind)
      assert.isAtLeast(all.length, 8)

      const namespaces = new Set(all.map(({ resource }) => (resource as Document).metadata?.namespace ?? "default"))
      for (const namespace of namespaces) {
        const created = yield* kubectl(["create", "namespace", namespace])
        assert.strictEqual(created.exitCode, 0, created.stderr)
      }
      const dir = mkdtempSync(join(tmpdir(), "readme-examples-"))
      for (const [index, { where, resource }] of all.entries()) {
        const file = join(dir, `example-${index}.json`)
        writeFileSync(file, JSON.stringify(resource))
        const applied = yield* kubectl(["apply", "--dry-run=server", "-f", file])
        assert.strictEqual(applied.exitCode, 0, `${where}: ${applied.stderr}`)
      }
    })
  )
})
