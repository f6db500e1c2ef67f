import { eventually, listProcesses, Postgres } from "@db-backup-operator/testing"
import { assert, describe, it, layer } from "@effect/vitest"
import { Context, Effect, Fiber, Layer } from "effect"

layer(Postgres.layer, { timeout: "120 seconds", excludeTestServices: true })("Postgres", (it) => {
  describe("a throwaway cluster", () => {
    it.effect("runs PostgreSQL 15 on 127.0.0.1 with a random password", () =>
      Effect.gen(function* () {
        const pg = yield* Postgres
        assert.strictEqual(pg.host, "127.0.0.1")
        assert.isAbove(pg.port, 0)
        assert.match(pg.version, /^15\.\d+$/u)
        assert.isAtLeast(pg.password.length, 16)
        assert.deepStrictEqual(pg.env, {
          PGHOST: "127.0.0.1",
          PGPORT: String(pg.port),
          PGUSER: "postgres",
          PGPASSWORD: pg.password
        })
        assert.isUndefined(pg.tls)
        assert.strictEqual(yield* pg.psql("SELECT 1 + 1"), "2")
        assert.strictEqual(yield* pg.psql("SHOW fsync"), "off")
      })
    )

    it.effect("creates a role, a database and a schema owned by it, and queries as that role", () =>
      Effect.gen(function* () {
        const pg = yield* Postgres
        const role = 'app "owner"'
        const password = "it's a \\ secret"
        yield* pg.createRole(role, password)
        yield* pg.createDatabase("shop", { owner: role })
        yield* pg.createSchema("shop", "orders", { owner: role })
        const as = { database: "shop", user: role, password }
        yield* pg.psql(
          "CREATE TABLE orders.items (id int PRIMARY KEY, name text); INSERT INTO orders.items VALUES (1, 'a'), (2, 'b')",
          as
        )
        assert.strictEqual(
          yield* pg.psql("SELECT current_user, count(*) FROM orders.items GROUP BY 1", as),
          `${role}|2`
        )
        const owner = yield* pg.psql("SELECT nspowner::regrole FROM pg_namespace WHERE nspname = 'orders'", {
          database: "shop"
        })
        assert.strictEqual(owner, '"app ""owner"""')
      })
    )

    it.effect("rejects a wrong password", () =>
      Effect.gen(function* () {
        const pg = yield* Postgres
        const error = yield* pg.psql("SELECT 1", { password: "wrong" }).pipe(Effect.flip)
        assert.strictEqual(error._tag, "PostgresError")
        assert.include(error.message, "password authentication failed")
      })
    )

    it.effect("restarts on the same port and data directory, cutting the sessions it had", () =>
      Effect.gen(function* () {
        const pg = yield* Postgres
        yield* pg.psql("CREATE TABLE kept (id int); INSERT INTO kept VALUES (42)")
        const startedBefore = yield* pg.psql("SELECT pg_postmaster_start_time()")
        const session = yield* pg.psql("SELECT pg_sleep(60)").pipe(Effect.flip, Effect.forkChild)
        yield* eventually(
          "the long session to run",
          Effect.map(pg.psql("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)'"), (n) =>
            n === "1" ? n : undefined
          )
        )
        yield* pg.restart
        // The session in flight was cut, not waited for (a fast shutdown).
        assert.include((yield* Fiber.join(session)).message, "terminating connection due to administrator command")
        // Same port, same data, a new postmaster.
        assert.strictEqual(yield* pg.psql("SELECT id FROM kept"), "42")
        assert.notStrictEqual(yield* pg.psql("SELECT pg_postmaster_start_time()"), startedBefore)
        assert.strictEqual(yield* pg.psql("SHOW port"), String(pg.port))
      })
    )

    it.effect("reports SQL errors with the server's message", () =>
      Effect.gen(function* () {
        const pg = yield* Postgres
        const error = yield* pg.psql("SELECT * FROM missing_table").pipe(Effect.flip)
        assert.include(error.message, 'relation "missing_table" does not exist')
      })
    )
  })
})

describe("Postgres teardown", () => {
  it.live(
    "stops the postmaster and all its backends when the layer is released",
    () =>
      Effect.gen(function* () {
        const pids = yield* Effect.scoped(
          Effect.gen(function* () {
            const pg = Context.get(yield* Layer.build(Postgres.layer), Postgres)
            yield* pg.psql("SELECT 1")
            const all = yield* listProcesses
            const postmaster = all.find(
              (p) => p.cmdline[0]?.endsWith("/postgres") === true && p.cmdline.includes(String(pg.port))
            )
            assert.isDefined(postmaster)
            const pid = postmaster?.pid ?? -1
            assert.strictEqual(postmaster?.pgid, pid, "the postmaster leads its own process group")
            // Backends call setsid(), so they are found by parent, not by group.
            const children = all.filter((p) => p.ppid === pid).map((p) => p.pid)
            assert.isAbove(children.length, 0, "auxiliary processes (checkpointer, walwriter, ...)")
            return [pid, ...children]
          })
        )
        const alive = (yield* listProcesses).filter((p) => pids.includes(p.pid) && p.state !== "Z")
        assert.deepStrictEqual(alive, [])
      }),
    120_000
  )
})
