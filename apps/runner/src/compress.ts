import { availableParallelism } from "node:os"
import { constants, gzip, zstdCompress } from "node:zlib"
import { Effect, Stream } from "effect"

/**
 * Compression that uses every core: the dump is cut into blocks, each block is
 * compressed on libuv's thread pool as its own gzip member or zstd frame, and
 * they are emitted in order. Concatenated members are one valid gzip file
 * (RFC 1952 §2.2), concatenated frames one zstd stream (RFC 8878 §3.1):
 * `gunzip`, `zstd -d`, Node, Go and Python read them whole. Since deflate
 * only looks 32 KiB back (and zstd's default window is of the same order as a
 * block), independent 1 MiB blocks cost little compression.
 */

/** Bytes per block: large enough that per-block costs vanish, small enough to keep memory low. */
export const blockBytes = 1024 * 1024

/**
 * Blocks compressed at once: the cores we may use, at most 4 (libuv's
 * default thread pool; DNS lookups and file I/O share it).
 */
export const defaultConcurrency = Math.max(1, Math.min(4, availableParallelism()))

/**
 * Regroups a byte stream into blocks of at least `size` bytes (the last one
 * may be smaller). Fewer, larger elements also make every later stage cheaper.
 *
 * @example
 * ```ts
 * Stream.make(Uint8Array.of(1), Uint8Array.of(2, 3)).pipe(toBlocks(2)) // [Uint8Array [1, 2, 3]]
 * ```
 */
export const toBlocks =
  (size: number) =>
  <E, R>(self: Stream.Stream<Uint8Array, E, R>): Stream.Stream<Uint8Array, E, R> =>
    self.pipe(
      Stream.mapAccumArray(
        () => ({ parts: [] as Uint8Array[], bytes: 0 }),
        (state, chunks) => {
          const out: Array<Uint8Array> = []
          for (const chunk of chunks) {
            state.parts.push(chunk)
            state.bytes += chunk.byteLength
            if (state.bytes >= size) {
              out.push(Buffer.concat(state.parts, state.bytes))
              state.parts = []
              state.bytes = 0
            }
          }
          return [state, out]
        },
        { onHalt: (state) => (state.bytes > 0 ? [Buffer.concat(state.parts, state.bytes)] : []) }
      )
    )

/** Compresses one block into a complete gzip member, off the main thread. */
export const gzipMember = (block: Uint8Array, level: number): Effect.Effect<Uint8Array, Error> =>
  Effect.callback<Uint8Array, Error>((resume) => {
    gzip(block, { level }, (error, member) => resume(error === null ? Effect.succeed(member) : Effect.fail(error)))
  })

/** zstd's own default level: about gzip -1's speed at a better ratio. */
export const defaultZstdLevel = 3

/** Compresses one block into a complete zstd frame, off the main thread. */
export const zstdFrame = (block: Uint8Array, level: number): Effect.Effect<Uint8Array, Error> =>
  Effect.callback<Uint8Array, Error>((resume) => {
    zstdCompress(block, { params: { [constants.ZSTD_c_compressionLevel]: level } }, (error, frame) =>
      resume(error === null ? Effect.succeed(frame) : Effect.fail(error))
    )
  })

/** Compresses a byte stream block by block with `compressBlock`, `concurrency` blocks in flight, in order. */
const parallelBlocks =
  <E2>(
    compressBlock: (block: Uint8Array) => Effect.Effect<Uint8Array, Error>,
    options: { readonly onError: (error: Error) => E2; readonly concurrency?: number; readonly blockSize?: number }
  ) =>
  <E, R>(self: Stream.Stream<Uint8Array, E, R>): Stream.Stream<Uint8Array, E | E2, R> =>
    self.pipe(
      toBlocks(options.blockSize ?? blockBytes),
      Stream.mapEffect((block) => compressBlock(block).pipe(Effect.mapError(options.onError)), {
        concurrency: options.concurrency ?? defaultConcurrency
      })
    )

/**
 * Compresses a byte stream into zstd frames with `concurrency` blocks in
 * flight; output order is input order.
 *
 * @example
 * ```ts
 * import { DumpFailed } from "./errors.ts"
 * declare const dump: Stream.Stream<Uint8Array, DumpFailed>
 * dump.pipe(parallelZstd({ level: 3, onError: (e) => new DumpFailed({ message: `zstd failed: ${e.message}` }) }))
 * ```
 */
export const parallelZstd = <E2>(options: {
  readonly level: number
  readonly onError: (error: Error) => E2
  readonly concurrency?: number
  readonly blockSize?: number
}) => parallelBlocks((block) => zstdFrame(block, options.level), options)

/**
 * Gzips a byte stream with `concurrency` blocks in flight; output order is
 * input order. Memory in flight: about `concurrency` x (block + its output).
 *
 * @example
 * ```ts
 * import { DumpFailed } from "./errors.ts"
 * declare const dump: Stream.Stream<Uint8Array, DumpFailed>
 * dump.pipe(parallelGzip({ level: 1, onError: (e) => new DumpFailed({ message: `gzip failed: ${e.message}` }) }))
 * ```
 */
export const parallelGzip = <E2>(options: {
  readonly level: number
  readonly onError: (error: Error) => E2
  readonly concurrency?: number
  readonly blockSize?: number
}) => parallelBlocks((block) => gzipMember(block, options.level), options)
