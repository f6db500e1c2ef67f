import { describe, expect, it } from "@effect/vitest"
import {
  decodeMetadata,
  decodeName,
  decodeValue,
  encodeMetadata,
  encodeName,
  encodeValue
} from "../src/AzureMetadata.ts"

// What Azure accepts: a C# identifier as the name, a trimmed printable-ASCII header value.
const validName = /^[A-Za-z_][A-Za-z0-9_]*$/u
const validValue = /^(?:[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?)?$/u

const names = [
  "backup-resource",
  "backup_resource",
  "backup__resource",
  "backup_2dresource",
  "Owner",
  "database",
  "1st",
  "a.b/c",
  "ünïcode ✓",
  "_",
  "x_"
]
const values = [
  "ns/orders",
  "",
  " leading",
  "trailing ",
  "héllo ✓",
  "line\nbreak",
  "=?utf-8?b?aGk=?=",
  "=?",
  "tab\tinside",
  "plain value with spaces"
]

describe("AzureMetadata", () => {
  it("encodes names as C# identifiers and decodes them back, also lower-cased as Get Blob Properties returns them", () => {
    for (const name of names) {
      const stored = encodeName(name)
      expect(stored).toMatch(validName)
      expect(decodeName(stored)).toBe(name)
      expect(decodeName(stored.toLowerCase())).toBe(name)
    }
    expect(encodeName("backup-resource")).toBe("backup_2dresource")
  })

  it("never maps two names to one stored name", () => {
    const stored = names.map((name) => encodeName(name).toLowerCase())
    expect(new Set(stored).size).toBe(names.length)
  })

  it("encodes values as header-safe text and decodes them back; plain values stay readable", () => {
    for (const value of values) {
      const stored = encodeValue(value)
      expect(stored).toMatch(validValue)
      expect(decodeValue(stored)).toBe(value)
    }
    expect(encodeValue("ns/orders")).toBe("ns/orders")
  })

  it("round-trips a whole record, and keeps names set by other tools as Azure returns them", () => {
    const metadata = { "backup-resource": "team-a/orders", "backup-schema": "billing ✓", kind: "manifest" }
    expect(decodeMetadata(encodeMetadata(metadata))).toEqual(metadata)
    expect(decodeMetadata({ Other_Tool: "x", x_zz: "y", missing: undefined })).toEqual({ Other_Tool: "x", x_zz: "y" })
  })
})
