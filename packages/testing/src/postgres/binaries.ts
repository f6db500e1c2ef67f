import { Effect, Path } from "effect"
import type { ChildProcessSpawner } from "effect/process"
import { isExecutable } from "../process/executable.ts"
import { runChecked } from "../process/run.ts"

/** Debian's PostgreSQL 15 server binaries, used unless `POSTGRES_BINDIR` says otherwise. */
export const debianPostgres15BinDir = "/usr/lib/postgresql/15/bin"

/**
 * Finds the directory holding `initdb`, `postgres` and `psql`: `$POSTGRES_BINDIR`,
 * else Debian's PostgreSQL 15, else `pg_config --bindir`. `undefined` when none has them.
 *
 * @example
 * ```ts
 * const bin = yield* findPostgresBinDir // "/usr/lib/postgresql/15/bin"
 * ```
 */
export const findPostgresBinDir: Effect.Effect<
  string | undefined,
  never,
  Path.Path | ChildProcessSpawner.ChildProcessSpawner
> = Effect.gen(function* () {
  const path = yield* Path.Path
  const hasServer = (dir: string) =>
    Effect.forEach(["initdb", "postgres", "psql"], (name) => isExecutable(path.join(dir, name))).pipe(
      Effect.map((found) => found.every(Boolean))
    )
  const fromEnv = process.env.POSTGRES_BINDIR
  if (fromEnv !== undefined && fromEnv !== "") return (yield* hasServer(fromEnv)) ? fromEnv : undefined
  if (yield* hasServer(debianPostgres15BinDir)) return debianPostgres15BinDir
  const fromPgConfig = yield* runChecked("pg_config", ["--bindir"]).pipe(
    Effect.map((out) => out.trim()),
    Effect.orElseSucceed(() => "")
  )
  return fromPgConfig !== "" && (yield* hasServer(fromPgConfig)) ? fromPgConfig : undefined
})
