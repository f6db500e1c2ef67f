import { FakePostgres, runProcess } from "@db-backup-operator/testing"
import { NodeServices } from "@effect/platform-node"
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"

// The host's psql (libpq 15, which has no require_auth) is the victim: what it does here is
// what any client with libpq's defaults does when a resource points it at someone else's server.
const psql = "/usr/lib/postgresql/15/bin/psql"
const password = "victim-Pa55word"

const connect = (fake: { readonly host: string; readonly port: number }, sslmode: string) =>
  runProcess(psql, ["--no-psqlrc", "--no-password", "--command=SELECT 1"], {
    env: {
      PGHOST: fake.host,
      PGPORT: String(fake.port),
      PGUSER: "app",
      PGDATABASE: "shop",
      PGPASSWORD: password,
      PGSSLMODE: sslmode,
      PGCONNECT_TIMEOUT: "10",
      PGAPPNAME: "fake-postgres-test"
    },
    timeout: "30 seconds"
  })

describe("FakePostgres", () => {
  layer(Layer.mergeAll(FakePostgres.layer, NodeServices.layer), { timeout: "60 seconds", excludeTestServices: true })(
    (it) => {
      it.effect("gets the password from a client with libpq's default sslmode=prefer", () =>
        Effect.gen(function* () {
          const fake = yield* FakePostgres
          assert.strictEqual(fake.host, "127.0.0.1")
          assert.isAbove(fake.port, 0)
          const before = yield* fake.connections
          const result = yield* connect(fake, "prefer")
          assert.notStrictEqual(result.exitCode, 0)
          assert.include(result.stderr, 'password authentication failed for user "app"')
          assert.deepStrictEqual(yield* fake.passwords, [password])
          assert.strictEqual((yield* fake.connections) - before, 1)
          assert.deepInclude(yield* fake.startups, {
            user: "app",
            database: "shop",
            applicationName: "fake-postgres-test"
          })
        })
      )

      it.effect("gets nothing from a client with sslmode=require: it asks for TLS, is declined and stops", () =>
        Effect.gen(function* () {
          const fake = yield* FakePostgres
          const passwordsBefore = (yield* fake.passwords).length
          const [connections, sslRequests, startups] = [
            yield* fake.connections,
            yield* fake.sslRequests,
            (yield* fake.startups).length
          ]
          const result = yield* connect(fake, "require")
          assert.notStrictEqual(result.exitCode, 0)
          assert.include(result.stderr, "server does not support SSL, but SSL was required")
          assert.strictEqual((yield* fake.passwords).length, passwordsBefore)
          assert.strictEqual((yield* fake.connections) - connections, 1)
          assert.strictEqual((yield* fake.sslRequests) - sslRequests, 1)
          assert.strictEqual((yield* fake.startups).length, startups)
        })
      )
    }
  )
})
