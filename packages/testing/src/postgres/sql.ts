/**
 * Quotes an SQL identifier (role, database, schema name): wraps it in double
 * quotes and doubles any double quote inside, so any string is a safe identifier.
 *
 * @example
 * ```ts
 * quoteIdent('app "x"') // => "\"app \"\"x\"\"\""
 * ```
 */
export const quoteIdent = (name: string): string => {
  if (name.includes("\0")) throw new TypeError("an SQL identifier cannot contain a NUL character")
  return `"${name.replaceAll('"', '""')}"`
}

/**
 * Quotes an SQL string literal for a server with `standard_conforming_strings`
 * on (the default since PostgreSQL 9.1): single quotes are doubled, backslashes
 * are ordinary characters.
 *
 * @example
 * ```ts
 * quoteLiteral("it's") // => "'it''s'"
 * ```
 */
export const quoteLiteral = (value: string): string => {
  if (value.includes("\0")) throw new TypeError("an SQL literal cannot contain a NUL character")
  return `'${value.replaceAll("'", "''")}'`
}
