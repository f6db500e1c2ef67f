import { stat } from "node:fs/promises"
import { checkRootCertPem, writeRootCert } from "@db-backup-operator/runner"
import { NodeServices } from "@effect/platform-node"
import { assert, describe, expect, it } from "@effect/vitest"
import { Effect, FileSystem, Result } from "effect"

// A throwaway self-signed CA certificate (its key was discarded): public material only.
const caPem = `-----BEGIN CERTIFICATE-----
MIIBkzCCATmgAwIBAgIUEymvbhYAe1tDklIMqbSVctNFXagwCgYIKoZIzj0EAwIw
HjEcMBoGA1UEAwwTcnVubmVyLXVuaXQtdGVzdC1jYTAgFw0yNjEyMDIxMjU1NTda
GA8yMTI2MTEwODEyNTU1N1owHjEcMBoGA1UEAwwTcnVubmVyLXVuaXQtdGVzdC1j
YTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABNoYy5+/gMULT8a0q+llUNedgUoZ
o+FATV/4QcVv2rl4nQpsY93UMworKnguy9EGof2jiX//Wtqf8mwJiC+tsPajUzBR
MB0GA1UdDgQWBBR3SPr8ife1AC5rjWkA6PxZSL+loDAfBgNVHSMEGDAWgBR3SPr8
ife1AC5rjWkA6PxZSL+loDAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gA
MEUCIQDp9YTdSw1kZAj4nCaRrymtRc+2KdS1UKoRrCRqbAU6MQIgL/8Jt3nf+OfR
HQb8nT/5WWn58XEL7tM8eiZr4aSH/Is=
-----END CERTIFICATE-----
`
const secretLooking =
  "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgSECRETSECRET\n-----END PRIVATE KEY-----\n"

const failureOf = (pem: string) => {
  const result = checkRootCertPem(pem)
  if (Result.isSuccess(result)) throw new Error("expected a failure")
  return result.failure
}

describe("checkRootCertPem", () => {
  it("accepts one certificate, a bundle, CRLF line ends and surrounding blank lines", () => {
    expect(checkRootCertPem(caPem)).toEqual(Result.succeed(1))
    expect(checkRootCertPem(`${caPem}\n${caPem}`)).toEqual(Result.succeed(2))
    expect(checkRootCertPem(`\n\n${caPem.replaceAll("\n", "\r\n")}\n`)).toEqual(Result.succeed(1))
    expect(checkRootCertPem(caPem.replaceAll("CERTIFICATE", "TRUSTED CERTIFICATE"))).toEqual(Result.succeed(1))
  })

  it.each([
    ["text that is no PEM at all", "this is not a certificate", "has no PEM certificate"],
    ["a private key", secretLooking, "has no PEM certificate"],
    ["a certificate with a key beside it", `${caPem}${secretLooking}`, "holds something besides PEM certificates"],
    [
      "a damaged certificate",
      caPem.replace("MIIBkzCCATmgAwIBAgIU", "MIIBkzCCATmgAwIBAgXX"),
      "has a certificate that cannot be read (number 1 of 1)"
    ],
    ["a truncated certificate", caPem.slice(0, 200), "has no PEM certificate"]
  ])("rejects %s, naming the variable and the spec field but not the content", (_, pem, why) => {
    const error = failureOf(pem)
    expect(error._tag).toBe("InvalidConfiguration")
    expect(error.message).toBe(
      `DB_SSL_ROOT_CERT (from spec.sslRootCert) ${why}: it must hold the PEM certificate of the CA that issued the database server's certificate ("-----BEGIN CERTIFICATE-----" ...)`
    )
    expect(error.message).not.toContain("SECRET")
    expect(error.message).not.toContain("MIIB")
  })
})

describe("writeRootCert", () => {
  it.effect("writes the CA with mode 0600 into a private temporary directory, removed with the scope", () =>
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const file = yield* Effect.scoped(
        Effect.gen(function* () {
          const file = yield* writeRootCert(caPem)
          assert.strictEqual(yield* fs.readFileString(file), caPem)
          assert.strictEqual((yield* Effect.promise(() => stat(file))).mode & 0o777, 0o600)
          const dir = file.slice(0, file.lastIndexOf("/"))
          assert.strictEqual((yield* Effect.promise(() => stat(dir))).mode & 0o077, 0)
          return file
        })
      )
      assert.isFalse(yield* fs.exists(file))
      assert.isFalse(yield* fs.exists(file.slice(0, file.lastIndexOf("/"))))
    }).pipe(Effect.provide(NodeServices.layer))
  )

  it.effect("writes nothing for content that is not a certificate", () =>
    Effect.gen(function* () {
      const error = yield* Effect.scoped(writeRootCert("nonsense")).pipe(Effect.flip)
      assert.strictEqual(error._tag, "InvalidConfiguration")
    }).pipe(Effect.provide(NodeServices.layer))
  )
})
