import { describe, expect, it } from "@effect/vitest"
import { type AccessSettings, access, consentProblem, usableByAnnotation } from "../src/access.ts"
import { backupWith } from "./fixtures.ts"

const resource = backupWith

const defaults: AccessSettings = { allowedNamespaces: [], requireSecretOptIn: false, minSslMode: "disable" }
const password = { field: "spec.dbPasswordSecretName", name: "backup-secret" }

describe("access", () => {
  it.each([
    {
      case: "the original resource: its own namespace, no consent needed, libpq's default mode",
      spec: {},
      settings: defaults,
      expected: { _tag: "Allowed", jobNamespace: "team-a", sslMode: "prefer", needConsent: [] }
    },
    {
      case: "require opt-in: even the own namespace's Secret must consent",
      spec: {},
      settings: { ...defaults, requireSecretOptIn: true },
      expected: {
        _tag: "Allowed",
        jobNamespace: "team-a",
        sslMode: "prefer",
        needConsent: [{ ...password, namespace: "team-a" }]
      }
    },
    {
      case: "an allowed pair: the Job runs there and the Secret there must consent",
      spec: { backupJobNamespace: "db", dbPasswordSecretNamespace: "db" },
      settings: { ...defaults, allowedNamespaces: [{ from: "team-a", to: "db" }] },
      expected: {
        _tag: "Allowed",
        jobNamespace: "db",
        sslMode: "prefer",
        needConsent: [{ ...password, namespace: "db" }]
      }
    },
    {
      case: "a CA from a Secret needs consent like the password",
      spec: { sslMode: "verify-full", sslRootCert: { secretKeyRef: { name: "db-ca", key: "ca.crt" } } },
      settings: { ...defaults, requireSecretOptIn: true },
      expected: {
        _tag: "Allowed",
        jobNamespace: "team-a",
        sslMode: "verify-full",
        needConsent: [
          { ...password, namespace: "team-a" },
          { field: "spec.sslRootCert.secretKeyRef.name", namespace: "team-a", name: "db-ca" }
        ]
      }
    },
    {
      case: "a CA from a ConfigMap needs no consent",
      spec: { sslMode: "verify-ca", sslRootCert: { configMapKeyRef: { name: "db-ca", key: "ca.crt" } } },
      settings: defaults,
      expected: { _tag: "Allowed", jobNamespace: "team-a", sslMode: "verify-ca", needConsent: [] }
    },
    {
      case: "no sslMode under a stricter minimum: the minimum",
      spec: {},
      settings: { ...defaults, minSslMode: "verify-full" },
      expected: { _tag: "Allowed", jobNamespace: "team-a", sslMode: "verify-full", needConsent: [] }
    },
    {
      case: "no sslMode under a verify-ca floor, with a CA",
      spec: { sslRootCert: { configMapKeyRef: { name: "db-ca", key: "ca.crt" } } },
      settings: { ...defaults, minSslMode: "verify-ca" },
      expected: { _tag: "Allowed", jobNamespace: "team-a", sslMode: "verify-ca", needConsent: [] }
    },
    {
      case: "no sslMode under a weaker minimum: prefer",
      spec: {},
      settings: { ...defaults, minSslMode: "allow" },
      expected: { _tag: "Allowed", jobNamespace: "team-a", sslMode: "prefer", needConsent: [] }
    },
    {
      case: "sslMode exactly the minimum",
      spec: { sslMode: "require" },
      settings: { ...defaults, minSslMode: "require" },
      expected: { _tag: "Allowed", jobNamespace: "team-a", sslMode: "require", needConsent: [] }
    }
  ] as const)("$case", ({ spec, settings, expected }) => {
    expect(access(resource(spec), settings)).toStrictEqual(expected)
  })

  it.each([
    {
      case: "a Job namespace without a pair",
      spec: { backupJobNamespace: "db", dbPasswordSecretNamespace: "db" },
      settings: defaults,
      reason: "CrossNamespaceNotAllowed",
      names: ["spec.backupJobNamespace", "--allowed-namespaces team-a:db"]
    },
    {
      case: "a pair for another source namespace (tenant b's grant is not tenant a's)",
      spec: { backupJobNamespace: "db", dbPasswordSecretNamespace: "db" },
      settings: { ...defaults, allowedNamespaces: [{ from: "team-b", to: "db" }] },
      reason: "CrossNamespaceNotAllowed",
      names: ["spec.backupJobNamespace"]
    },
    {
      case: "a Secret namespace without a pair",
      spec: { dbPasswordSecretNamespace: "db" },
      settings: defaults,
      reason: "CrossNamespaceNotAllowed",
      names: ["spec.dbPasswordSecretNamespace"]
    },
    {
      case: "a Secret namespace other than the Job's",
      spec: { dbPasswordSecretNamespace: "db" },
      settings: { ...defaults, allowedNamespaces: [{ from: "team-a", to: "db" }] },
      reason: "SecretNamespaceMismatch",
      names: ['"team-a"', '"db"']
    },
    {
      case: "a floor of verify-ca without a CA (the CRD refuses only an explicit verify-ca without one)",
      spec: {},
      settings: { ...defaults, minSslMode: "verify-ca" },
      reason: "SslRootCertRequired",
      names: ["spec.sslRootCert", "--min-ssl-mode", "verify-full"]
    },
    {
      case: "sslMode below the minimum",
      spec: { sslMode: "prefer" },
      settings: { ...defaults, minSslMode: "verify-full" },
      reason: "SslModeNotAllowed",
      names: ["spec.sslMode", "--min-ssl-mode", "verify-full"]
    }
  ] as const)("refuses $case", ({ spec, settings, reason, names }) => {
    const decided = access(resource(spec), settings)
    expect(decided._tag).toBe("Refused")
    if (decided._tag !== "Refused") return
    expect(decided.reason).toBe(reason)
    for (const name of names) expect(decided.message).toContain(name)
  })
})

describe("consentProblem", () => {
  const use = { ...password, namespace: "db" }
  const orders = { namespace: "team-a", name: "orders" }

  it.each([
    ["the namespace", "team-a"],
    ["the resource", "team-a/orders"],
    ["a list with spaces", " team-b , team-a/orders "]
  ])("consents when the annotation names %s", (_, value) => {
    expect(consentProblem({ [usableByAnnotation]: value }, use, orders)).toBeUndefined()
  })

  it.each([
    ["no annotations", undefined],
    ["another namespace", { [usableByAnnotation]: "team-b" }],
    ["another resource", { [usableByAnnotation]: "team-a/invoices" }],
    ["a prefix of the namespace", { [usableByAnnotation]: "team" }],
    ["the annotation on another key", { "backup.csyeteam03.xyz/other": "team-a" }]
  ])("refuses with %s, naming the Secret, the field and what to add", (_, annotations) => {
    const problem = consentProblem(annotations, use, orders)
    expect(problem).toContain("Secret db/backup-secret (spec.dbPasswordSecretName)")
    expect(problem).toContain(`"team-a" or "team-a/orders"`)
    expect(problem).toContain(usableByAnnotation)
  })
})
