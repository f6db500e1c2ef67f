import { choosePgDump, majorKey, majorOf, parseServerVersionNum, parseToolVersion } from "@db-backup-operator/runner"
import { describe, expect, it } from "@effect/vitest"
import { Option } from "effect"

const candidate = (versionNum: number) => ({
  pgDump: `/usr/lib/postgresql/${majorOf(versionNum)}/bin/pg_dump`,
  versionNum,
  versionText: `pg_dump (PostgreSQL) ${versionNum}`
})

describe("PostgreSQL versions", () => {
  it.each([
    ["pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)", 150018],
    ["pg_dump (PostgreSQL) 17.2", 170002],
    ["psql (PostgreSQL) 16.0\n", 160000],
    ["pg_dump (PostgreSQL) 18beta1", 180000],
    ["pg_dump (PostgreSQL) 9.6.24", 90624],
    ["pg_dump (PostgreSQL) 10.23 (Ubuntu 10.23-1)", 100023]
  ])("parses %j", (text, expected) => {
    expect(parseToolVersion(text)).toEqual(Option.some(expected))
  })

  it("rejects tool output without a version", () => {
    expect(parseToolVersion("command not found")).toEqual(Option.none())
  })

  it("parses server_version_num", () => {
    expect(parseServerVersionNum("150018\n")).toEqual(Option.some(150018))
    expect(parseServerVersionNum(" 90624 ")).toEqual(Option.some(90624))
    expect(parseServerVersionNum("15.18")).toEqual(Option.none())
    expect(parseServerVersionNum("")).toEqual(Option.none())
  })

  it("computes, orders and formats majors", () => {
    expect(majorOf(150018)).toBe("15")
    expect(majorOf(100023)).toBe("10")
    expect(majorOf(90624)).toBe("9.6")
    expect(majorKey(90624)).toBeLessThan(majorKey(100000))
    expect(majorKey(100023)).toBeLessThan(majorKey(150000))
    expect(majorKey(150018)).toBe(majorKey(150002))
  })

  it("picks the pg_dump of the server's major", () => {
    const chosen = choosePgDump([candidate(170002), candidate(150018), candidate(160004)], 150002)
    expect(chosen).toEqual({ _tag: "Chosen", chosen: candidate(150018) })
  })

  it("otherwise picks the oldest newer pg_dump", () => {
    expect(choosePgDump([candidate(170002), candidate(160004)], 150002)).toEqual({
      _tag: "Chosen",
      chosen: candidate(160004)
    })
    // A newer pg_dump dumps pre-10 servers too.
    expect(choosePgDump([candidate(150018)], 90624)).toEqual({ _tag: "Chosen", chosen: candidate(150018) })
  })

  it("refuses when every pg_dump is older than the server", () => {
    expect(choosePgDump([candidate(150018), candidate(90624), candidate(140010)], 160002)).toEqual({
      _tag: "NoMatch",
      serverMajor: "16",
      available: ["9.6", "14", "15"]
    })
    expect(choosePgDump([], 150000)).toEqual({ _tag: "NoMatch", serverMajor: "15", available: [] })
  })

  it("a minor difference does not matter", () => {
    expect(choosePgDump([candidate(150002)], 150018)._tag).toBe("Chosen")
  })
})
