import { stat } from "node:fs/promises"
import { makeTestPki, Postgres, runProcess } from "@db-backup-operator/testing"
import { NodeServices } from "@effect/platform-node"
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"

const psql = "/usr/lib/postgresql/15/bin/psql"

/** Connects as the superuser with the given TLS settings; returns psql's output. */
const connect = (pg: { readonly env: Record<string, string> }, tls: Record<string, string>) =>
  runProcess(
    psql,
    ["--no-psqlrc", "--no-password", "-At", "--command=SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"],
    {
      env: { ...pg.env, PGDATABASE: "postgres", PGCONNECT_TIMEOUT: "10", ...tls },
      timeout: "30 seconds"
    }
  )

describe("Postgres with TLS", () => {
  layer(Layer.mergeAll(Postgres.layerWith({ tls: true }), NodeServices.layer), {
    timeout: "120 seconds",
    excludeTestServices: true
  })((it) => {
    it.effect("serves TLS with a certificate for 127.0.0.1 from its own CA, and its helpers verify it", () =>
      Effect.gen(function* () {
        const pg = yield* Postgres
        assert.isDefined(pg.tls)
        const tls = pg.tls ?? { caPem: "", caFile: "", subjectAltNames: [] }
        assert.match(tls.caPem, /^-----BEGIN CERTIFICATE-----\n/u)
        assert.deepStrictEqual(tls.subjectAltNames, ["IP:127.0.0.1", "DNS:localhost"])
        assert.strictEqual(pg.env.PGSSLMODE, "verify-full")
        assert.strictEqual(pg.env.PGSSLROOTCERT, tls.caFile)
        assert.strictEqual(yield* pg.psql("SHOW ssl"), "on")
        assert.strictEqual(yield* pg.psql("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"), "t")
      })
    )

    it.effect("keeps the server key private to the postgres user (the server refuses anything else)", () =>
      Effect.gen(function* () {
        const pg = yield* Postgres
        const keyFile = yield* pg.psql("SHOW ssl_key_file")
        const info = yield* Effect.promise(() => stat(keyFile))
        assert.strictEqual(info.mode & 0o777, 0o600)
        const uid = Number((yield* runProcess("id", ["-u", "postgres"])).stdout.trim())
        if (process.getuid?.() === 0) assert.strictEqual(info.uid, uid)
      })
    )

    it.effect("is verified by libpq with its CA, and rejected with another CA or another host name", () =>
      Effect.gen(function* () {
        const pg = yield* Postgres
        const caFile = pg.tls?.caFile ?? ""
        const good = yield* connect(pg, { PGSSLMODE: "verify-full", PGSSLROOTCERT: caFile })
        assert.strictEqual(good.exitCode, 0, good.stderr)
        assert.strictEqual(good.stdout.trim(), "t")

        const wrong = yield* Effect.scoped(
          Effect.gen(function* () {
            const pki = yield* makeTestPki({ commonName: "someone-else" })
            return yield* connect(pg, { PGSSLMODE: "verify-ca", PGSSLROOTCERT: pki.ca.certFile })
          })
        )
        assert.notStrictEqual(wrong.exitCode, 0)
        assert.include(wrong.stderr, "certificate verify failed")

        // The same server under a name its certificate does not carry (hostaddr: no DNS needed).
        const misnamed = yield* connect(pg, {
          PGHOST: "db.example.test",
          PGHOSTADDR: "127.0.0.1",
          PGSSLMODE: "verify-full",
          PGSSLROOTCERT: caFile
        })
        assert.notStrictEqual(misnamed.exitCode, 0)
        assert.match(misnamed.stderr, /server certificate for .* does not match host name "db\.example\.test"/u)

        const plain = yield* connect(pg, { PGSSLMODE: "disable" })
        assert.strictEqual(plain.exitCode, 0, plain.stderr)
        assert.strictEqual(plain.stdout.trim(), "f")
      })
    )
  })
})

describe("Postgres with TLS for other names", () => {
  layer(Layer.mergeAll(Postgres.layerWith({ tls: { subjectAltNames: ["DNS:db.example.test"] } }), NodeServices.layer), {
    timeout: "120 seconds",
    excludeTestServices: true
  })((it) => {
    it.effect("serves a certificate for those names only; its helpers check the CA but not the name", () =>
      Effect.gen(function* () {
        const pg = yield* Postgres
        assert.deepStrictEqual(pg.tls?.subjectAltNames, ["DNS:db.example.test"])
        assert.strictEqual(pg.env.PGSSLMODE, "verify-ca")
        assert.strictEqual(yield* pg.psql("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"), "t")
        const misnamed = yield* connect(pg, { PGSSLMODE: "verify-full", PGSSLROOTCERT: pg.tls?.caFile ?? "" })
        assert.notStrictEqual(misnamed.exitCode, 0)
        assert.match(
          misnamed.stderr,
          /server certificate for "db\.example\.test".* does not match host name "127\.0\.0\.1"/u
        )
      })
    )
  })
})
