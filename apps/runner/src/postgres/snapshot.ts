import { spawn } from "node:child_process"
import { createInterface } from "node:readline"
import type { ManifestTable } from "@db-backup-operator/backup-api/contract"
import { Data, Duration, Effect, type Scope } from "effect"
import { ToolUnavailable } from "../errors.ts"
import { oneLine, reasonFromStderr } from "../oneLine.ts"
import { type ChildEnv, started, stderrTailBytes, terminate, toolProcessEnv } from "../process.ts"
import { type Connection, connectionArgs } from "./commands.ts"

/**
 * An open read-only transaction whose snapshot pg_dump takes (`--snapshot`),
 * and the schema's row counts read in that same snapshot, while the dump runs.
 */
export interface ExportedSnapshot {
  /** The identifier for `pg_dump --snapshot`. */
  readonly id: string
  /** Every table of the schema with its rows, as the dump has them; fails with why they could not be counted. */
  readonly tables: Effect.Effect<ReadonlyArray<ManifestTable>, SnapshotUnavailable>
}

/** The snapshot could not be exported or counted in (a pooler in transaction mode, say). */
export class SnapshotUnavailable extends Data.TaggedError("SnapshotUnavailable")<{ readonly message: string }> {}

// Every line psql prints for us starts with a tag; table names are hex, so no name can look
// like one, or break a line. A failed export ends psql (ON_ERROR_STOP). The counts are one
// statement: all of them, then `counted`, or (if any fails) nothing; psql then goes on
// (ON_ERROR_ROLLBACK, set only after the export, which a subtransaction cannot do, rolls back
// just that statement), so the transaction, and the snapshot a dump may still import, survive.
const session = `BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;
SELECT 'snapshot', pg_catalog.pg_export_snapshot();
\\set ON_ERROR_STOP off
\\set ON_ERROR_ROLLBACK on
SELECT tag, name, rows FROM (
  SELECT 0 AS k, 'table' AS tag, pg_catalog.encode(pg_catalog.convert_to(c.relname, 'UTF8'), 'hex') AS name,
         (pg_catalog.xpath('/row/n/text()', pg_catalog.query_to_xml(
            pg_catalog.format('SELECT count(*) AS n FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text AS rows
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname = :'schema' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
  UNION ALL SELECT 1, 'counted', NULL, NULL
) AS counts ORDER BY k, name;
SELECT 'done';
`

/**
 * Opens a read-only repeatable-read transaction on the server, exports its
 * snapshot and counts the rows of every table of `schema` in it (concurrently
 * with the dump that imports the same snapshot). The transaction stays open
 * until the Scope closes: pg_dump can import the snapshot only while it is.
 *
 * @example
 * ```ts
 * declare const options: Parameters<typeof exportSnapshot>[0]
 * const snapshot = yield* exportSnapshot(options)
 * // pg_dump --snapshot=<snapshot.id> ...; then
 * const tables = yield* snapshot.tables // [{ name: "orders", rows: 6000 }, ...]
 * ```
 */
export const exportSnapshot = (options: {
  readonly psql: string
  readonly connection: Connection
  readonly env: ChildEnv
  readonly schema: string
}): Effect.Effect<ExportedSnapshot, SnapshotUnavailable | ToolUnavailable, Scope.Scope> =>
  Effect.gen(function* () {
    const child = yield* Effect.try({
      try: () =>
        spawn(
          options.psql,
          [
            ...connectionArgs(options.connection),
            "--no-password",
            "--no-psqlrc",
            "--tuples-only",
            "--no-align",
            "--field-separator=\t",
            "--quiet",
            "--set=ON_ERROR_STOP=1",
            `--set=schema=${options.schema}`,
            "--file=-"
          ],
          { env: toolProcessEnv(options.env), stdio: ["pipe", "pipe", "pipe"] }
        ),
      catch: (error) =>
        new ToolUnavailable({
          message: oneLine(`cannot start psql: ${error instanceof Error ? error.message : String(error)}`)
        })
    })
    // What psql said last, for the reason (bounded: only the tail is kept).
    let stderr = ""
    child.stderr?.on("data", (piece: Buffer) => {
      stderr = `${stderr}${piece.toString("utf8")}`.slice(-stderrTailBytes)
    })
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
    yield* Effect.addFinalizer(() => terminate(child, Duration.seconds(5)))
    yield* started(child, "psql")
    child.stdin?.on("error", () => {})
    // Sent at once; stdin stays open, and with it the transaction.
    child.stdin?.write(session)

    let resolveId: (id: string | undefined) => void = () => {}
    const id = new Promise<string | undefined>((resolve) => {
      resolveId = resolve
    })
    let resolveTables: (tables: ReadonlyArray<ManifestTable> | undefined) => void = () => {}
    const tables = new Promise<ReadonlyArray<ManifestTable> | undefined>((resolve) => {
      resolveTables = resolve
    })
    const counted: Array<ManifestTable> = []
    // Whatever did not come by psql's last answer (or its exit) will not come.
    const settle = () => {
      resolveId(undefined)
      resolveTables(undefined)
    }
    if (child.stdout !== null) {
      createInterface({ input: child.stdout }).on("line", (line) => {
        const [tag, first, second] = line.split("\t")
        if (tag === "snapshot" && first !== undefined) resolveId(first)
        else if (tag === "table" && first !== undefined && second !== undefined) {
          counted.push({ name: Buffer.from(first, "hex").toString("utf8"), rows: Number(second) })
        } else if (tag === "counted") resolveTables(counted)
        else if (tag === "done") settle()
      })
    }
    void exited.then(settle)
    const why = () => reasonFromStderr(stderr) ?? "psql gave no reason"
    const snapshotId = yield* Effect.promise(() => id)
    if (snapshotId === undefined) {
      return yield* new SnapshotUnavailable({ message: oneLine(`cannot export a snapshot: ${why()}`) })
    }
    return {
      id: snapshotId,
      tables: Effect.flatMap(
        Effect.promise(() => tables),
        (found) =>
          found === undefined
            ? Effect.fail(new SnapshotUnavailable({ message: oneLine(`cannot count the rows: ${why()}`) }))
            : Effect.succeed(found)
      )
    }
  })
