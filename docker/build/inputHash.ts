import { createHash } from "node:crypto"

/** One input of an image: a label saying what it is, and its bytes. */
export type HashInput = readonly [label: string, content: string | Uint8Array]

/**
 * The sha256 (hex) of a list of labelled inputs. Every label and content is
 * length-prefixed, so no two different lists hash alike by shifting bytes from
 * one entry to the next (`["a", "bc"]` and `["ab", "c"]` differ). The order of
 * the list matters: callers sort what has no natural order (files by path).
 *
 * @example
 * ```ts
 * shortHash(inputHash([["dockerfile", text], ["build-arg PG_MAJOR", "17"]])) // 12 hex digits
 * ```
 */
export const inputHash = (inputs: Iterable<HashInput>): string => {
  const hash = createHash("sha256")
  for (const [label, content] of inputs) {
    const bytes = typeof content === "string" ? Buffer.from(content, "utf8") : content
    hash.update(`${Buffer.byteLength(label)}:${label}${bytes.byteLength}:`)
    hash.update(bytes)
  }
  return hash.digest("hex")
}

/** The part of an input hash that goes into image tags. */
export const shortHash = (hash: string): string => hash.slice(0, 12)
