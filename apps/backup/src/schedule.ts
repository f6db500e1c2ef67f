import { createHash } from "node:crypto"
import { Cron, Duration, Result } from "effect"

/**
 * When a resource backs up, parsed from `spec.schedule` and `spec.timeZone`:
 * cron slots in a time zone, or a fixed period counted from an anchor (the
 * resource's creation), so every slot is a fixed instant a run can be named by.
 */
export type BackupSchedule =
  | { readonly _tag: "Cron"; readonly cron: Cron.Cron; readonly text: string }
  | { readonly _tag: "Every"; readonly periodMillis: number; readonly text: string }

/** Why `spec.schedule` or `spec.timeZone` cannot be used, for a `Ready=False` condition and an Event. */
export interface ScheduleProblem {
  readonly reason: "InvalidSchedule" | "UnknownTimeZone"
  readonly message: string
}

/** The shortest `@every` period: a backup per 10 seconds is already more than any database needs. */
export const minimumPeriod = Duration.seconds(10)

/** The longest `@every` period: a year (leap years included); longer is a typo, not a schedule. */
export const maximumPeriod = Duration.days(366)

const macros: Readonly<Record<string, string>> = {
  "@yearly": "0 0 1 1 *",
  "@annually": "0 0 1 1 *",
  "@monthly": "0 0 1 * *",
  "@weekly": "0 0 * * 0",
  "@daily": "0 0 * * *",
  "@midnight": "0 0 * * *",
  "@hourly": "0 * * * *"
}

/**
 * The spread form of a macro (`@daily-random`, as K8up has it): the same
 * period at a time picked from a hash of `seed` (the resource's namespace and
 * name), so it stays put across restarts and edits while fifty `@daily`
 * resources do not all start at midnight. Days of the month stop at 28, which
 * every month has.
 */
const spread = (macro: string, seed: string): string | undefined => {
  const digest = createHash("sha256").update(seed).digest()
  const pick = (offset: number, size: number) => digest.readUInt32BE(offset) % size
  const minute = pick(0, 60)
  const hour = pick(4, 24)
  switch (macro) {
    case "@hourly":
      return `${minute} * * * *`
    case "@daily":
    case "@midnight":
      return `${minute} ${hour} * * *`
    case "@weekly":
      return `${minute} ${hour} * * ${pick(8, 7)}`
    case "@monthly":
      return `${minute} ${hour} ${pick(12, 28) + 1} * *`
    case "@yearly":
    case "@annually":
      return `${minute} ${hour} ${pick(12, 28) + 1} ${pick(16, 12) + 1} *`
    default:
      return undefined
  }
}

/** Whether a cron has a next date at all: `Cron.next` throws for one that never matches (`0 0 30 2 *`). */
const everMatches = (cron: Cron.Cron): boolean => {
  try {
    Cron.next(cron, new Date(Date.UTC(2000, 0, 1)))
    return true
  } catch {
    return false
  }
}

const unitMillis: Readonly<Record<string, number>> = { h: 3_600_000, m: 60_000, s: 1000 }

const invalid = (text: string, why: string, field: string): Result.Result<never, ScheduleProblem> =>
  Result.fail({ reason: "InvalidSchedule", message: `${field} "${text}" ${why}` })

const knownTimeZone = (name: string): boolean => {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: name })
    return true
  } catch {
    return false
  }
}

/**
 * Parses a resource's schedule. Without `schedule` the resource backs up every
 * `defaultPeriod` (the operator's `--backup-interval`, as the original did).
 * `seed` picks the time of a `-random` macro.
 *
 * @example
 * ```ts
 * import { Duration, Result } from "effect"
 * const nightly = parseSchedule({ schedule: "30 2 * * *", timeZone: "Europe/Berlin" }, "team-a/orders", Duration.minutes(5))
 * Result.isSuccess(nightly) // true
 * const wrong = parseSchedule({ schedule: "61 * * * *" }, "team-a/orders", Duration.minutes(5))
 * // Result.fail({ reason: "InvalidSchedule", message: 'spec.schedule "61 * * * *" is not a valid cron expression: ...' })
 * ```
 */
