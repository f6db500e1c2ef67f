import { homedir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { isExecutable } from "../process/executable.ts"

/**
 * The cache root, outside the repository so clones and `git clean` share it:
 * `$DB_BACKUP_OPERATOR_CACHE`, else `$XDG_CACHE_HOME/db-backup-operator`, else
 * `~/.cache/db-backup-operator`.
 *
 * @example
 * ```ts
 * cacheRoot() // "/home/me/.cache/db-backup-operator"
 * ```
 */
export const cacheRoot = (env: NodeJS.ProcessEnv = process.env): string => {
  const explicit = env.DB_BACKUP_OPERATOR_CACHE
  if (explicit !== undefined && explicit !== "") return explicit
  const xdg = env.XDG_CACHE_HOME
  return join(xdg !== undefined && xdg !== "" ? xdg : join(homedir(), ".cache"), "db-backup-operator")
}

/** Where built binaries live: `<cacheRoot>/bin`. */
export const binCacheDir = (env: NodeJS.ProcessEnv = process.env): string => join(cacheRoot(env), "bin")

/**
 * The directory of one cached build: `<cacheRoot>/bin/<name>-<version>-<goVersion>`.
 * A new tool version or Go toolchain gets a new directory, so nothing stale is reused.
 *
 * @example
 * ```ts
 * entryDir("etcd", "v3.6.16", "go1.26.8") // ".../bin/etcd-v3.6.16-go1.26.8"
 * ```
 */
export const entryDir = (name: string, version: string, goVersion: string, env: NodeJS.ProcessEnv = process.env) =>
  join(binCacheDir(env), `${name}-${version}-${goVersion}`)

/**
 * True when `dir` holds every one of `binaries` as an executable file. Builds are
 * renamed into place only when complete, so this is enough to trust an entry.
 */
export const isComplete = (dir: string, binaries: ReadonlyArray<string>): Effect.Effect<boolean> =>
  Effect.forEach(binaries, (name) => isExecutable(join(dir, name))).pipe(Effect.map((found) => found.every(Boolean)))
