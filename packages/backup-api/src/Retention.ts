import { Schema, SchemaTransformation } from "effect"

/**
 * Which successful backups of one resource stay in the bucket: grandfather-
 * father-son (GFS) buckets as restic, K8up and Velero count them, evaluated in
 * the resource's time zone, with `maxAge` as a hard limit on top. The newest
 * successful backup always stays, whatever the policy says.
 */

const Count = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 10_000 }))

/** `30d`, `12h`, `1d12h`, `90m`: days, hours, minutes, seconds. */
export const AgeText = Schema.String.check(Schema.isMaxCodePoints(32), Schema.isPattern(/^([0-9]+[dhms])+$/u))

const count = (what: string) => Schema.optionalKey(Count.annotate({ description: what }))

/** The retention fields of a resource (`spec.retention`) and of the operator's `--default-retention`. */
export const Retention = Schema.Struct({
  keepLast: count("Keep the newest N backups."),
  keepHourly: count("Keep the newest backup of each of the last N hours that have one."),
  keepDaily: count("Keep the newest backup of each of the last N days that have one."),
  keepWeekly: count("Keep the newest backup of each of the last N ISO weeks (Monday to Sunday) that have one."),
  keepMonthly: count("Keep the newest backup of each of the last N months that have one."),
  keepYearly: count("Keep the newest backup of each of the last N years that have one."),
  maxAge: Schema.optionalKey(
    AgeText.annotate({
      description:
        "Delete backups older than this (such as 30d or 12h), even those a keep rule selects. Alone, it keeps everything younger."
    })
  )
}).annotate({
  description:
    "Which successful backups stay in the bucket; the others are deleted (the dump and its manifest) after each successful run. Hours, days, weeks, months and years are those of spec.timeZone. The newest successful backup is never deleted. Default: the operator's --default-retention."
})
export type Retention = typeof Retention.Type

const keys = ["keepLast", "keepHourly", "keepDaily", "keepWeekly", "keepMonthly", "keepYearly", "maxAge"] as const

/**
 * A retention as one line of text, `keepLast=3,keepDaily=7,maxAge=90d`: the
 * operator's `--default-retention` flag and the runner's `BACKUP_RETENTION`.
 *
 * @example
 * ```ts
 * Schema.decodeUnknownSync(RetentionFromString)("keepDaily=7,keepWeekly=4") // { keepDaily: 7, keepWeekly: 4 }
 * ```
 */
export const RetentionFromString = Schema.String.check(
  // Only known keys: a misspelt rule must not be dropped silently (it would keep, or delete, other backups).
  Schema.isPattern(
    /^\s*(keepLast|keepHourly|keepDaily|keepWeekly|keepMonthly|keepYearly|maxAge)=[^,]*(\s*,\s*(keepLast|keepHourly|keepDaily|keepWeekly|keepMonthly|keepYearly|maxAge)=[^,]*)*\s*$/u
  )
).pipe(
  Schema.decodeTo(
    Schema.Struct({
      keepLast: Schema.optionalKey(Schema.NumberFromString.pipe(Schema.decodeTo(Count))),
      keepHourly: Schema.optionalKey(Schema.NumberFromString.pipe(Schema.decodeTo(Count))),
      keepDaily: Schema.optionalKey(Schema.NumberFromString.pipe(Schema.decodeTo(Count))),
      keepWeekly: Schema.optionalKey(Schema.NumberFromString.pipe(Schema.decodeTo(Count))),
      keepMonthly: Schema.optionalKey(Schema.NumberFromString.pipe(Schema.decodeTo(Count))),
      keepYearly: Schema.optionalKey(Schema.NumberFromString.pipe(Schema.decodeTo(Count))),
      maxAge: Schema.optionalKey(AgeText)
    }),
    SchemaTransformation.transform({
      decode: (text: string) =>
        Object.fromEntries(
          text
            .split(",")
            .map((part) => part.trim())
            .filter((part) => part.length > 0)
            .map((part) => {
              const equals = part.indexOf("=")
              return equals < 0 ? [part, ""] : [part.slice(0, equals).trim(), part.slice(equals + 1).trim()]
            })
        ),
      encode: (fields: Readonly<Record<string, string | undefined>>) =>
        keys
          .filter((key) => fields[key] !== undefined)
          .map((key) => `${key}=${fields[key]}`)
          .join(",")
    })
  )
)

const unitSeconds: Readonly<Record<string, number>> = { d: 86_400, h: 3600, m: 60, s: 1 }

/**
 * `maxAge` in milliseconds.
 *
 * @example
 * ```ts
 * ageMillis("1d12h") // 129600000
 * ```
 */