export const parseSchedule = (
  spec: { readonly schedule?: string | undefined; readonly timeZone?: string | undefined },
  seed: string,
  defaultPeriod: Duration.Duration,
  /** The field the schedule is read from, as messages name it. */
  field = "spec.schedule"
): Result.Result<BackupSchedule, ScheduleProblem> => {
  const zone = spec.timeZone
  if (zone !== undefined && !knownTimeZone(zone)) {
    return Result.fail({
      reason: "UnknownTimeZone",
      message: `spec.timeZone "${zone}" is not a time zone this operator knows: use an IANA name such as Europe/Berlin or UTC`
    })
  }
  const text = spec.schedule?.trim()
  if (text === undefined) {
    return Result.succeed({
      _tag: "Every",
      periodMillis: Duration.toMillis(defaultPeriod),
      text: `every ${Duration.format(defaultPeriod)} (the operator's default)`
    })
  }
  const every = /^@every\s+(.+)$/u.exec(text)
  if (every !== null) {
    const parts = [...(every[1] ?? "").matchAll(/(\d+)([hms])/gu)]
    const millis = parts.reduce((sum, [, count, unit]) => sum + Number(count) * (unitMillis[unit ?? ""] ?? 0), 0)
    if (parts.map(([part]) => part).join("") !== every[1] || parts.length === 0) {
      return invalid(text, "needs a duration of hours, minutes and seconds, such as @every 6h or @every 1h30m", field)
    }
    if (millis < Duration.toMillis(minimumPeriod)) {
      return invalid(text, `is shorter than the minimum of ${Duration.format(minimumPeriod)}`, field)
    }
    if (millis > Duration.toMillis(maximumPeriod)) {
      return invalid(text, `is longer than the maximum of ${Duration.format(maximumPeriod)}`, field)
    }
    return Result.succeed({ _tag: "Every", periodMillis: millis, text })
  }
  const random = /^(@[a-z]+)-random$/u.exec(text)
  const expression = random === null ? (macros[text] ?? text) : spread(random[1] ?? "", seed)
  if (expression === undefined || (text.startsWith("@") && random === null && macros[text] === undefined)) {
    return invalid(
      text,
      "is not a known macro: use @hourly, @daily, @weekly, @monthly, @yearly, their -random forms, or @every",
      field
    )
  }
  if (expression.split(/\s+/u).length !== 5) {
    return invalid(text, "needs five fields: minute hour day-of-month month day-of-week", field)
  }
  const cron = Cron.parse(expression, zone ?? "UTC")
  if (Result.isFailure(cron)) return invalid(text, `is not a valid cron expression: ${cron.failure.message}`, field)
  if (!everMatches(cron.success)) return invalid(text, "never comes: no date matches it (such as 30 February)", field)
  return Result.succeed({
    _tag: "Cron",
    cron: cron.success,
    text: expression === text ? text : `${text} (${expression})`
  })
}

/** The first slot strictly after `time`, none before `anchor`. */
export const nextSlot = (schedule: BackupSchedule, anchor: number, time: number): number => {
  if (schedule._tag === "Cron") return Cron.next(schedule.cron, new Date(Math.max(time, anchor - 1))).getTime()
  if (time < anchor) return anchor
  return anchor + (Math.floor((time - anchor) / schedule.periodMillis) + 1) * schedule.periodMillis
}

/** The latest slot at or before `time`, if there is one at or after `anchor`. */
export const latestSlot = (schedule: BackupSchedule, anchor: number, time: number): number | undefined => {
  if (time < anchor) return undefined
  const slot =
    schedule._tag === "Cron"
      ? Cron.prev(schedule.cron, new Date(time + 1)).getTime()
      : anchor + Math.floor((time - anchor) / schedule.periodMillis) * schedule.periodMillis
  return slot >= anchor ? slot : undefined
}

/** What the schedule asks of a resource now: see {@link planSlot}. */
export type SlotDecision =
  /** Start the run of `slot` now. */
  | { readonly _tag: "Run"; readonly slot: number; readonly next: number }
  /** Nothing is due before `next`; `skipped` is a slot whose starting deadline has passed. */
  | { readonly _tag: "Wait"; readonly next: number; readonly skipped: number | undefined }
  /** Suspended: no run starts until `spec.suspend` is false again. */
  | { readonly _tag: "Suspended" }

/**
 * Decides whether a run is due, from the schedule and the slot of the last run
 * started. Only the latest slot that has passed since that run can run: the
 * slots missed while the operator was down, the resource suspended or the
 * previous run still running make at most one catch-up run, and none at all
 * once `startingDeadlineSeconds` past that slot has gone by. Slots before
 * `anchor` (the resource's creation) never run; an `@every` schedule's first
 * slot is the anchor itself, so a new resource backs up at once.
 *
 * Pure: the caller passes the clock.
 *
 * @example
 * ```ts
 * import { Duration, Result } from "effect"
 * const schedule = Result.getOrThrow(parseSchedule({ schedule: "@every 1h" }, "ns/name", Duration.minutes(5)))
 * const created = Date.parse("2026-01-01T00:00:00Z")
 * planSlot({ schedule, anchor: created, last: created, now: created + 90 * 60_000, suspend: false, startingDeadlineSeconds: undefined })
 * // { _tag: "Run", slot: created + 3_600_000, next: created + 7_200_000 }
 * ```
 */
export const planSlot = (input: {
  readonly schedule: BackupSchedule
  readonly anchor: number
  readonly last: number | undefined
  readonly now: number
  readonly suspend: boolean
  readonly startingDeadlineSeconds: number | undefined
}): SlotDecision => {
  const { schedule, anchor, last, now, suspend, startingDeadlineSeconds } = input
  if (suspend) return { _tag: "Suspended" }
  const due = latestSlot(schedule, anchor, now)
  if (due === undefined || (last !== undefined && due <= last)) {
    return { _tag: "Wait", next: nextSlot(schedule, anchor, Math.max(now, last ?? now)), skipped: undefined }
  }
  const next = nextSlot(schedule, anchor, now)
  if (startingDeadlineSeconds !== undefined && now - due > startingDeadlineSeconds * 1000) {
    return { _tag: "Wait", next, skipped: due }
  }
  return { _tag: "Run", slot: due, next }
}
