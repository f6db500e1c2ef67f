import { gunzipSync } from "node:zlib"
import { parallelGzip, toBlocks } from "@db-backup-operator/runner"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"

const bytes = (n: number, seed = 0) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) % 256)

describe("toBlocks", () => {
  it.effect("regroups chunks into blocks of at least the size, keeping every byte in order", () =>
    Effect.gen(function* () {
      const chunks = [bytes(3), bytes(4, 1), bytes(1, 2), bytes(9, 3), bytes(2, 4)]
      const blocks = yield* Stream.fromIterable(chunks).pipe(toBlocks(5), Stream.runCollect)
      expect(blocks.map((b) => b.byteLength)).toEqual([7, 10, 2])
      expect(Buffer.concat([...blocks])).toEqual(Buffer.concat(chunks))
    })
  )

  it.effect("emits nothing for an empty stream", () =>
    Effect.gen(function* () {
      expect(yield* Stream.empty.pipe(toBlocks(5), Stream.runCollect)).toEqual([])
    })
  )
})

describe("parallelGzip", () => {
  it.effect("produces one gzip file (concatenated members) that gunzips to the input", () =>
    Effect.gen(function* () {
      const chunks = Array.from({ length: 40 }, (_, i) => bytes(10_000 + i, i))
      const members = yield* Stream.fromIterable(chunks).pipe(
        parallelGzip({ level: 1, blockSize: 64 * 1024, concurrency: 4, onError: (e) => e }),
        Stream.runCollect
      )
      expect(members.length).toBeGreaterThan(1)
      expect(gunzipSync(Buffer.concat([...members]))).toEqual(Buffer.concat(chunks))
    })
  )
})
