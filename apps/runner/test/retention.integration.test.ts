import { StorageLocation } from "@db-backup-operator/backup-api/contract"
import { GcsObjectStore, ObjectStore, StorageError } from "@db-backup-operator/storage"
import { GcsEmulator } from "@db-backup-operator/testing"
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { applyRetention, maxDeletionsPerPass } from "../src/retention.ts"

// Retention against the real fake-gcs-server: what stays in the bucket after a run.
const StoreLayer = Layer.unwrap(
  Effect.gen(function* () {
    const gcs = yield* GcsEmulator
    return GcsObjectStore.layer({ apiEndpoint: gcs.endpoint })
  })
)
const TestEnv = StoreLayer.pipe(Layer.provideMerge(GcsEmulator.layer))

const resource = { namespace: "team-a", name: "orders" }
const prefix = "backups/team-a/orders/"

let buckets = 0
/** A bucket holding `names` (small objects), and its name. */
const bucketWith = (names: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const bucket = `retention-${++buckets}`
    yield* (yield* GcsEmulator).createBucket(bucket)
    const store = yield* ObjectStore
    yield* Effect.forEach(
      names,
      (name) => store.writeSmall(bucket, name, "x", { contentType: "application/octet-stream" }),
      { concurrency: 16, discard: true }
    )
    return bucket
  })

const namesIn = (bucket: string) =>
  Effect.gen(function* () {
    const objects = yield* (yield* ObjectStore).list(bucket)
    return objects.map((info) => info.object).sort()
  })

/** The dump (named with `extension`) and manifest of the run at `stamp` (`YYYYMMDD-HHMMSS`). */
const runWith = (stamp: string, extension: string) => [
  `${prefix}backup-${stamp}${extension}`,
  `${prefix}backup-${stamp}.json`
]

/** The dump and manifest of the run at `stamp` (`YYYYMMDD-HHMMSS`), a plain gzip one. */
const run = (stamp: string) => runWith(stamp, ".sql.gz")

/** Stamps of `count` hourly runs from 2025-01-01T00:00Z on. */
const hourlyStamps = (count: number, from = Date.parse("2025-01-01T00:00:00Z")) =>
  Array.from({ length: count }, (_, n) => StorageLocation.runTimestamp(new Date(from + n * 3_600_000)))

/** The store, except that deleting `object` fails (as a store that refuses it mid-pass). */
const refusingToDelete = (object: string) =>
  Effect.gen(function* () {
    const store = yield* ObjectStore
    return ObjectStore.of({
      ...store,
      remove: (bucket, name) =>
        name === object
          ? Effect.fail(
              new StorageError({
                operation: "delete",
                bucket,
                object: name,
                status: 503,
                message: `delete ${name}: HTTP 503`
              })
            )
          : store.remove(bucket, name)
    })
  })

