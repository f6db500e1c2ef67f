import { execFile } from "node:child_process"
import { existsSync } from "node:fs"
import { Validation } from "@db-backup-operator/backup-api"
import { pgDumpArgs } from "@db-backup-operator/runner"
import { Postgres } from "@db-backup-operator/testing"
import { assert, layer } from "@effect/vitest"
import { Effect, Schema } from "effect"
import fc from "fast-check"

// Property-based, against the real tools: whatever names a resource may carry
// (every string the CRD accepts for dbName, dbUser and dbSchema), the
// arguments the runner builds make the real pg_dump connect to exactly that
// database as exactly that role, and dump exactly that schema. A value read
// as a connection string, an option, a pattern or a truncated name fails a
// case, and fast-check prints the smallest one it finds.

/** Pieces that mean something to libpq, to pg_dump's patterns or to SQL, plus multi-byte text. */
const tricky = [
  "=",
  "'",
  "\\",
  " ",
  '"',
  "*",
  "?",
  ".",
  "-",
  "--",
  "$",
  ",",
  "/",
  ":",
  "@",
  "|",
  "postgres://",
  "postgresql://x/",
  "host=",
  "dbname=",
  "A",
  "a",
  "z",
  "0",
  "é",
  "日本",
  "😀"
]
const isIdentifier = Schema.is(Validation.PgIdentifier)
/** Strings the CRD accepts for a database, role or schema name (and that PostgreSQL does not reserve). */
const identifier = fc
  .array(fc.oneof(fc.constantFrom(...tricky), fc.string({ minLength: 1, maxLength: 4 })), {
    minLength: 1,
    maxLength: 40
  })
  .map((pieces) => pieces.join(""))
  .filter((name) => isIdentifier(name) && !name.startsWith("pg_") && name !== "public")

const quoteIdent = (name: string) => `"${name.replaceAll('"', '""')}"`
const quoteLiteral = (text: string) => `'${text.replaceAll("'", "''")}'`

const decoy = "zz_decoy"

layer(Postgres.layer, { timeout: "5 minutes", excludeTestServices: true })("the runner's pg_dump arguments", (it) => {
  it.effect("connect to exactly the named database as exactly the named role, and dump exactly the named schema", () =>
    Effect.gen(function* () {
      const pg = yield* Postgres
      const major = pg.version.split(".")[0] ?? ""
      const local = `/usr/lib/postgresql/${major}/bin/pg_dump`
      const pgDump = existsSync(local) ? local : "pg_dump"
      const password = "property-Passw0rd"
      let cases = 0

      const check = (names: { readonly database: string; readonly role: string; readonly schema: string }) => {
        const { database, role, schema } = names
        return Effect.gen(function* () {
          cases += 1
          yield* pg.psql(`CREATE ROLE ${quoteIdent(role)} LOGIN PASSWORD ${quoteLiteral(password)}`)
          yield* pg.psql(`CREATE DATABASE ${quoteIdent(database)} OWNER ${quoteIdent(role)}`)
          // The schema, and a decoy that a name read as a pattern (`*`, `?`, `.`) could also match.
          yield* pg.psql(
            `CREATE SCHEMA ${quoteIdent(schema)} AUTHORIZATION ${quoteIdent(role)};
               CREATE TABLE ${quoteIdent(schema)}.t (id int);
               ALTER TABLE ${quoteIdent(schema)}.t OWNER TO ${quoteIdent(role)};
               CREATE SCHEMA ${decoy} AUTHORIZATION ${quoteIdent(role)};`,
            { database }
          )
          // What the server stored: a name it had to truncate is not the name the resource gives.
          const stored = yield* pg.psql(
            `SELECT (SELECT rolname FROM pg_roles WHERE rolname = ${quoteLiteral(role)}) IS NOT NULL
                  AND (SELECT datname FROM pg_database WHERE datname = ${quoteLiteral(database)}) IS NOT NULL`
          )
          const args = pgDumpArgs({ host: pg.host, port: pg.port, user: role, database }, schema)
          const result = yield* Effect.callback<{
            readonly code: number
            readonly stdout: string
            readonly stderr: string
          }>((resume) => {
            execFile(
              pgDump,
              [...args],
              // Only the password reaches libpq from the environment: nothing else may pick the target.
              { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", PGPASSWORD: password }, maxBuffer: 64 * 1024 * 1024 },
              (error, stdout, stderr) =>
                resume(Effect.succeed({ code: error === null ? 0 : Number(error.code ?? 1), stdout, stderr }))
            )
          })
          assert.strictEqual(stored, "t", `the server did not store the names as given: ${JSON.stringify(names)}`)
          assert.strictEqual(result.code, 0, `${JSON.stringify(names)}: ${result.stderr}`)
          const schemas = result.stdout.split("\n").filter((line) => line.startsWith("CREATE SCHEMA "))
          assert.strictEqual(schemas.length, 1, `${JSON.stringify(names)}: ${schemas.join(" | ")}`)
          assert.notInclude(schemas[0] ?? "", decoy)
          return true
        }).pipe(
          // Databases and roles are cluster-wide: each case (and each of fast-check's shrunk retries)
          // starts clean, whether it passed or not.
          Effect.ensuring(
            pg
              .psql(`DROP DATABASE IF EXISTS ${quoteIdent(database)}; DROP ROLE IF EXISTS ${quoteIdent(role)};`)
              .pipe(Effect.ignore)
          )
        )
      }

      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(fc.record({ database: identifier, role: identifier, schema: identifier }), (names) =>
            Effect.runPromise(check(names))
          ),
          {
            numRuns: 40,
            // At the limit, which is in bytes: 63 bytes of UTF-8 in fewer characters. (With 40 é, 80
            // bytes, the CRD used to accept a name PostgreSQL cuts short: found by this test.)
            examples: [
              [{ database: `d${"é".repeat(31)}`, role: `r${"日".repeat(20)}xy`, schema: `${"😀".repeat(15)}abc` }]
            ]
          }
        )
      )
      assert.isAtLeast(cases, 40)
    })
  )
})
