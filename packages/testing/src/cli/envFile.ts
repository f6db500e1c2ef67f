/**
 * Renders shell `KEY=value` lines. Values made only of safe characters stay
 * bare; anything else is single-quoted (with `'` escaped), so `. DIR/env` and
 * `set -a; . DIR/env` work and nothing is ever evaluated.
 *
 * @example
 * ```ts
 * envFileText({ PGPORT: "5432", NOTE: "a b" }) // "PGPORT=5432\nNOTE='a b'\n"
 * ```
 */
export const envFileText = (env: Readonly<Record<string, string>>): string =>
  Object.entries(env)
    .map(([key, value]) => `${key}=${/^[\w@%+=:,./-]*$/u.test(value) ? value : `'${value.replaceAll("'", `'"'"'`)}'`}`)
    .join("\n")
    .concat("\n")

/**
 * Parses `--image-map IMAGE=COMMAND` values (split at the first `=`).
 *
 * @example
 * ```ts
 * parseImageMapFlags(["runner:dev=node apps/runner/src/main.ts"]) // { "runner:dev": "node apps/runner/src/main.ts" }
 * ```
 */
export const parseImageMapFlags = (
  entries: ReadonlyArray<string>
):
  | { readonly _tag: "Ok"; readonly map: Readonly<Record<string, string>> }
  | { readonly _tag: "Invalid"; readonly entry: string } => {
  const map: Record<string, string> = {}
  for (const entry of entries) {
    const at = entry.indexOf("=")
    const image = entry.slice(0, at).trim()
    const command = entry.slice(at + 1).trim()
    if (at <= 0 || image === "" || command === "") return { _tag: "Invalid", entry }
    map[image] = command
  }
  return { _tag: "Ok", map }
}
