import { X509Certificate } from "node:crypto"
import { stat } from "node:fs/promises"
import { makeTestPki, runProcess } from "@db-backup-operator/testing"
import { NodeServices } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Effect, FileSystem } from "effect"

const verify = (caFile: string, certFile: string) =>
  runProcess("openssl", ["verify", "-CAfile", caFile, "-purpose", "sslserver", certFile]).pipe(
    Effect.map((result) => result.exitCode)
  )

describe("makeTestPki", () => {
  it.effect(
    "issues server certificates for 127.0.0.1 and localhost that only its own CA verifies",
    () =>
      Effect.gen(function* () {
        const pki = yield* makeTestPki({ commonName: "db-ca" })
        const other = yield* makeTestPki({ commonName: "someone-else" })
        const server = yield* pki.serverCertificate()

        const cert = new X509Certificate(server.certPem)
        const ca = new X509Certificate(pki.ca.certPem)
        assert.strictEqual(cert.subjectAltName, "IP Address:127.0.0.1, DNS:localhost")
        assert.isTrue(cert.checkIssued(ca))
        assert.isTrue(cert.verify(ca.publicKey))
        assert.isFalse(cert.ca)
        assert.isTrue(ca.ca)
        assert.isFalse(cert.checkIssued(new X509Certificate(other.ca.certPem)))
        assert.strictEqual(cert.checkIP("127.0.0.1"), "127.0.0.1")
        assert.strictEqual(cert.checkHost("localhost"), "localhost")

        assert.strictEqual(yield* verify(pki.ca.certFile, server.certFile), 0)
        assert.notStrictEqual(yield* verify(other.ca.certFile, server.certFile), 0)
        for (const key of [pki.ca.keyFile, server.keyFile]) {
          assert.strictEqual((yield* Effect.promise(() => stat(key))).mode & 0o777, 0o600, key)
        }
        assert.match(server.keyPem, /^-----BEGIN PRIVATE KEY-----/u)
      }).pipe(Effect.provide(NodeServices.layer)),
    60_000
  )

  it.effect(
    "issues certificates for other names, and removes its directory with the scope",
    () =>
      Effect.gen(function* () {
        const fs = yield* FileSystem.FileSystem
        const dir = yield* Effect.scoped(
          Effect.gen(function* () {
            const pki = yield* makeTestPki()
            const server = yield* pki.serverCertificate({
              name: "elsewhere",
              commonName: "db.example.test",
              subjectAltNames: ["DNS:db.example.test"]
            })
            const cert = new X509Certificate(server.certPem)
            assert.strictEqual(cert.subjectAltName, "DNS:db.example.test")
            assert.isUndefined(cert.checkIP("127.0.0.1"))
            assert.include(cert.subject, "CN=db.example.test")
            assert.isTrue(yield* fs.exists(pki.dir))
            return pki.dir
          })
        )
        assert.isFalse(yield* fs.exists(dir))
      }).pipe(Effect.provide(NodeServices.layer)),
    60_000
  )
})
