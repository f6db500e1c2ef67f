import { existsSync } from "node:fs"
import type { PostgresShape } from "@db-backup-operator/testing"
import { Effect } from "effect"

// The database the runner benchmark dumps: one table in one schema, about N MB of plain SQL.

export const role = "bench"
export const rolePassword = "bench-password"
export const database = "bench"
export const schema = "data"

/** Approximate bytes one generated row takes in the plain dump. */
const bytesPerRow = 190
const rowsPerBatch = 250_000

/** How to run pg_dump on the generated schema, the way the runner does (plain format, one schema). */
export interface DumpCommand {
  readonly pgDump: string
  readonly args: ReadonlyArray<string>
  readonly env: NodeJS.ProcessEnv
}

export const dumpCommand = (pg: PostgresShape): DumpCommand => {
  const major = pg.version.split(".")[0] ?? ""
  const local = `/usr/lib/postgresql/${major}/bin/pg_dump`
  return {
    pgDump: existsSync(local) ? local : "pg_dump",
    args: [
      `--host=${pg.host}`,
      `--port=${pg.port}`,
      `--username=${role}`,
      `--dbname=${database}`,
      `--schema="${schema}"`,
      "--no-password",
      "--format=plain"
    ],
    env: { ...process.env, PGPASSWORD: rolePassword, PGCONNECT_TIMEOUT: "30" }
  }
}

/** Creates the role, database and schema, and fills one table with about `sizeMb` MB of dump. */
export const generate = (pg: PostgresShape, sizeMb: number) =>
  Effect.gen(function* () {
    console.log(`generating ~${sizeMb} MB in schema ${schema} (PostgreSQL ${pg.version}) ...`)
    const started = performance.now()
    yield* pg.createRole(role, rolePassword)
    yield* pg.createDatabase(database, { owner: role })
    yield* pg.createSchema(database, schema, { owner: role })
    const asRole = { database, user: role, password: rolePassword }
    yield* pg.psql(
      `CREATE TABLE ${schema}.orders (
         id bigint PRIMARY KEY, created timestamptz NOT NULL, customer text NOT NULL, email text,
         amount numeric(12,2) NOT NULL, status text NOT NULL, payload text NOT NULL)`,
      asRole
    )
    const rows = Math.max(1000, Math.round((sizeMb * 1_000_000) / bytesPerRow))
    for (let first = 1; first <= rows; first += rowsPerBatch) {
      const last = Math.min(rows, first + rowsPerBatch - 1)
      yield* pg.psql(
        `INSERT INTO ${schema}.orders
         SELECT g, timestamptz '2024-01-01' + g * interval '17 seconds',
                'customer ' || (g % 100000), 'user' || (g % 100000) || '@example.com',
                (g % 100000) / 100.0, (ARRAY['new','paid','shipped','returned'])[1 + g % 4],
                md5(g::text) || md5((g * 31)::text) || repeat(' lorem ipsum', 1 + g % 5)
         FROM generate_series(${first}, ${last}) AS g`,
        asRole
      )
    }
    yield* pg.psql("VACUUM ANALYZE", asRole)
    const tableSize = yield* pg.psql(`SELECT pg_size_pretty(pg_total_relation_size('${schema}.orders'))`, asRole)
    console.log(`${rows} rows, table ${tableSize.trim()}, in ${((performance.now() - started) / 1000).toFixed(1)} s`)
    return rows
  })
