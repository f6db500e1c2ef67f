import { describe, expect, it } from "@effect/vitest"
import { Duration, Result } from "effect"
import { type BackupSchedule, parseSchedule, planSlot } from "../src/schedule.ts"

const at = (text: string) => Date.parse(text)
const iso = (millis: number | undefined) => (millis === undefined ? undefined : new Date(millis).toISOString())

const parsed = (spec: { schedule?: string; timeZone?: string }, seed = "team-a/orders"): BackupSchedule =>
  Result.getOrThrow(parseSchedule(spec, seed, Duration.minutes(5)))

const problem = (spec: { schedule?: string; timeZone?: string }) =>
  Result.match(parseSchedule(spec, "team-a/orders", Duration.minutes(5)), {
    onSuccess: () => undefined,
    onFailure: (failure) => failure
  })

/** The decision, with instants as ISO strings so a failing row reads as times. */
const plan = (input: {
  schedule: BackupSchedule
  created: string
  last?: string
  now: string
  suspend?: boolean
  deadline?: number
}) => {
  const decision = planSlot({
    schedule: input.schedule,
    anchor: at(input.created),
    last: input.last === undefined ? undefined : at(input.last),
    now: at(input.now),
    suspend: input.suspend ?? false,
    startingDeadlineSeconds: input.deadline
  })
  switch (decision._tag) {
    case "Run":
      return { run: iso(decision.slot), next: iso(decision.next) }
    case "Wait":
      return { wait: iso(decision.next), ...(decision.skipped === undefined ? {} : { skipped: iso(decision.skipped) }) }
    case "Suspended":
      return { suspended: true }
  }
}

describe("planSlot", () => {
  it.each([
    {
      name: "no schedule: the first run at creation, as the original",
      schedule: parsed({}),
      created: "2026-05-01T10:00:07Z",
      now: "2026-05-01T10:00:08Z",
      expected: { run: "2026-05-01T10:00:07.000Z", next: "2026-05-01T10:05:07.000Z" }
    },
    {
      name: "no schedule: then every interval from creation",
      schedule: parsed({}),
      created: "2026-05-01T10:00:07Z",
      last: "2026-05-01T10:00:07Z",
      now: "2026-05-01T10:03:00Z",
      expected: { wait: "2026-05-01T10:05:07.000Z" }
    },
    {
      name: "@every 20s: the slot that has come runs",
      schedule: parsed({ schedule: "@every 20s" }),
      created: "2026-05-01T10:00:00Z",
      last: "2026-05-01T10:00:00Z",
      now: "2026-05-01T10:00:21Z",
      expected: { run: "2026-05-01T10:00:20.000Z", next: "2026-05-01T10:00:40.000Z" }
    },
    {
      name: "cron: a new resource waits for its first slot",
      schedule: parsed({ schedule: "0 3 * * *" }),
      created: "2026-05-01T10:00:00Z",
      now: "2026-05-01T10:00:01Z",
      expected: { wait: "2026-05-02T03:00:00.000Z" }
    },
    {
      name: "cron: its slot has come",
      schedule: parsed({ schedule: "0 3 * * *" }),
      created: "2026-05-01T10:00:00Z",
      now: "2026-05-02T03:00:00Z",
      expected: { run: "2026-05-02T03:00:00.000Z", next: "2026-05-03T03:00:00.000Z" }
    },
    {
      name: "time zone: 02:30 Berlin on the night clocks spring forward runs at 03:30 CEST",
      schedule: parsed({ schedule: "30 2 * * *", timeZone: "Europe/Berlin" }),
      created: "2026-03-01T00:00:00Z",
      last: "2026-03-28T01:30:00Z",
      now: "2026-03-28T12:00:00Z",
      expected: { wait: "2026-03-29T01:30:00.000Z" }
    },
    {
      name: "time zone: the hour that repeats when clocks fall back runs once",
      schedule: parsed({ schedule: "30 2 * * *", timeZone: "Europe/Berlin" }),
      created: "2026-10-01T00:00:00Z",
      last: "2026-10-25T00:30:00Z",
      now: "2026-10-25T01:45:00Z",
      expected: { wait: "2026-10-26T01:30:00.000Z" }
    },
    {
      name: "time zone: nightly in New York is 07:00 UTC in winter",
      schedule: parsed({ schedule: "@daily", timeZone: "America/New_York" }),
      created: "2026-12-01T00:00:00Z",
      now: "2026-12-02T12:00:00Z",
      expected: { run: "2026-12-02T05:00:00.000Z", next: "2026-12-03T05:00:00.000Z" }
    },
    {
      name: "missed slots (operator down for three): one catch-up run, of the latest",
      schedule: parsed({ schedule: "0 * * * *" }),
      created: "2026-05-01T00:00:00Z",
      last: "2026-05-01T10:00:00Z",
      now: "2026-05-01T13:05:00Z",
      expected: { run: "2026-05-01T13:00:00.000Z", next: "2026-05-01T14:00:00.000Z" }
    },
    {
      name: "missed slots past startingDeadlineSeconds: skipped, the next one waited for",
      schedule: parsed({ schedule: "0 * * * *" }),
      created: "2026-05-01T00:00:00Z",
      last: "2026-05-01T10:00:00Z",
      now: "2026-05-01T13:05:00Z",
      deadline: 120,
      expected: { wait: "2026-05-01T14:00:00.000Z", skipped: "2026-05-01T13:00:00.000Z" }
    },
    {
      name: "within startingDeadlineSeconds: runs late",
      schedule: parsed({ schedule: "0 * * * *" }),
      created: "2026-05-01T00:00:00Z",
      last: "2026-05-01T12:00:00Z",
      now: "2026-05-01T13:01:00Z",
      deadline: 120,
      expected: { run: "2026-05-01T13:00:00.000Z", next: "2026-05-01T14:00:00.000Z" }
    },
    {
      name: "suspended: nothing runs",
      schedule: parsed({ schedule: "@every 20s" }),
      created: "2026-05-01T10:00:00Z",
      last: "2026-05-01T10:00:00Z",
      now: "2026-05-01T11:00:00Z",
      suspend: true,
      expected: { suspended: true }
    },
    {
      name: "the last run's slot is in the future (a clock step back): nothing runs twice",
      schedule: parsed({ schedule: "@every 20s" }),
      created: "2026-05-01T10:00:00Z",
      last: "2026-05-01T10:01:00Z",
      now: "2026-05-01T10:00:30Z",
      expected: { wait: "2026-05-01T10:01:20.000Z" }
    }
  ])("$name", ({ schedule, created, last, now, suspend, deadline, expected }) => {
    expect(
      plan({
        schedule,
        created,
        now,
        ...(last === undefined ? {} : { last }),
        ...(suspend === undefined ? {} : { suspend }),
        ...(deadline === undefined ? {} : { deadline })
      })
    ).toEqual(expected)
  })
})

