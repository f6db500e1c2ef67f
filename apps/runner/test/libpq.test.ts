import { Tls } from "@db-backup-operator/backup-api/contract"
import {
  type LibpqSettings,
  libpqEnv,
  oldLibpqWarning,
  refusesCleartextPassword,
  rootCertSource,
  toolsMajorOf,
  withoutInheritedLibpqVariables
} from "@db-backup-operator/runner"
import { describe, expect, it } from "@effect/vitest"
import { Redacted, Result } from "effect"

const password = Redacted.make("s3cret-Pa55", { label: "PGPASSWORD" })
const caFile = "/tmp/db-backup-runner-abc/root.crt"
const modes = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] as const

const settings = (overrides: Partial<LibpqSettings>): LibpqSettings => ({
  password,
  sslMode: "prefer",
  rootCertFile: undefined,
  allowCleartextPassword: false,
  toolsMajor: 17,
  ...overrides
})

/** libpqEnv's success without the password (compared separately: it must stay the Redacted given). */
const envOf = (input: LibpqSettings) => {
  const result = libpqEnv(input)
  if (Result.isFailure(result)) throw new Error(`unexpected failure: ${result.failure.message}`)
  const { PGPASSWORD, ...rest } = result.success
  expect(PGPASSWORD).toBe(password)
  return rest
}

const base = { PGCONNECT_TIMEOUT: "30", PGAPPNAME: "db-backup-runner" }

describe("libpqEnv", () => {
  it.each<[string, Partial<LibpqSettings>, Record<string, string>]>([
    ["libpq's default mode refuses cleartext", {}, { ...base, PGSSLMODE: "prefer", PGREQUIREAUTH: "!password" }],
    [
      "disable refuses cleartext even when the operator allows it",
      { sslMode: "disable", allowCleartextPassword: true },
      { ...base, PGSSLMODE: "disable", PGREQUIREAUTH: "!password" }
    ],
    [
      "prefer refuses cleartext even when the operator allows it (the server may decline TLS)",
      { sslMode: "prefer", allowCleartextPassword: true },
      { ...base, PGSSLMODE: "prefer", PGREQUIREAUTH: "!password" }
    ],
    [
      "require without the operator's permission refuses cleartext",
      { sslMode: "require" },
      { ...base, PGSSLMODE: "require", PGREQUIREAUTH: "!password" }
    ],
    [
      "require with the operator's permission allows cleartext (always encrypted)",
      { sslMode: "require", allowCleartextPassword: true },
      { ...base, PGSSLMODE: "require" }
    ],
    [
      "require with a CA passes it on (libpq then checks the CA too)",
      { sslMode: "require", rootCertFile: caFile },
      { ...base, PGSSLMODE: "require", PGSSLROOTCERT: caFile, PGREQUIREAUTH: "!password" }
    ],
    [
      "verify-ca with the Job's CA",
      { sslMode: "verify-ca", rootCertFile: caFile },
      { ...base, PGSSLMODE: "verify-ca", PGSSLROOTCERT: caFile, PGREQUIREAUTH: "!password" }
    ],
    [
      "verify-full with the Job's CA and cleartext allowed (LDAP behind TLS)",
      { sslMode: "verify-full", rootCertFile: caFile, allowCleartextPassword: true },
      { ...base, PGSSLMODE: "verify-full", PGSSLROOTCERT: caFile }
    ],
    [
      "verify-full without a CA trusts the system's CAs (libpq 16+)",
      { sslMode: "verify-full", toolsMajor: 16 },
      { ...base, PGSSLMODE: "verify-full", PGSSLROOTCERT: "system", PGREQUIREAUTH: "!password" }
    ],
    [
      "old tools still get PGREQUIREAUTH (ignored there, harmless)",
      { sslMode: "prefer", toolsMajor: 15 },
      { ...base, PGSSLMODE: "prefer", PGREQUIREAUTH: "!password" }
    ],
    [
      "old tools with a CA",
      { sslMode: "verify-full", rootCertFile: caFile, toolsMajor: 15 },
      { ...base, PGSSLMODE: "verify-full", PGSSLROOTCERT: caFile, PGREQUIREAUTH: "!password" }
    ]
  ])("%s", (_, overrides, expected) => {
    expect(envOf(settings(overrides))).toEqual(expected)
  })

  it.each<[string, Partial<LibpqSettings>, RegExp]>([
    [
      "verify-ca without a CA (libpq accepts the system's CAs only with verify-full)",
      { sslMode: "verify-ca" },
      /^spec\.sslMode is verify-ca but spec\.sslRootCert is not set: .*set spec\.sslRootCert, or use sslMode verify-full/u
    ],
    [
      "verify-ca without a CA on old tools",
      { sslMode: "verify-ca", toolsMajor: 15 },
      /^spec\.sslMode is verify-ca but spec\.sslRootCert is not set/u
    ],
    [
      "verify-full without a CA on tools that cannot read the system's CAs",
      { sslMode: "verify-full", toolsMajor: 15 },
      /^spec\.sslMode is verify-full but spec\.sslRootCert is not set, and the PostgreSQL 15 client tools here cannot use the system's trusted CAs \(libpq 16 or newer can; the runner image ships 17\): set spec\.sslRootCert/u
    ]
  ])("fails clearly: %s", (_, overrides, message) => {
    const result = libpqEnv(settings(overrides))
    expect(Result.isFailure(result)).toBe(true)
    if (Result.isFailure(result)) {
      expect(result.failure._tag).toBe("InvalidConfiguration")
      expect(result.failure.message).toMatch(message)
      expect(result.failure.message).not.toContain("\n")
    }
  })

  it("sets PGREQUIREAUTH exactly unless cleartext is allowed on an always-encrypted connection", () => {
    for (const sslMode of modes) {
      for (const allowCleartextPassword of [false, true]) {
        for (const toolsMajor of [15, 16, 17]) {
          for (const rootCertFile of [undefined, caFile]) {
            const result = libpqEnv(settings({ sslMode, allowCleartextPassword, toolsMajor, rootCertFile }))
            if (Result.isFailure(result)) continue
            const allowed = allowCleartextPassword && Tls.guaranteesEncryption(sslMode)
            expect(result.success.PGREQUIREAUTH, `${sslMode} ${allowCleartextPassword}`).toBe(
              allowed ? undefined : "!password"
            )
            expect(result.success.PGSSLMODE).toBe(sslMode)
            expect(refusesCleartextPassword({ sslMode, allowCleartextPassword })).toBe(!allowed)
          }
        }
      }
    }
  })

  it("never puts the password in clear text into the environment it returns", () => {
    const env = libpqEnv(settings({}))
    expect(JSON.stringify(env)).not.toContain("s3cret-Pa55")
  })
})

