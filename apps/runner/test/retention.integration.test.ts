import { GcsObjectStore, ObjectStore } from "@db-backup-operator/storage"
import { GcsEmulator } from "@db-backup-operator/testing"
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { applyRetention } from "../src/retention.ts"

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
    for (const name of names) yield* store.writeSmall(bucket, name, "x", { contentType: "application/octet-stream" })
    return bucket
  })

const namesIn = (bucket: string) =>
  Effect.gen(function* () {
    const objects = yield* (yield* ObjectStore).list(bucket)
    return objects.map((info) => info.object).sort()
  })

/** The dump and manifest of the run at `stamp` (`YYYYMMDD-HHMMSS`). */
const run = (stamp: string) => [`${prefix}backup-${stamp}.sql.gz`, `${prefix}backup-${stamp}.json`]

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
        expect(result).toEqual({ retained: 2, deleted: 3 })
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
        expect(result.error).toMatch(/^retention: /u)
      })
    )
  })
})