describe("parseSchedule", () => {
  it.each([
    ["61 * * * *", "InvalidSchedule", 'spec.schedule "61 * * * *" is not a valid cron expression'],
    ["0 3 * *", "InvalidSchedule", 'spec.schedule "0 3 * *" needs five fields'],
    ["0 0 3 * * *", "InvalidSchedule", "needs five fields"],
    ["@fortnightly", "InvalidSchedule", 'spec.schedule "@fortnightly" is not a known macro'],
    ["@every 5s", "InvalidSchedule", "shorter than the minimum of 10s"],
    ["@every 1x", "InvalidSchedule", "needs a duration of hours, minutes and seconds"],
    ["@every 9999999999999999999999h", "InvalidSchedule", "is longer than the maximum of 366d"],
    ["0 0 30 2 *", "InvalidSchedule", 'spec.schedule "0 0 30 2 *" never comes']
  ])("refuses schedule %j with %s naming the field", (schedule, reason, message) => {
    const refused = problem({ schedule })
    expect(refused?.reason).toBe(reason)
    expect(refused?.message).toContain(message)
  })

  it("refuses an unknown time zone, naming spec.timeZone", () => {
    expect(problem({ schedule: "@daily", timeZone: "Mars/Olympus" })).toEqual({
      reason: "UnknownTimeZone",
      message:
        'spec.timeZone "Mars/Olympus" is not a time zone this operator knows: use an IANA name such as Europe/Berlin or UTC'
    })
  })

  it("reads @every in hours, minutes and seconds", () => {
    expect(parsed({ schedule: "@every 1h30m" })).toMatchObject({ _tag: "Every", periodMillis: 5_400_000 })
  })

  it("spreads -random macros by resource, the same time on every call", () => {
    const texts = ["a/one", "a/two", "b/one", "b/two", "c/three"].map(
      (seed) => parsed({ schedule: "@daily-random" }, seed).text
    )
    expect(parsed({ schedule: "@daily-random" }, "a/one").text).toBe(texts[0])
    expect(new Set(texts).size).toBeGreaterThan(1)
    for (const text of texts) expect(text).toMatch(/^@daily-random \(\d{1,2} \d{1,2} \* \* \*\)$/u)
    expect(parsed({ schedule: "@monthly-random" }, "a/one").text).toMatch(
      /^@monthly-random \(\d+ \d+ ([1-9]|1\d|2[0-8]) \* \*\)$/u
    )
  })
})