describe("rootCertSource and toolsMajorOf", () => {
  it("takes the Job's CA, else the system's for verifying modes, else none", () => {
    expect(rootCertSource({ sslMode: "prefer", rootCertFile: caFile })).toBe("file")
    expect(rootCertSource({ sslMode: "verify-full", rootCertFile: undefined })).toBe("system")
    expect(rootCertSource({ sslMode: "verify-ca", rootCertFile: undefined })).toBe("system")
    expect(rootCertSource({ sslMode: "require", rootCertFile: undefined })).toBe("none")
  })

  it.each([
    [170004, 17],
    [160000, 16],
    [150018, 15],
    [90624, 9]
  ])("toolsMajorOf(%d) = %d", (versionNum, major) => {
    expect(toolsMajorOf(versionNum)).toBe(major)
  })
})

describe("oldLibpqWarning", () => {
  const tool = { toolVersion: "pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)" }

  it("warns on libpq older than 16, naming the tools, the risk and the fix, in one line", () => {
    const warning = oldLibpqWarning({ ...tool, sslMode: "prefer", allowCleartextPassword: false, toolsMajor: 15 })
    expect(warning).toBe(
      "the client tools here (pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)) use libpq 15, which cannot refuse to send the password in cleartext (require_auth needs libpq 16): a server could obtain the password in cleartext unless spec.sslMode is require or stricter (it is prefer); the runner image ships PostgreSQL 17 client tools"
    )
  })

  it("stays silent with libpq 16 or newer, or when cleartext is allowed anyway", () => {
    expect(
      oldLibpqWarning({ ...tool, sslMode: "prefer", allowCleartextPassword: false, toolsMajor: 16 })
    ).toBeUndefined()
    expect(
      oldLibpqWarning({ ...tool, sslMode: "prefer", allowCleartextPassword: false, toolsMajor: 17 })
    ).toBeUndefined()
    expect(
      oldLibpqWarning({ ...tool, sslMode: "verify-full", allowCleartextPassword: true, toolsMajor: 15 })
    ).toBeUndefined()
    expect(
      oldLibpqWarning({ ...tool, sslMode: "require", allowCleartextPassword: false, toolsMajor: 15 })
    ).toBeDefined()
  })
})

describe("withoutInheritedLibpqVariables", () => {
  it("unsets every PG* variable of the runner's environment that the tool's settings do not set", () => {
    const inherited = {
      PATH: "/usr/bin",
      HOME: "/nonexistent",
      PGSSLMODE: "disable",
      PGREQUIREAUTH: "password",
      PGSERVICE: "elsewhere",
      PGHOSTADDR: "10.9.9.9",
      PGPASSWORD: "from-the-pod",
      PGSSLROOTCERT: "/attacker/ca.crt",
      PG_COLOR: "always"
    }
    expect(withoutInheritedLibpqVariables({ PGSSLMODE: "verify-full", PGPASSWORD: password }, inherited)).toEqual({
      PGSSLMODE: "verify-full",
      PGPASSWORD: password,
      PGREQUIREAUTH: undefined,
      PGSERVICE: undefined,
      PGHOSTADDR: undefined,
      PGSSLROOTCERT: undefined,
      PG_COLOR: undefined
    })
  })
})
