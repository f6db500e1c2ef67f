import { Option } from "effect"

/**
 * PostgreSQL version numbers as `server_version_num` writes them: 150018 for
 * 15.18, 90624 for 9.6.24. Before 10 the major had two components (9.6).
 */

/**
 * A number that orders majors: 15.x -> 1500, 10.x -> 1000, 9.6.x -> 906.
 *
 * @example
 * ```ts
 * majorKey(150018) > majorKey(90624) // true
 * ```
 */
export const majorKey = (versionNum: number): number =>
  versionNum >= 100_000 ? Math.floor(versionNum / 10_000) * 100 : Math.floor(versionNum / 100)

/**
 * The major as PostgreSQL writes it.
 *
 * @example
 * ```ts
 * majorOf(150018) // "15"
 * majorOf(90624) // "9.6"
 * ```
 */
export const majorOf = (versionNum: number): string => {
  const key = majorKey(versionNum)
  return key >= 1000 ? String(key / 100) : `${Math.floor(key / 100)}.${key % 100}`
}

/**
 * Parses `SHOW server_version_num` output.
 *
 * @example
 * ```ts
 * parseServerVersionNum("150018\n") // Some(150018)
 * ```
 */
export const parseServerVersionNum = (text: string): Option.Option<number> => {
  const trimmed = text.trim()
  return /^\d{5,7}$/u.test(trimmed) ? Option.some(Number(trimmed)) : Option.none()
}

/**
 * Parses `pg_dump --version` (or `psql --version`) output into a version number.
 *
 * @example
 * ```ts
 * parseToolVersion("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)") // Some(150018)
 * parseToolVersion("pg_dump (PostgreSQL) 9.6.24") // Some(90624)
 * parseToolVersion("pg_dump (PostgreSQL) 17beta2") // Some(170000)
 * ```
 */
export const parseToolVersion = (text: string): Option.Option<number> => {
  const match = /\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?(?:\.(\d+))?/u.exec(text)
  if (match === null) return Option.none()
  const [a, b, c] = [Number(match[1]), Number(match[2] ?? 0), Number(match[3] ?? 0)]
  return Option.some(a >= 10 ? a * 10_000 + b : a * 10_000 + b * 100 + c)
}

/** A pg_dump on this machine. */
export interface PgDumpCandidate {
  /** Path (or name on PATH) of pg_dump. */
  readonly pgDump: string
  /** Version number from `pg_dump --version`. */
  readonly versionNum: number
  /** Its `--version` line, for the manifest. */
  readonly versionText: string
}

/** Why no pg_dump fits the server. */
export interface NoMatchingPgDump {
  readonly serverMajor: string
  /** Majors found, oldest first. */
  readonly available: ReadonlyArray<string>
}

/**
 * Picks the pg_dump for a server: the same major if there is one, else the
 * oldest newer one (a much newer pg_dump can emit SQL an older server cannot
 * restore). An older pg_dump cannot dump a newer server, so none fits then.
 *
 * @example
 * ```ts
 * choosePgDump([{ pgDump: "/usr/lib/postgresql/15/bin/pg_dump", versionNum: 150018, versionText: "..." }], 160002)
 * // { _tag: "NoMatch", serverMajor: "16", available: ["15"] }
 * ```
 */
export const choosePgDump = (
  candidates: ReadonlyArray<PgDumpCandidate>,
  serverVersionNum: number
):
  | { readonly _tag: "Chosen"; readonly chosen: PgDumpCandidate }
  | ({ readonly _tag: "NoMatch" } & NoMatchingPgDump) => {
  const serverKey = majorKey(serverVersionNum)
  const fitting = candidates
    .filter((c) => majorKey(c.versionNum) >= serverKey)
    .sort((a, b) => majorKey(a.versionNum) - majorKey(b.versionNum) || b.versionNum - a.versionNum)
  const chosen = fitting[0]
  const available = [
    ...new Set([...candidates].sort((a, b) => a.versionNum - b.versionNum).map((c) => majorOf(c.versionNum)))
  ]
  return chosen === undefined
    ? { _tag: "NoMatch", serverMajor: majorOf(serverVersionNum), available }
    : { _tag: "Chosen", chosen }
}
