/**
 * RFC 7386 JSON merge patches computed from two JSON documents, as
 * `jsonmergepatch.CreateMergePatch` / controller-runtime's `client.MergeFrom`.
 */

type JsonObject = { readonly [key: string]: unknown }

const isObject = (value: unknown): value is JsonObject =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** Structural equality of JSON values (key order ignored; `undefined` members count as absent). */
export const jsonEqual = (a: unknown, b: unknown): boolean => {
  if (a === b) return true
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false
    return a.every((item, index) => jsonEqual(item, b[index]))
  }
  if (!isObject(a) || !isObject(b)) return false
  const keys = new Set([...Object.keys(a), ...Object.keys(b)])
  for (const key of keys) if (!jsonEqual(a[key], b[key])) return false
  return true
}

/**
 * The merge patch that turns `before` into `after`, or `undefined` when they are
 * equal. Objects are diffed member by member (a removed member becomes `null`);
 * arrays and scalars are replaced whole, as merge patches require.
 *
 * @example
 * ```ts
 * createMergePatch({ a: 1, b: { c: 2, d: 3 } }, { a: 1, b: { c: 4 } }) // { b: { c: 4, d: null } }
 * ```
 */
export const createMergePatch = (before: unknown, after: unknown): unknown => {
  if (jsonEqual(before, after)) return undefined
  if (!isObject(before) || !isObject(after)) return after === undefined ? null : after
  const patch: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(after)) {
    if (value === undefined) continue
    const member = createMergePatch(before[key], value)
    if (member !== undefined) patch[key] = member
  }
  for (const [key, value] of Object.entries(before)) {
    if (value !== undefined && after[key] === undefined) patch[key] = null
  }
  return Object.keys(patch).length === 0 ? undefined : patch
}
