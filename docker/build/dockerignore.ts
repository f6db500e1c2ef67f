/**
 * `.dockerignore` matching with Docker's rules, so the context staged for
 * buildah holds exactly the files a `docker build` of the same Dockerfile
 * would see: patterns are relative to the context root, `*` and `?` stay within
 * one path segment, `**` spans any number of segments, a pattern that matches a
 * directory matches everything below it, `!` re-includes, and the last pattern
 * that matches decides.
 *
 * @module
 */

/** One line of a `.dockerignore`. */
export interface IgnoreRule {
  readonly pattern: string
  /** A `!pattern`: re-includes what earlier patterns excluded. */
  readonly negated: boolean
  readonly regex: RegExp
}

const escapeRegex = (char: string) => char.replace(/[.*+?^${}()|[\]\\]/gu, "\\$&")

// Docker's patternmatcher, minus character classes (none of our patterns need them).
const patternRegex = (pattern: string): RegExp => {
  let source = ""
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern.charAt(i)
    if (char === "*") {
      if (pattern.charAt(i + 1) === "*") {
        i++
        if (pattern.charAt(i + 1) === "/") {
          i++
          source += "(?:.*/)?"
        } else {
          source += ".*"
        }
      } else {
        source += "[^/]*"
      }
    } else if (char === "?") {
      source += "[^/]"
    } else if (char === "\\" && i + 1 < pattern.length) {
      i++
      source += escapeRegex(pattern.charAt(i))
    } else if (char === "[") {
      throw new Error(`.dockerignore: character classes are not supported here: ${pattern}`)
    } else {
      source += escapeRegex(char)
    }
  }
  return new RegExp(`^${source}$`, "u")
}

// Docker cleans each pattern like a path: no leading "/" or "./", no trailing "/", no "//".
const cleanPattern = (pattern: string): string =>
  pattern
    .replace(/^(?:\.?\/)+/u, "")
    .replace(/\/+/gu, "/")
    .replace(/\/$/u, "")

/**
 * Parses a `.dockerignore` file: one pattern a line, `#` comments, blank lines ignored.
 *
 * @example
 * ```ts
 * parseDockerignore("*\n!src\n**\/*.test.ts\n").length // 3
 * ```
 */
export const parseDockerignore = (text: string): ReadonlyArray<IgnoreRule> =>
  text
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line.length > 0 && !line.startsWith("#"))
    .map((line) => {
      const negated = line.startsWith("!")
      const pattern = cleanPattern(negated ? line.slice(1).trim() : line)
      return { pattern, negated, regex: patternRegex(pattern) }
    })

/**
 * True when `path` (relative to the context root, `/`-separated) is left out of
 * the build context: the last rule matching the path or one of its parent
 * directories is not a `!` rule.
 *
 * @example
 * ```ts
 * const rules = parseDockerignore("*\n!apps/*\/src\n**\/*.test.ts\n")
 * isIgnored(rules, "apps/runner/src/main.ts") // false
 * isIgnored(rules, "apps/runner/src/main.test.ts") // true
 * isIgnored(rules, "node_modules/effect/package.json") // true
 * ```
 */
export const isIgnored = (rules: ReadonlyArray<IgnoreRule>, path: string): boolean => {
  const segments = path.split("/")
  const candidates = segments.map((_, i) => segments.slice(0, i + 1).join("/"))
  let ignored = false
  for (const rule of rules) {
    if (candidates.some((candidate) => rule.regex.test(candidate))) ignored = !rule.negated
  }
  return ignored
}
