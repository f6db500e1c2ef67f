import { describe, expect, it } from "@effect/vitest"
import { Duration } from "effect"
import {
  parseAddress,
  parseLeaderElectionTiming,
  parseNamespacePairs,
  parseRetention,
  parseSslMode
} from "../src/OperatorConfig.ts"

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

describe("parseLeaderElectionTiming", () => {
  const millis = (result: ReturnType<typeof parseLeaderElectionTiming>) =>
    "timing" in result
      ? {
          leaseDuration: Duration.toMillis(result.timing.leaseDuration),
          renewDeadline: Duration.toMillis(result.timing.renewDeadline),
          retryPeriod: Duration.toMillis(result.timing.retryPeriod)
        }
      : result

  it("takes client-go's defaults and shorter ones", () => {
    expect(
      millis(
        parseLeaderElectionTiming({
          leaseDuration: "15 seconds",
          renewDeadline: "10 seconds",
          retryPeriod: "2 seconds"
        })
      )
    ).toStrictEqual({ leaseDuration: 15_000, renewDeadline: 10_000, retryPeriod: 2_000 })
    expect(
      millis(
        parseLeaderElectionTiming({ leaseDuration: "4 seconds", renewDeadline: "3 seconds", retryPeriod: "500 millis" })
      )
    ).toStrictEqual({ leaseDuration: 4_000, renewDeadline: 3_000, retryPeriod: 500 })
  })

  // Each would let two replicas lead at once (a deadline past the lease) or make the leader
  // give up on its first failed renewal: refused, naming the flag to change.
  it.each([
    [{ leaseDuration: "soon", renewDeadline: "10 seconds", retryPeriod: "2 seconds" }, "leader-elect-lease-duration"],
    [
      { leaseDuration: "500 millis", renewDeadline: "400 millis", retryPeriod: "100 millis" },
      "leader-elect-lease-duration"
    ],
    [
      { leaseDuration: "15 seconds", renewDeadline: "0 seconds", retryPeriod: "2 seconds" },
      "leader-elect-renew-deadline"
    ],
    [
      { leaseDuration: "15 seconds", renewDeadline: "15 seconds", retryPeriod: "2 seconds" },
      "leader-elect-renew-deadline"
    ],
    [
      { leaseDuration: "15 seconds", renewDeadline: "20 seconds", retryPeriod: "2 seconds" },
      "leader-elect-renew-deadline"
    ],
    [{ leaseDuration: "15 seconds", renewDeadline: "10 seconds", retryPeriod: "x" }, "leader-elect-retry-period"],
    [
      { leaseDuration: "15 seconds", renewDeadline: "10 seconds", retryPeriod: "9 seconds" },
      "leader-elect-retry-period"
    ]
  ] as const)("refuses %j (--%s)", (text, flag) => {
    const result = parseLeaderElectionTiming(text)
    expect("invalid" in result && result.invalid.flag).toBe(flag)
  })
})
