import { describe, expect, it } from "@effect/vitest"
import { parseAddress, parseNamespacePairs, parseRetention, parseSslMode } from "../src/OperatorConfig.ts"

// The chart passes `--metrics-bind-address=$(POD_IP):8080`: whatever address family the
// cluster gives the Pod, the operator must start listening rather than exit on a bad flag.
describe("parseAddress", () => {
  it.each([
    [":8080", { port: 8080 }],
    ["127.0.0.1:8080", { host: "127.0.0.1", port: 8080 }],
    ["127.1.2.3:8081", { host: "127.1.2.3", port: 8081 }],
    ["[::1]:8081", { host: "::1", port: 8081 }],
    ["[fd00::1]:8080", { host: "fd00::1", port: 8080 }],
    ["fd00::1:8080", { host: "fd00::1", port: 8080 }],
    ["localhost:9000", { host: "localhost", port: 9000 }],
    ["0", false],
    ["false", false],
    ["", false]
  ] as const)("%j", (text, expected) => {
    expect(parseAddress(text)).toStrictEqual(expected)
  })

  it.each(["8080", ":70000", "host:", "a b:80", "[fd00::1:80", "fd00::zz:80", "host/x:80"])("refuses %j", (text) => {
    expect(parseAddress(text)).toBeUndefined()
  })
})

describe("parseNamespacePairs", () => {
  it.each([
    ["", []],
    ["team-a:db", [{ from: "team-a", to: "db" }]],
    [
      " team-a : db , team-b:db ",
      [
        { from: "team-a", to: "db" },
        { from: "team-b", to: "db" }
      ]
    ]
  ] as const)("%j", (text, pairs) => {
    expect(parseNamespacePairs(text)).toStrictEqual({ pairs })
  })

  // A bare namespace was this flag's format before pairs: every namespace could use it.
  it.each([
    ["db", "db"],
    ["team-a:db,shared", "shared"],
    ["a:b:c", "a:b:c"],
    [":db", ":db"],
    ["Team:db", "Team:db"],
    ["*:db", "*:db"]
  ])("refuses %j, naming %j", (text, invalid) => {
    expect(parseNamespacePairs(text)).toStrictEqual({ invalid })
  })
})

describe("parseSslMode", () => {
  it("takes libpq's modes and nothing else", () => {
    expect(parseSslMode("verify-full")).toBe("verify-full")
    expect(parseSslMode("disable")).toBe("disable")
    expect(parseSslMode("VERIFY-FULL")).toBeUndefined()
    expect(parseSslMode("on")).toBeUndefined()
  })
})

describe("parseRetention", () => {
  it.each([
    [
      "keepLast=24,keepDaily=7,keepWeekly=5,keepMonthly=12",
      { keepLast: 24, keepDaily: 7, keepWeekly: 5, keepMonthly: 12 }
    ],
    ["maxAge=30d", { maxAge: "30d" }],
    ["none", undefined]
  ] as const)("%j", (text, retention) => {
    expect(parseRetention(text)).toStrictEqual({ retention })
  })

  it.each(["keepdaily=7", "keepLast=0", "keepLast", "maxAge=30 days", ""])("refuses %j", (text) => {
    expect(parseRetention(text)).toBeUndefined()
  })
})
