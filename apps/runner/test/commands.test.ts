import {
  dbnameArg,
  exactSchemaPattern,
  pgDumpArgs,
  reasonFromStderr,
  serverVersionArgs
} from "@db-backup-operator/runner"
import { describe, expect, it } from "@effect/vitest"

const connection = { host: "pg.postgres.svc", port: 5432, user: "team03", database: "api" }

describe("pg_dump and psql arguments", () => {
  it("dumps one schema in plain format, never asking for or carrying a password", () => {
    expect(pgDumpArgs(connection, "api")).toEqual([
      "--host=pg.postgres.svc",
      "--port=5432",
      "--username=team03",
      "--dbname=api",
      '--schema="api"',
      "--no-password",
      "--format=plain"
    ])
  })

  it("dumps a custom-format archive uncompressed (the runner compresses it), in the snapshot given", () => {
    const args = pgDumpArgs(connection, "api", { format: "custom", snapshot: "00000003-0000001B-1" })
    expect(args.slice(5)).toEqual([
      "--no-password",
      "--format=custom",
      "--compress=0",
      "--snapshot=00000003-0000001B-1"
    ])
    expect(args).not.toContain("--format=plain")
    expect(pgDumpArgs(connection, "api", { format: "plain" })).toEqual(pgDumpArgs(connection, "api"))
  })

  it("asks psql for server_version_num only", () => {
    const args = serverVersionArgs(connection)
    expect(args).toContain("--command=SHOW server_version_num")
    expect(args).toContain("--no-password")
    expect(args).toContain("--no-psqlrc")
    expect(args).toContain("--tuples-only")
  })

  it("keeps values attached to their option, so none can pass as an option", () => {
    const args = pgDumpArgs({ host: "--evil", port: 1, user: "-U", database: "-d" }, "--all")
    expect(args.every((arg) => arg.startsWith("--"))).toBe(true)
    expect(args).toContain("--host=--evil")
    expect(args).toContain('--schema="--all"')
  })

  it("matches the schema name exactly, not as a pattern", () => {
    expect(exactSchemaPattern("api")).toBe('"api"')
    expect(exactSchemaPattern("My*Schema?")).toBe('"My*Schema?"')
    expect(exactSchemaPattern('we"ird')).toBe('"we""ird"')
    expect(exactSchemaPattern("a.b")).toBe('"a.b"')
  })

  it("keeps a database name from being read as a connection string", () => {
    expect(dbnameArg("api")).toBe("api")
    expect(dbnameArg("host=evil")).toBe("dbname='host=evil'")
    expect(dbnameArg("postgresql://evil/db")).toBe("dbname='postgresql://evil/db'")
    expect(dbnameArg("it's=x\\y")).toBe("dbname='it\\'s=x\\\\y'")
  })
})

describe("reasonFromStderr", () => {
  it("takes the error line and drops the tool prefix", () => {
    expect(
      reasonFromStderr(
        'pg_dump: error: connection to server at "127.0.0.1", port 5432 failed: FATAL:  password authentication failed for user "u"\n'
      )
    ).toBe('connection to server at "127.0.0.1", port 5432 failed: FATAL: password authentication failed for user "u"')
  })

  it("prefers the first error over the lines that follow it", () => {
    const stderr = [
      "pg_dump: warning: there are circular foreign-key constraints on this table:",
      'pg_dump: error: Dumping the contents of table "t" failed: PQgetResult() failed.',
      "pg_dump: detail: Error message from server: FATAL:  terminating connection due to administrator command",
      "pg_dump: detail: Command was: COPY api.t (id, v) TO stdout;"
    ].join("\n")
    expect(reasonFromStderr(stderr)).toBe('Dumping the contents of table "t" failed: PQgetResult() failed.')
  })

  it("drops pg_restore's prefix too", () => {
    expect(reasonFromStderr("pg_restore: error: could not read from input file: end of file\n")).toBe(
      "could not read from input file: end of file"
    )
  })

  it("falls back to the last line, and to nothing", () => {
    expect(reasonFromStderr("something odd\nreally odd\n\n")).toBe("really odd")
    expect(reasonFromStderr("  \n")).toBeUndefined()
  })

  it("is one bounded line", () => {
    const reason = reasonFromStderr(`pg_dump: error: ${"x ".repeat(5000)}`)
    expect(reason).toBeDefined()
    expect(reason?.length).toBeLessThanOrEqual(1000)
    expect(reason).not.toContain("\n")
  })
})