export const ageMillis = (text: string): number =>
  [...text.matchAll(/(\d+)([dhms])/gu)].reduce(
    (sum, [, amount, unit]) => sum + Number(amount) * (unitSeconds[unit ?? ""] ?? 0) * 1000,
    0
  )

/** The calendar fields of an instant in a time zone. */
const localParts = (timeZone: string) => {
  const format = new Intl.DateTimeFormat("en-US", {
    timeZone,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    hourCycle: "h23"
  })
  return (millis: number) => {
    const parts = Object.fromEntries(format.formatToParts(new Date(millis)).map((part) => [part.type, part.value]))
    return { year: Number(parts.year), month: Number(parts.month), day: Number(parts.day), hour: Number(parts.hour) }
  }
}

/** ISO 8601 week (`2026-W01`) of a calendar date: weeks start on Monday; week 1 holds the year's first Thursday. */
const isoWeek = (year: number, month: number, day: number): string => {
  const date = new Date(Date.UTC(year, month - 1, day))
  const weekday = date.getUTCDay() === 0 ? 7 : date.getUTCDay()
  date.setUTCDate(date.getUTCDate() + 4 - weekday)
  const weekYear = date.getUTCFullYear()
  const week = Math.ceil(((date.getTime() - Date.UTC(weekYear, 0, 1)) / 86_400_000 + 1) / 7)
  return `${weekYear}-W${String(week).padStart(2, "0")}`
}

/** One successful backup, by an id the caller chooses (its manifest's name) and when it ran. */
export interface Candidate {
  readonly id: string
  readonly time: number
}

/**
 * Splits the successful backups of one resource into those a retention keeps
 * and those it deletes. For each rule, the backups are walked newest first and
 * the newest of each hour, day, ISO week, month or year (in `timeZone`) is kept
 * until the rule has its count; a backup kept by any rule stays. `maxAge`
 * then deletes what is older than `now - maxAge`. The newest backup is always
 * kept. A retention with no rule keeps everything.
 *
 * @example
 * ```ts
 * const day = 86_400_000
 * const backups = [0, 1, 2, 3].map((n) => ({ id: `b${n}`, time: Date.UTC(2026, 0, 1) + n * day }))
 * selectRetained(backups, { keepLast: 2 }, "UTC", Date.UTC(2026, 0, 5))
 * // { keep: ["b3", "b2"], remove: ["b1", "b0"] }
 * ```
 */
export const selectRetained = (
  backups: ReadonlyArray<Candidate>,
  retention: Retention,
  timeZone: string,
  now: number
): { readonly keep: ReadonlyArray<string>; readonly remove: ReadonlyArray<string> } => {
  const newestFirst = [...backups].sort((a, b) => b.time - a.time || b.id.localeCompare(a.id))
  const parts = localParts(timeZone)
  const bucketOf: ReadonlyArray<readonly [number | undefined, (time: number) => string]> = [
    [retention.keepLast, (time) => String(time)],
    [
      retention.keepHourly,
      (time) => {
        const p = parts(time)
        return `${p.year}-${p.month}-${p.day}T${p.hour}`
      }
    ],
    [
      retention.keepDaily,
      (time) => {
        const p = parts(time)
        return `${p.year}-${p.month}-${p.day}`
      }
    ],
    [
      retention.keepWeekly,
      (time) => {
        const p = parts(time)
        return isoWeek(p.year, p.month, p.day)
      }
    ],
    [
      retention.keepMonthly,
      (time) => {
        const p = parts(time)
        return `${p.year}-${p.month}`
      }
    ],
    [retention.keepYearly, (time) => String(parts(time).year)]
  ]
  const rules = bucketOf.filter(([limit]) => limit !== undefined)
  const kept = new Set<string>()
  if (rules.length === 0) for (const backup of newestFirst) kept.add(backup.id)
  for (const [limit, bucket] of rules) {
    const seen = new Set<string>()
    for (const backup of newestFirst) {
      if (seen.size >= (limit ?? 0)) break
      const key = bucket(backup.time)
      if (seen.has(key)) continue
      seen.add(key)
      kept.add(backup.id)
    }
  }
  if (retention.maxAge !== undefined) {
    const oldest = now - ageMillis(retention.maxAge)
    for (const backup of newestFirst) if (backup.time < oldest) kept.delete(backup.id)
  }
  const newest = newestFirst[0]
  if (newest !== undefined) kept.add(newest.id)
  return {
    keep: newestFirst.filter((backup) => kept.has(backup.id)).map((backup) => backup.id),
    remove: newestFirst.filter((backup) => !kept.has(backup.id)).map((backup) => backup.id)
  }
}
