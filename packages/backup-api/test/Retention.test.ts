import { describe, expect, it } from "@effect/vitest"
import { Result, Schema } from "effect"
import { Retention } from "../src/contract.ts"

const day = 86_400_000

/** Backups named by their UTC time, so a row reads as times. */
const select = (
  times: ReadonlyArray<string>,
  retention: Retention.Retention,
  timeZone = "UTC",
  now = "2026-06-01T00:00:00Z"
) => {
  const { keep, remove } = Retention.selectRetained(
    times.map((time) => ({ id: time, time: Date.parse(time) })),
    retention,
    timeZone,
    Date.parse(now)
  )
  return { keep, remove }
}

describe("selectRetained", () => {
  it.each([
    {
      name: "keepLast keeps the newest N",
      times: ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z"],
      retention: { keepLast: 2 },
      keep: ["2026-01-04T00:00:00Z", "2026-01-03T00:00:00Z"]
    },
    {
      name: "keepDaily keeps the newest of each of the last N days",
      times: [
        "2026-01-01T01:00:00Z",
        "2026-01-01T13:00:00Z",
        "2026-01-02T01:00:00Z",
        "2026-01-02T13:00:00Z",
        "2026-01-03T01:00:00Z"
      ],
      retention: { keepDaily: 2 },
      keep: ["2026-01-03T01:00:00Z", "2026-01-02T13:00:00Z"]
    },
    {
      name: "days are those of the time zone: UTC",
      times: ["2026-01-01T23:30:00Z", "2026-01-02T00:30:00Z", "2026-01-02T12:00:00Z"],
      retention: { keepDaily: 2 },
      keep: ["2026-01-02T12:00:00Z", "2026-01-01T23:30:00Z"]
    },
    {
      name: "days are those of the time zone: New York (the two evening runs are one day there)",
      times: ["2026-01-01T23:30:00Z", "2026-01-02T00:30:00Z", "2026-01-02T12:00:00Z"],
      retention: { keepDaily: 2 },
      timeZone: "America/New_York",
      keep: ["2026-01-02T12:00:00Z", "2026-01-02T00:30:00Z"]
    },
    {
      name: "keepWeekly counts ISO weeks, Monday to Sunday",
      // Sunday 4 January 2026 ends week 1; Monday 5 and Tuesday 6 are week 2.
      times: ["2026-01-04T12:00:00Z", "2026-01-05T12:00:00Z", "2026-01-06T12:00:00Z"],
      retention: { keepWeekly: 2 },
      keep: ["2026-01-06T12:00:00Z", "2026-01-04T12:00:00Z"]
    },
    {
      name: "rules add up: keepLast 1, keepMonthly 2, keepYearly 2",
      times: [
        "2024-12-31T00:00:00Z",
        "2025-11-15T00:00:00Z",
        "2025-12-01T00:00:00Z",
        "2025-12-20T00:00:00Z",
        "2026-01-10T00:00:00Z",
        "2026-01-20T00:00:00Z"
      ],
      retention: { keepLast: 1, keepMonthly: 2, keepYearly: 2 },
      keep: ["2026-01-20T00:00:00Z", "2025-12-20T00:00:00Z"]
    },
    {
      name: "maxAge removes what a rule keeps once it is older",
      times: ["2026-05-01T00:00:00Z", "2026-05-29T00:00:00Z", "2026-05-30T00:00:00Z", "2026-05-31T00:00:00Z"],
      retention: { keepLast: 10, maxAge: "2d" },
      keep: ["2026-05-31T00:00:00Z", "2026-05-30T00:00:00Z"]
    },
    {
      name: "maxAge alone keeps everything younger",
      times: ["2026-05-01T00:00:00Z", "2026-05-30T00:00:00Z", "2026-05-31T00:00:00Z"],
      retention: { maxAge: "7d" },
      keep: ["2026-05-31T00:00:00Z", "2026-05-30T00:00:00Z"]
    },
    {
      name: "the newest backup stays even when maxAge has passed it",
      times: ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"],
      retention: { maxAge: "1d" },
      keep: ["2026-01-02T00:00:00Z"]
    },
    {
      name: "no rule keeps everything",
      times: ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"],
      retention: {},
      keep: ["2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z"]
    }
  ])("$name", ({ times, retention, timeZone, keep }) => {
    const selected = select(times, retention, timeZone)
    expect(selected.keep).toEqual(keep)
    expect([...selected.keep, ...selected.remove].sort()).toEqual([...times].sort())
  })

  it("keeps nothing of nothing", () => {
    expect(Retention.selectRetained([], { keepLast: 3 }, "UTC", 5 * day)).toEqual({ keep: [], remove: [] })
  })
})

describe("RetentionFromString", () => {
  const decode = Schema.decodeUnknownResult(Retention.RetentionFromString)

  it("reads the flag's form and writes it back", () => {
    expect(Result.getOrThrow(decode("keepLast=3, keepDaily=7,maxAge=30d"))).toEqual({
      keepLast: 3,
      keepDaily: 7,
      maxAge: "30d"
    })
    expect(Schema.encodeSync(Retention.RetentionFromString)({ keepDaily: 7, keepLast: 3 })).toBe(
      "keepLast=3,keepDaily=7"
    )
  })

  it.each(["keepLast=0", "keepDaily=many", "maxAge=30 days", "keepdaily=7"])("refuses %j", (text) => {
    expect(Result.isFailure(decode(text))).toBe(true)
  })
})