describe("applyRetention", () => {
  layer(TestEnv, { timeout: "120 seconds", excludeTestServices: true })((it) => {
    it.effect("keepLast 2: deletes older backups (manifest and dump) and failed runs' dumps, nothing else", () =>
      Effect.gen(function* () {
        const bucket = yield* bucketWith([
          ...run("20260101-000000"),
          ...run("20260102-000000"),
          // A run that failed after its upload: a dump without a manifest.
          `${prefix}backup-20260102-120000.sql.gz`,
          ...run("20260103-000000"),
          ...run("20260104-000000"),
          // Another resource, whose name starts the same, and another namespace's: never touched.
          "backups/team-a/orders-archive/backup-20250101-000000.sql.gz",
          "backups/team-a/orders-archive/backup-20250101-000000.json",
          "backups/team-b/orders/backup-20250101-000000.json"
        ])
        const result = yield* applyRetention({
          bucket,
          resource,
          current: `${prefix}backup-20260104-000000.json`,
          retention: { keepLast: 2 },
          timeZone: "UTC",
          now: Date.parse("2026-01-04T00:01:00Z")
        })
        expect(result).toEqual({ retained: 2, deleted: 3, deletedRuns: ["20260101-000000", "20260102-000000"] })
        expect(yield* namesIn(bucket)).toEqual(
          [
            ...run("20260103-000000"),
            ...run("20260104-000000"),
            "backups/team-a/orders-archive/backup-20250101-000000.sql.gz",
            "backups/team-a/orders-archive/backup-20250101-000000.json",
            "backups/team-b/orders/backup-20250101-000000.json"
          ].sort()
        )
      })
    )

    it.effect("counts and deletes custom-format backups (.dump…) as plain ones, across a change of format", () =>
      Effect.gen(function* () {
        const bucket = yield* bucketWith([
          ...run("20260101-000000"),
          ...runWith("20260102-000000", ".dump.gz"),
          // A custom-format run that failed after its upload.
          `${prefix}backup-20260102-120000.dump.gz`,
          ...runWith("20260103-000000", ".dump.zst.age"),
          ...runWith("20260104-000000", ".dump")
        ])
        const result = yield* applyRetention({
          bucket,
          resource,
          current: `${prefix}backup-20260104-000000.json`,
          retention: { keepLast: 2 },
          timeZone: "UTC",
          now: Date.parse("2026-01-04T00:01:00Z")
        })
        expect(result).toEqual({ retained: 2, deleted: 3, deletedRuns: ["20260101-000000", "20260102-000000"] })
        // The kept backups keep their dumps: a custom dump is never taken for a failed run's.
        expect(yield* namesIn(bucket)).toEqual(
          [...runWith("20260103-000000", ".dump.zst.age"), ...runWith("20260104-000000", ".dump")].sort()
        )
      })
    )

    it.effect("a store that refuses: the error is reported, never raised, and the backup stays", () =>
      Effect.gen(function* () {
        const result = yield* applyRetention({
          bucket: "no-such-bucket",
          resource,
          current: `${prefix}backup-20260104-000000.json`,
          retention: { keepLast: 1 },
          timeZone: "UTC",
          now: Date.now()
        })
        expect(result.deleted).toBe(0)
        expect(result.deletedRuns).toEqual([])
        expect(result.error).toMatch(/^retention: /u)
      })
    )

    it.effect("a store error mid-pass: what was deleted is reported, a backup whose manifest is gone included", () =>
      Effect.gen(function* () {
        const stamps = ["20260101-000000", "20260102-000000", "20260103-000000", "20260104-000000"]
        const bucket = yield* bucketWith(stamps.flatMap(run))
        const pass = {
          bucket,
          resource,
          current: `${prefix}backup-20260104-000000.json`,
          retention: { keepLast: 1 },
          timeZone: "UTC",
          now: Date.parse("2026-01-04T00:01:00Z")
        }
        // The second backup's manifest goes, then deleting its dump fails: the pass stops there.
        const stuck = `${prefix}backup-20260102-000000.sql.gz`
        const first = yield* applyRetention(pass).pipe(
          Effect.provideServiceEffect(ObjectStore, refusingToDelete(stuck))
        )
        expect(first).toMatchObject({ retained: 2, deleted: 2, deletedRuns: ["20260101-000000", "20260102-000000"] })
        expect(first.error).toMatch(/^retention: .*HTTP 503/u)
        expect(yield* namesIn(bucket)).toEqual([stuck, ...run("20260103-000000"), ...run("20260104-000000")].sort())

        // The next pass deletes the rest, and the dump left behind as a failed run's.
        const second = yield* applyRetention(pass)
        expect(second).toEqual({ retained: 1, deleted: 2, deletedRuns: ["20260103-000000"] })
        expect(yield* namesIn(bucket)).toEqual(run("20260104-000000").sort())
      })
    )

    it.effect(`deletes at most ${maxDeletionsPerPass} backups and failed runs' dumps a pass, oldest first`, () =>
      Effect.gen(function* () {
        // 105 old backups, 102 failed runs' dumps (between them), and this run's backup.
        const old = hourlyStamps(105)
        const failed = hourlyStamps(102, Date.parse("2025-01-01T00:30:00Z"))
        const current = "20260101-000000"
        const bucket = yield* bucketWith([
          ...old.flatMap(run),
          ...failed.map((stamp) => `${prefix}backup-${stamp}.sql.gz`),
          ...run(current)
        ])
        const pass = {
          bucket,
          resource,
          current: `${prefix}backup-${current}.json`,
          retention: { keepLast: 1 },
          timeZone: "UTC",
          now: Date.parse("2026-01-01T00:01:00Z")
        }

        const first = yield* applyRetention(pass)
        expect(first).toEqual({ retained: 6, deleted: 200, deletedRuns: old.slice(0, 100) })
        const left = yield* namesIn(bucket)
        expect(left).toEqual(
          [
            ...old.slice(100).flatMap(run),
            ...failed.slice(100).map((stamp) => `${prefix}backup-${stamp}.sql.gz`),
            ...run(current)
          ].sort()
        )

        const second = yield* applyRetention(pass)
        expect(second).toEqual({ retained: 1, deleted: 7, deletedRuns: old.slice(100) })
        expect(yield* namesIn(bucket)).toEqual(run(current).sort())
      })
    )

    it.effect("deletes no more backups than maxBackups asks", () =>
      Effect.gen(function* () {
        const old = hourlyStamps(5)
        const bucket = yield* bucketWith([...old.flatMap(run), ...run("20260101-000000")])
        const result = yield* applyRetention({
          bucket,
          resource,
          current: `${prefix}backup-20260101-000000.json`,
          retention: { keepLast: 1 },
          timeZone: "UTC",
          now: Date.parse("2026-01-01T00:01:00Z"),
          maxBackups: 2
        })
        expect(result).toEqual({ retained: 4, deleted: 2, deletedRuns: old.slice(0, 2) })
      })
    )
  })
})
