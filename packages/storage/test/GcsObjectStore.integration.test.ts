import { GcsObjectStore, ObjectStore } from "@db-backup-operator/storage"
import { GcsEmulator } from "@db-backup-operator/testing"
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Exit, Layer, Stream } from "effect"

// The GCS ObjectStore against the real fake-gcs-server.
const StoreLayer = Layer.unwrap(
  Effect.gen(function* () {
    const gcs = yield* GcsEmulator
    return GcsObjectStore.layer({ apiEndpoint: gcs.endpoint })
  })
)
const TestEnv = StoreLayer.pipe(Layer.provideMerge(GcsEmulator.layer))

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const megabyte = (seed: number) => Uint8Array.from({ length: 1024 * 1024 }, (_, i) => (i * 31 + seed) % 251)

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

    it.effect("leaves no object when aborted after megabytes were sent", () =>
      Effect.gen(function* () {
        const store = yield* ObjectStore
        const bucket = yield* freshBucket
        yield* Effect.scoped(
          Effect.gen(function* () {
            const upload = yield* store.upload(bucket, "big.bin", { contentType: "application/octet-stream" })
            for (let i = 0; i < 12; i++) yield* upload.write(megabyte(i))
            yield* upload.abort("test")
            // Idempotent, and a commit after an abort fails.
            yield* upload.abort("again")
            expect(Exit.isFailure(yield* Effect.exit(upload.commit))).toBe(true)
            expect(Exit.isFailure(yield* Effect.exit(upload.write(megabyte(0))))).toBe(true)
          })
        )
        expect(yield* store.exists(bucket, "big.bin")).toBe(false)
        expect(yield* store.list(bucket)).toEqual([])
      })
    )

    it.effect("aborts when the upload's Scope closes on a failure, before commit", () =>
      Effect.gen(function* () {
        const store = yield* ObjectStore
        const bucket = yield* freshBucket
        const exit = yield* Effect.exit(
          Effect.scoped(
            Effect.gen(function* () {
              const upload = yield* store.upload(bucket, "failed.bin", { contentType: "application/octet-stream" })
              yield* Stream.range(0, 7).pipe(
                Stream.map(megabyte),
                Stream.concat(Stream.fail("the producer failed" as const)),
                Stream.run(upload.sink)
              )
              return yield* upload.commit
            })
          )
        )
        expect(exit).toEqual(Exit.fail("the producer failed"))
        expect(yield* store.list(bucket)).toEqual([])
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

    it.effect("reports missing objects as ObjectNotFound", () =>
      Effect.gen(function* () {
        const store = yield* ObjectStore
        const bucket = yield* freshBucket
        expect((yield* Effect.flip(store.stat(bucket, "nope")))._tag).toBe("ObjectNotFound")
        expect((yield* Effect.flip(store.read(bucket, "nope")))._tag).toBe("ObjectNotFound")
        expect((yield* Effect.flip(Stream.runCollect(store.readStream(bucket, "nope"))))._tag).toBe("ObjectNotFound")
        const missingBucket = yield* Effect.flip(
          Effect.scoped(
            Effect.gen(function* () {
              const upload = yield* store.upload("no-such-bucket", "x", { contentType: "text/plain" })
              yield* upload.write(encoder.encode("x"))
              return yield* upload.commit
            })
          )
        )
        expect(missingBucket._tag).toBe("StorageError")
        expect(missingBucket.message).toContain("gs://no-such-bucket/x")
        expect(missingBucket.message).not.toContain("\n")
      })
    )
  })
})
