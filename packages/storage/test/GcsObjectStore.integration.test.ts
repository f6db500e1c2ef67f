import { GcsObjectStore, ObjectStore } from "@db-backup-operator/storage"
import { GcsEmulator } from "@db-backup-operator/testing"
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Layer, Stream } from "effect"

// The GCS ObjectStore against the real fake-gcs-server. What every store shares (aborts,
// missing objects and buckets, ...) is in GcsObjectStore.conformance.integration.test.ts.
const StoreLayer = Layer.unwrap(
  Effect.gen(function* () {
    const gcs = yield* GcsEmulator
    return GcsObjectStore.layer({ apiEndpoint: gcs.endpoint })
  })
)
const TestEnv = StoreLayer.pipe(Layer.provideMerge(GcsEmulator.layer))

const encoder = new TextEncoder()
const decoder = new TextDecoder()

let buckets = 0
const freshBucket = Effect.gen(function* () {
  const name = `store-test-${++buckets}`
  yield* (yield* GcsEmulator).createBucket(name)
  return name
})

describe("GcsObjectStore", () => {
  layer(TestEnv, { timeout: "120 seconds", excludeTestServices: true })((it) => {
    it.effect("streams an upload that appears only when committed", () =>
      Effect.gen(function* () {
        const store = yield* ObjectStore
        const bucket = yield* freshBucket
        const info = yield* Effect.scoped(
          Effect.gen(function* () {
            const upload = yield* store.upload(bucket, "dir/a.sql", {
              contentType: "application/sql",
              metadata: { origin: "test" }
            })
            yield* Stream.make(encoder.encode("select "), encoder.encode("1;\n")).pipe(Stream.run(upload.sink))
            expect(yield* upload.bytesWritten).toBe(10)
            expect(yield* store.exists(bucket, "dir/a.sql")).toBe(false)
            return yield* upload.commit
          })
        )
        expect(info).toMatchObject({ bucket, object: "dir/a.sql", size: 10, metadata: { origin: "test" } })
        expect(decoder.decode(yield* store.read(bucket, "dir/a.sql"))).toBe("select 1;\n")
        expect(yield* store.stat(bucket, "dir/a.sql")).toMatchObject({ size: 10, metadata: { origin: "test" } })
      })
    )

    it.effect("writes small objects, lists, streams and removes them", () =>
      Effect.gen(function* () {
        const store = yield* ObjectStore
        const bucket = yield* freshBucket
        const json = yield* store.writeSmall(bucket, "p/manifest.json", { size: 3, ok: true })
        expect(json).toMatchObject({ size: 20, contentType: "application/json" })
        yield* store.writeSmall(bucket, "p/text.txt", "hello")
        yield* store.writeSmall(bucket, "q/bytes.bin", Uint8Array.of(1, 2, 3))
        expect(JSON.parse(decoder.decode(yield* store.read(bucket, "p/manifest.json")))).toEqual({ size: 3, ok: true })
        expect((yield* store.list(bucket, { prefix: "p/" })).map((o) => o.object).sort()).toEqual([
          "p/manifest.json",
          "p/text.txt"
        ])
        const streamed = yield* store.readStream(bucket, "q/bytes.bin").pipe(Stream.runCollect)
        expect(Buffer.concat([...streamed])).toEqual(Buffer.from([1, 2, 3]))
        yield* store.remove(bucket, "p/text.txt")
        yield* store.remove(bucket, "p/text.txt")
        expect(yield* store.exists(bucket, "p/text.txt")).toBe(false)
      })
    )
  })
})
