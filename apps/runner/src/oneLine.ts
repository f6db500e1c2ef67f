/**
 * Turning tool output into one readable line (for termination messages and
 * error messages).
 */

/** Longest reason kept, in characters: the kubelet keeps at most 4096 bytes of a termination message. */
export const maxReasonLength = 1000

/** Collapses whitespace (newlines included) and truncates. */
export const oneLine = (text: string, max = maxReasonLength): string => {
  const line = text.replace(/\s+/gu, " ").trim()
  return line.length > max ? `${line.slice(0, max - 3)}...` : line
}

/**
 * The most useful line of a libpq tool's stderr: the first `error:` or
 * `FATAL:` line (the cause; later lines are usually consequences), else the
 * last non-empty line. The tool's `pg_dump: error: ` (`pg_restore: error: `,
 * `psql: error: `) prefix is dropped.
 *
 * @example
 * ```ts
 * reasonFromStderr('pg_dump: error: connection to server at "db" (10.0.0.1), port 5432 failed: FATAL:  password authentication failed for user "u"\n')
 * // 'connection to server at "db" (10.0.0.1), port 5432 failed: FATAL: password authentication failed for user "u"'
 * ```
 */
export const reasonFromStderr = (stderr: string): string | undefined => {
  const lines = stderr
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line.length > 0)
  const important = lines.find((line) => /\b(error|FATAL|PANIC):/u.test(line)) ?? lines.at(-1)
  if (important === undefined) return undefined
  return oneLine(important.replace(/^(pg_dump|pg_restore|psql):\s+(error:\s+)?/u, ""))
}
