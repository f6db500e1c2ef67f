import { Effect, FileSystem, Option, Path } from "effect"
import type { ChildProcessSpawner } from "effect/process"
import { PgDumpTooOld, ServerNotTrusted, ServerUnreachable, ToolUnavailable } from "../errors.ts"
import { oneLine, reasonFromStderr } from "../oneLine.ts"
import { type ChildEnv, runCaptured } from "../process.ts"
import { type Connection, serverVersionArgs } from "./commands.ts"
import { type ConnectionTls, explainConnectionFailure } from "./connectionFailure.ts"
import { choosePgDump, type PgDumpCandidate, parseServerVersionNum, parseToolVersion } from "./version.ts"

/** Where Debian/Ubuntu install each PostgreSQL major's client tools (`<root>/<major>/bin`). */
export const defaultToolRoots: ReadonlyArray<string> = ["/usr/lib/postgresql"]

const versionOf = (pgDump: string) =>
  runCaptured(pgDump, ["--version"], { timeout: "30 seconds" }).pipe(
    Effect.map((out) =>
      out.exitCode === 0
        ? Option.map(parseToolVersion(out.stdout), (versionNum) => ({
            pgDump,
            versionNum,
            versionText: out.stdout.trim()
          }))
        : Option.none<PgDumpCandidate>()
    ),
    Effect.orElseSucceed(() => Option.none<PgDumpCandidate>())
  )

/**
 * Every pg_dump installed: `<root>/<major>/bin/pg_dump` for each root, and
 * `pg_dump` on PATH.
 */
export const discoverPgDumps = (
  roots: ReadonlyArray<string> = defaultToolRoots
): Effect.Effect<
  ReadonlyArray<PgDumpCandidate>,
  never,
  FileSystem.FileSystem | Path.Path | ChildProcessSpawner.ChildProcessSpawner
> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const paths: Array<string> = []
    for (const root of roots) {
      const entries = yield* fs.readDirectory(root).pipe(Effect.orElseSucceed((): Array<string> => []))
      for (const entry of entries.filter((e) => /^\d+(\.\d+)?$/u.test(e))) {
        const candidate = path.join(root, entry, "bin", "pg_dump")
        if (yield* fs.exists(candidate).pipe(Effect.orElseSucceed(() => false))) paths.push(candidate)
      }
    }
    paths.push("pg_dump")
    const found = yield* Effect.forEach(paths, versionOf, { concurrency: 4 })
    return found.flatMap((c) => (Option.isSome(c) ? [c.value] : []))
  })

/** The psql beside a pg_dump (same major), or psql on PATH. */
export const psqlBeside = (pgDump: string): string =>
  pgDump.includes("/") ? pgDump.replace(/pg_dump$/u, "psql") : "psql"

/**
 * The pg_restore beside a pg_dump (same major), or pg_restore on PATH: a
 * restore converts a custom-format archive with the pg_restore of the psql it
 * uses, which reads the archives of every pg_dump up to its own major.
 *
 * @example
 * ```ts
 * pgRestoreBeside("/usr/lib/postgresql/17/bin/pg_dump") // "/usr/lib/postgresql/17/bin/pg_restore"
 * pgRestoreBeside("pg_dump") // "pg_restore"
 * ```
 */
export const pgRestoreBeside = (pgDump: string): string =>
  pgDump.includes("/") ? pgDump.replace(/pg_dump$/u, "pg_restore") : "pg_restore"

/**
 * The server's `server_version_num`, asked with psql (`env` from `libpqEnv`).
 * Fails with the server's own one-line reason (unreachable, authentication
 * failed, no such database), or, when libpq refused the server to protect the
 * password (no TLS, untrusted certificate, cleartext request), with
 * {@link ServerNotTrusted} saying which spec field to change.
 */
export const serverVersionNum = (
  psql: string,
  connection: Connection,
  env: ChildEnv,
  tls: ConnectionTls
): Effect.Effect<
  number,
  ServerUnreachable | ServerNotTrusted | ToolUnavailable,
  ChildProcessSpawner.ChildProcessSpawner
> =>
  runCaptured(psql, serverVersionArgs(connection), { env, timeout: "2 minutes" }).pipe(
    Effect.catchTag("PlatformError", (e) =>
      Effect.fail(new ToolUnavailable({ message: oneLine(`cannot run ${psql}: ${e.message}`) }))
    ),
    Effect.catchTag("TimeoutError", () =>
      Effect.fail(
        new ServerUnreachable({
          message: `cannot connect to PostgreSQL at ${connection.host}:${connection.port}: no answer within 2 minutes`
        })
      )
    ),
    Effect.flatMap((out): Effect.Effect<number, ServerUnreachable | ServerNotTrusted> => {
      const version = parseServerVersionNum(out.stdout)
      if (out.exitCode === 0 && Option.isSome(version)) return Effect.succeed(version.value)
      const reason = reasonFromStderr(out.stderr) ?? `psql exited with code ${out.exitCode}`
      const explained = explainConnectionFailure(reason, tls)
      if (explained !== undefined) {
        return Effect.fail(
          new ServerNotTrusted({
            message: oneLine(`cannot connect to PostgreSQL at ${connection.host}:${connection.port}: ${explained}`)
          })
        )
      }
      return Effect.fail(
        new ServerUnreachable({
          message: oneLine(`cannot connect to PostgreSQL at ${connection.host}:${connection.port}: ${reason}`)
        })
      )
    })
  )

/** The pg_dump to use for a server version, or why there is none. */
export const selectPgDump = (
  candidates: ReadonlyArray<PgDumpCandidate>,
  serverVersion: number
): Effect.Effect<PgDumpCandidate, PgDumpTooOld | ToolUnavailable> => {
  if (candidates.length === 0) {
    return Effect.fail(
      new ToolUnavailable({ message: "pg_dump is not installed (not on PATH, not under /usr/lib/postgresql)" })
    )
  }
  const choice = choosePgDump(candidates, serverVersion)
  if (choice._tag === "Chosen") return Effect.succeed(choice.chosen)
  const server = choice.serverMajor
  const available = choice.available
  return Effect.fail(
    new PgDumpTooOld({
      serverVersion: server,
      available,
      message: `the PostgreSQL server is version ${server} but the newest pg_dump here is ${available.at(-1) ?? "none"} (found: ${available.join(", ")}); pg_dump cannot dump a newer server, use a runner image with PostgreSQL ${server} client tools`
    })
  )
}
