/**
 * User metadata through Azure Blob Storage, reversibly.
 *
 * Azure takes metadata as `x-ms-meta-<name>` headers: a name must be a C#
 * identifier (letters, digits, `_`, not starting with a digit) and is
 * case-insensitive (Get Blob Properties returns it lower-cased), and a value
 * must be printable ASCII without surrounding spaces (Azure trims them, and
 * Node refuses other characters in a header). So:
 *
 * - A name keeps `a`-`z` and (except first) `0`-`9`; every other character,
 *   `_` and upper-case letters included, becomes `_` followed by the two
 *   lower-case hex digits of each of its UTF-8 bytes: `backup-resource` is
 *   stored as `backup_2dresource`, `Owner` as `_4fwner`. Decoding is the
 *   reverse, on the lower-cased name; a name that is not such an encoding (set
 *   by another tool) is returned as Azure gave it.
 * - A value that is printable ASCII without leading or trailing spaces and does
 *   not start with `=?` is stored as is; any other becomes an RFC 2047 encoded
 *   word, `=?utf-8?b?<base64 of its UTF-8>?=`, decoded back on reading.
 */

const encoder = new TextEncoder()
const strictUtf8 = new TextDecoder("utf-8", { fatal: true })

const hex = (byte: number): string => byte.toString(16).padStart(2, "0")

/** A metadata name as an Azure-valid one (see the module comment). */
export const encodeName = (name: string): string => {
  let out = ""
  for (const char of name) {
    const plain = (char >= "a" && char <= "z") || (out !== "" && char >= "0" && char <= "9")
    out += plain ? char : Array.from(encoder.encode(char), (byte) => `_${hex(byte)}`).join("")
  }
  return out
}

/** The name {@link encodeName} was given, or `stored` itself if it is no such encoding. */
export const decodeName = (stored: string): string => {
  const lower = stored.toLowerCase()
  const bytes: Array<number> = []
  for (let i = 0; i < lower.length; i++) {
    const char = lower[i] ?? ""
    if (char === "_") {
      const pair = lower.slice(i + 1, i + 3)
      if (!/^[0-9a-f]{2}$/u.test(pair)) return stored
      bytes.push(Number.parseInt(pair, 16))
      i += 2
    } else if ((char >= "a" && char <= "z") || (char >= "0" && char <= "9")) {
      bytes.push(char.charCodeAt(0))
    } else {
      return stored
    }
  }
  try {
    return strictUtf8.decode(Uint8Array.from(bytes))
  } catch {
    return stored
  }
}

// Printable ASCII, neither starting nor ending with a space (Azure trims values).
const plainValue = /^(?:[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?)?$/u
const encodedWord = /^=\?utf-8\?b\?([A-Za-z0-9+/]*={0,2})\?=$/iu

/** A metadata value as a valid header value (see the module comment). */
export const encodeValue = (value: string): string =>
  plainValue.test(value) && !value.startsWith("=?")
    ? value
    : `=?utf-8?b?${Buffer.from(value, "utf8").toString("base64")}?=`

/** The value {@link encodeValue} was given. */
export const decodeValue = (stored: string): string => {
  const match = encodedWord.exec(stored)
  return match?.[1] === undefined ? stored : Buffer.from(match[1], "base64").toString("utf8")
}

/** User metadata as Azure metadata. */
export const encodeMetadata = (metadata: Readonly<Record<string, string>> | undefined): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(metadata ?? {})) out[encodeName(name)] = encodeValue(value)
  return out
}

/** Azure metadata (from Get Blob Properties or List Blobs) as the user metadata it was written from. */
export const decodeMetadata = (
  stored: Readonly<Record<string, string | undefined>> | undefined
): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(stored ?? {})) {
    if (value !== undefined) out[decodeName(name)] = decodeValue(value)
  }
  return out
}
