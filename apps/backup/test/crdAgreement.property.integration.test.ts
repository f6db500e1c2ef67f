import { mkdtempSync, readdirSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { BackupDatabaseSchemaSpec } from "@db-backup-operator/backup-api"
import { ControlPlane } from "@db-backup-operator/testing"
import { assert, layer } from "@effect/vitest"
import { Effect, Schema } from "effect"
import fc from "fast-check"

// Property-based, against the real kube-apiserver: for random values of every
// field of a BackupDatabaseSchema spec, the generated CRD (OpenAPI and CEL, what
// `kubectl apply` enforces) and the Effect Schema (what the operator decodes
// with) give the same verdict, and a refusal names the field. A rule the CRD
// forgets lets bad input reach the operator; a rule the Schema forgets makes
// the operator fail to decode what the API server stored. Cross-field rules
// (CEL only) are kept satisfied, so each case tests the fields' own rules.

const crdDir = fileURLToPath(new URL("../../../crds/", import.meta.url))
const crds = readdirSync(crdDir)
  .filter((file) => file.endsWith(".yaml"))
  .map((file) => join(crdDir, file))

const isSpec = Schema.is(BackupDatabaseSchemaSpec)

const anyString = fc.string({ unit: "binary", maxLength: 80 })
const tricky = fc.constantFrom(
  "",
  " ",
  "-",
  "a..b",
  "A",
  "é".repeat(31),
  "é".repeat(32),
  "😀".repeat(16),
  "x".repeat(64),
  "\u0007",
  "a\nb"
)
const dnsLabel = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?$/)
const dnsSubdomain = fc.stringMatching(
  /^[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?){0,3}$/
)
const identifier = fc.string({ minLength: 1, maxLength: 20 }).filter((s) => s.trim() !== "" && !/\p{Cc}/u.test(s))

/** Per field: values that should pass, and values that may not (near misses, and anything at all). */
const fields = {
  dbHost: { valid: fc.oneof(fc.domain(), fc.ipV4(), fc.ipV6()), other: fc.oneof(tricky, anyString) },
  dbUser: { valid: identifier, other: fc.oneof(tricky, anyString) },
  dbPasswordSecretName: { valid: dnsSubdomain, other: fc.oneof(tricky, anyString) },
  dbPasswordSecretKey: { valid: fc.stringMatching(/^[-._a-zA-Z0-9]{1,30}$/), other: fc.oneof(tricky, anyString) },
  dbName: { valid: identifier, other: fc.oneof(tricky, anyString) },
  dbSchema: { valid: identifier, other: fc.oneof(tricky, anyString) },
  dbPort: { valid: fc.integer({ min: 1, max: 65535 }), other: fc.oneof(fc.integer(), fc.double(), fc.string()) },
  gcsBucket: {
    valid: fc.stringMatching(/^[a-z0-9][a-z0-9_-]{1,40}[a-z0-9]$/).filter((name) => !/^goog|g[o0][o0]gle/u.test(name)),
    other: fc.oneof(fc.constantFrom("goog-backups", "my-google-x", "192.168.5.4", "a..b", "Upper", "ab"), tricky)
  },
  kubeServiceAccount: { valid: dnsSubdomain, other: tricky },
  gcpServiceAccount: {
    valid: fc.oneof(dnsLabel, fc.constant("gsa@my-project.iam.gserviceaccount.com")),
    other: fc.oneof(fc.constantFrom("", "gsa@example.com", "Has Upper"), tricky)
  },
  backupJobNamespace: { valid: dnsLabel, other: tricky },
  compression: {
    valid: fc.constantFrom("gzip", "zstd", "none"),
    other: fc.oneof(fc.constantFrom("lz4", "GZIP"), anyString)
  },
  schedule: {
    valid: fc.constantFrom("@daily", "@hourly-random", "@every 1h30m", "*/5 * * * *", "30 2 * * 1-5"),
    other: fc.oneof(fc.constantFrom("@every", "@sometimes", "* * *", ""), anyString)
  },
  timeZone: {
    valid: fc.constantFrom("UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires"),
    other: fc.oneof(fc.constantFrom("../etc/passwd", "Europe//Berlin", ""), anyString)
  }
}
type Field = keyof typeof fields
const names = Object.keys(fields) as Array<Field>

/**
 * A spec whose fields are valid but for at most two, which take any value: a
 * case with every field random would almost never pass, and a refusal would
 * not say which field the two sides disagree on.
 */
const specArbitrary = fc
  .tuple(
    fc.record(
      Object.fromEntries(names.map((name) => [name, fields[name].valid])) as Record<Field, fc.Arbitrary<unknown>>
    ),
    fc.record(
      Object.fromEntries(names.map((name) => [name, fields[name].other])) as Record<Field, fc.Arbitrary<unknown>>
    ),
    fc.subarray(names, { maxLength: 2 })
  )
  .map(([valid, other, changed]) => {
    const spec: Record<string, unknown> = { ...valid }
    for (const name of changed) spec[name] = other[name]
    return spec
  })

layer(ControlPlane.layer({ controllerManager: false, crds }), {
  timeout: "5 minutes",
  excludeTestServices: true
})("the BackupDatabaseSchema CRD and Schema", (it) => {
  it.effect("give every spec the same verdict, and a refusal names the field", () =>
    Effect.gen(function* () {
      const { kubectl } = yield* ControlPlane
      const dir = mkdtempSync(join(tmpdir(), "crd-agreement-"))
      const verdicts = { accepted: 0, refused: 0 }
      let index = 0

      const check = (spec: Record<string, unknown>) =>
        Effect.gen(function* () {
          const file = join(dir, `case-${index++}.json`)
          const resource = {
            apiVersion: "backup.csyeteam03.xyz/v1",
            kind: "BackupDatabaseSchema",
            metadata: { name: "agreement", namespace: "default" },
            spec
          }
          writeFileSync(file, JSON.stringify(resource))
          const applied = yield* kubectl(["apply", "--dry-run=server", "-f", file])
          const server = applied.exitCode === 0
          const schema = isSpec(spec)
          verdicts[server ? "accepted" : "refused"] += 1
          assert.strictEqual(
            schema,
            server,
            `the API server ${server ? "accepted" : "refused"} and the Schema ${schema ? "accepted" : "refused"} ${JSON.stringify(spec)}: ${applied.stderr}`
          )
          if (!server) assert.match(applied.stderr, /spec\.\w+/u, applied.stderr)
          return true
        })

      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(specArbitrary, (spec) => Effect.runPromise(check(spec))),
          { numRuns: 150 }
        )
      )
      // Both verdicts occur often enough for the agreement to mean something.
      assert.isAtLeast(verdicts.accepted, 10, JSON.stringify(verdicts))
      assert.isAtLeast(verdicts.refused, 10, JSON.stringify(verdicts))
    })
  )
})
