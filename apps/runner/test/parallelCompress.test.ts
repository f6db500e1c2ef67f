import { gunzipSync, zstdDecompressSync } from "node:zlib"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { makeBlockPool, parallelGzip, parallelZstd } from "../src/compress.ts"

// The block compressors as the pipeline uses them: contexts kept for block after
// block, block buffers from a pool that go round.

const KiB = 1024
const blockSize = 64 * KiB

/** Compressible, but not trivially: text-like lines with a counter. */
const dumpLike = (n: number): Buffer => {
  const lines: Array<string> = []
  for (let i = 0, bytes = 0; bytes < n; i++) {
    const line = `${i}\tcustomer ${i % 977}\t${(i * 2654435761) >>> 0}\tlorem ipsum dolor ${i % 13}\n`
    lines.push(line)
    bytes += line.length
  }
  return Buffer.from(lines.join("")).subarray(0, n)
}

/** Cuts `bytes` into pieces of uneven sizes (1 byte to over two blocks), as a pipe delivers them. */
const pieces = (bytes: Uint8Array): ReadonlyArray<Uint8Array> => {
  const sizes = [1, 4096, 70_001, 3, 200_000, 65_536, 12_345]
  const out: Array<Uint8Array> = []
  for (let at = 0, i = 0; at < bytes.byteLength; i++) {
    const size = Math.min(sizes[i % sizes.length] ?? 1, bytes.byteLength - at)
    out.push(bytes.subarray(at, at + size))
    at += size
  }
  return out
}

describe("parallelZstd and parallelGzip", () => {
  const input = dumpLike(2 * 1024 * KiB + 777)

  it.effect("zstd: frames in input order that decompress, concatenated, to the input", () =>
    Effect.gen(function* () {
      const frames = yield* Stream.fromIterable(pieces(input)).pipe(
        parallelZstd({ level: 3, blockSize, concurrency: 3, onError: (e) => e }),
        Stream.runCollect
      )
      expect(frames.length).toBe(Math.ceil(input.byteLength / blockSize))
      expect(zstdDecompressSync(Buffer.concat(frames))).toEqual(input)
      // Each frame decompresses on its own to its block: the contexts start a new frame per block.
      expect(zstdDecompressSync(frames[1] ?? new Uint8Array())).toEqual(input.subarray(blockSize, 2 * blockSize))
    })
  )

  it.effect("gzip: members in input order that gunzip, concatenated, to the input", () =>
    Effect.gen(function* () {
      const members = yield* Stream.fromIterable(pieces(input)).pipe(
        parallelGzip({ level: 1, blockSize, concurrency: 3, onError: (e) => e }),
        Stream.runCollect
      )
      expect(members.length).toBe(Math.ceil(input.byteLength / blockSize))
      expect(gunzipSync(Buffer.concat(members))).toEqual(input)
      expect(gunzipSync(members[2] ?? new Uint8Array())).toEqual(input.subarray(2 * blockSize, 3 * blockSize))
    })
  )

  it.effect("uses a few block buffers again and again, and never takes over a caller's buffer", () =>
    Effect.gen(function* () {
      const pool = makeBlockPool(blockSize, 4)
      const buffers = new Set<Uint8Array>()
      let taken = 0
      const counting = {
        take: () => {
          const buffer = pool.take()
          buffers.add(buffer)
          taken++
          return buffer
        },
        give: pool.give
      }
      // Whole blocks of the caller's own (passed through without a copy), then pieces (copied into the pool's).
      const own = [input.subarray(0, blockSize), Buffer.from(input.subarray(blockSize, 2 * blockSize))]
      const copies = own.map((block) => Buffer.from(block))
      const frames = yield* Stream.fromIterable([...own, ...pieces(input.subarray(2 * blockSize))]).pipe(
        // One piece at a time, as a pipe delivers them.
        Stream.rechunk(1),
        parallelZstd({ level: 3, blockSize, concurrency: 2, pool: counting, onError: (e) => e }),
        Stream.runCollect
      )
      expect(zstdDecompressSync(Buffer.concat(frames))).toEqual(input)
      expect(frames.length).toBe(Math.ceil(input.byteLength / blockSize))
      // About 30 blocks were cut from the pieces, into a handful of buffers.
      expect(taken).toBeGreaterThanOrEqual(frames.length - 2)
      expect(buffers.size).toBeLessThanOrEqual(8)
      expect(own).toEqual(copies)
    })
  )

  it.effect("a failure of the input fails the stream, and a new stream compresses as before", () =>
    Effect.gen(function* () {
      const failed = yield* Effect.flip(
        Stream.fromIterable(pieces(input)).pipe(
          Stream.concat(Stream.fail("pg_dump failed" as const)),
          parallelZstd({ level: 3, blockSize, onError: (e) => e }),
          Stream.runDrain
        )
      )
      expect(failed).toBe("pg_dump failed")
      const frames = yield* Stream.fromIterable(pieces(input)).pipe(
        parallelZstd({ level: 3, blockSize, onError: (e) => e }),
        Stream.runCollect
      )
      expect(zstdDecompressSync(Buffer.concat(frames))).toEqual(input)
    })
  )
})
