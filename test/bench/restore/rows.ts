import type { PostgresShape } from "@db-backup-operator/testing"
import { Effect } from "effect"

// Whether a restore really restored: the rows of every table of the schema, counted.

/** `table rows` per line, sorted: each table of `schema` in `database` with its count(*). */
export const rowCounts = (pg: PostgresShape, database: string, schema: string) =>
  pg
    .psql(
      `SELECT c.relname || ' ' || (xpath('/row/n/text()',
                query_to_xml(format('SELECT count(*) AS n FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = ${`'${schema.replace(/'/gu, "''")}'`} AND c.relkind IN ('r', 'p')
       ORDER BY c.relname`,
      { database }
    )
    .pipe(Effect.map((out) => out.split("\n").filter((line) => line !== "")))

/** Fails unless the restored database's tables hold the source's rows, table by table. */
export const checkRows = (
  pg: PostgresShape,
  restored: string,
  schema: string,
  source: ReadonlyArray<string>,
  label: string
) =>
  Effect.gen(function* () {
    const counts = yield* rowCounts(pg, restored, schema)
    if (source.length === 0 || counts.join("\n") !== source.join("\n")) {
      return yield* Effect.fail(
        new Error(
          `${label}: database ${restored} does not hold the source's rows: restored [${counts.join(", ")}], source [${source.join(", ")}]`
        )
      )
    }
    return counts
  })
