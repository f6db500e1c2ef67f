import { availableParallelism } from "node:os"
import type { Transform } from "node:stream"
import { constants, createGzip, createZstdCompress, type Gzip, gzip, type ZlibReset, zstdCompress } from "node:zlib"
import { Effect, Stream } from "effect"

/**
 * Compression that uses every core: the dump is cut into blocks, each block is
 * compressed on libuv's thread pool as its own gzip member or zstd frame (in
 * one task, by a context kept for block after block), and they are emitted in
 * order. Concatenated members are one valid gzip file
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
            // A block already: passed on as it is (Buffer.concat copies even a single part).
            if (state.bytes === 0 && chunk.byteLength >= size) {
              out.push(chunk)
              continue
            }
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

/**
 * Room for a block's whole compressed output (above zstd's and deflate's
 * bounds for incompressible input). Node's convenience functions otherwise
 * compress into 16 KiB at a time (their default `chunkSize`), one thread-pool
 * task and one main-thread callback per 16 KiB of output: for zstd that took
 * about twice the CPU time of compressing the block in one task.
 */
const outputRoom = (bytes: number): number => bytes + (bytes >>> 7) + 64 * 1024

/**
 * The output in a buffer of its own size: in one task, Node returns a view of
 * its `outputRoom`-sized output buffer, and a 300 KB frame must not keep
 * 1 MiB alive while later stages gather frames into larger parts.
 */
const ownBuffer = (output: Buffer): Uint8Array =>
  output.byteLength < output.buffer.byteLength / 2 ? Buffer.from(output) : output

/** Compresses one block into a complete gzip member, off the main thread. */
export const gzipMember = (block: Uint8Array, level: number): Effect.Effect<Uint8Array, Error> =>
  Effect.callback<Uint8Array, Error>((resume) => {
    gzip(block, { level, chunkSize: outputRoom(block.byteLength) }, (error, member) =>
      resume(error === null ? Effect.succeed(ownBuffer(member)) : Effect.fail(error))
    )
  })

/** zstd's own default level: about gzip -1's speed at a better ratio. */
export const defaultZstdLevel = 3

/** Compresses one block into a complete zstd frame, off the main thread. */
export const zstdFrame = (block: Uint8Array, level: number): Effect.Effect<Uint8Array, Error> =>
  Effect.callback<Uint8Array, Error>((resume) => {
    zstdCompress(
      block,
      { chunkSize: outputRoom(block.byteLength), params: { [constants.ZSTD_c_compressionLevel]: level } },
      (error, frame) => resume(error === null ? Effect.succeed(ownBuffer(frame)) : Effect.fail(error))
    )
  })

/**
 * Block buffers that go round: pg_dump's output is read into them
 * (dumpProcess.ts), or pieces are copied into them, and a block's buffer is
 * used again once the block is compressed. Memory allocated per block (a
 * fresh 1 MiB buffer, and a fresh zstd context of a few MB, below) comes back
 * only through V8's garbage collection: with the pipe's per-read buffers it
 * forced a full collection every ~6 MB of dump, a fifth of the main thread.
 */
export interface BlockPool {
  readonly take: () => Buffer
  /** Gives a compressed block's buffer back (only whole blocks: the last, short one is dropped). */
  readonly give: (block: Uint8Array) => void
}

/** A pool of `size`-byte buffers that keeps at most `keep` of them free for the next block. */
export const makeBlockPool = (size: number, keep: number): BlockPool => {
  const free: Array<Buffer> = []
  // Only its own buffers come back: a caller's block that merely passed through stays the caller's.
  const own = new WeakMap<Uint8Array, Buffer>()
  return {
    take: () => {
      const buffer = free.pop() ?? Buffer.allocUnsafe(size)
      own.set(buffer, buffer)
      return buffer
    },
    give: (block) => {
      const buffer = own.get(block)
      if (buffer !== undefined && free.length < keep && !free.includes(buffer)) free.push(buffer)
    }
  }
}

/**
 * Regroups a byte stream into blocks of exactly `size` bytes (the last may be
 * shorter), in buffers of `pool`; pieces that are whole blocks already are
 * passed on as they are.
 */
const toPooledBlocks =
  (size: number, pool: BlockPool) =>
  <E, R>(self: Stream.Stream<Uint8Array, E, R>): Stream.Stream<Uint8Array, E, R> =>
    self.pipe(
      Stream.mapAccumArray(
        () => ({ block: undefined as Buffer | undefined, filled: 0 }),
        (state, chunks) => {
          const out: Array<Uint8Array> = []
          for (const chunk of chunks) {
            if (state.filled === 0 && chunk.byteLength === size) {
              out.push(chunk)
              continue
            }
            for (let offset = 0; offset < chunk.byteLength; ) {
              const block = state.block ?? pool.take()
              state.block = block
              const n = Math.min(size - state.filled, chunk.byteLength - offset)
              block.set(chunk.subarray(offset, offset + n), state.filled)
              state.filled += n
              offset += n
              if (state.filled === size) {
                out.push(block)
                state.block = undefined
                state.filled = 0
              }
            }
          }
          return [state, out]
        },
        { onHalt: (state) => (state.block === undefined ? [] : [state.block.subarray(0, state.filled)]) }
      )
    )

/**
 * A compression context kept for block after block. Every write ends a gzip
 * member (Z_FINISH, then `reset` for the next header) or a zstd frame
 * (ZSTD_e_end; the next write starts a new frame), so each block is still
 * compressed on its own, in one thread-pool task, without allocating a new
 * context (for zstd level 3 a few MB) per block.
 */
interface Compressor {
  readonly compress: (block: Uint8Array) => Effect.Effect<Uint8Array, Error>
  /** False once it failed or was interrupted: it is closed then, never used again. */
  readonly usable: () => boolean
  readonly close: () => void
}

const makeCompressor = (stream: Transform, afterEach: () => void): Compressor => {
  let usable = true
  let pieces: Array<Buffer> = []
  // Flowing mode: output arrives as `data` events before the write's callback.
  stream.on("data", (piece: Buffer) => {
    pieces.push(piece)
  })
  // Also reported to the write's callback; the listener keeps it from being an uncaught exception.
  stream.on("error", () => {
    usable = false
  })
  const close = () => {
    usable = false
    stream.destroy()
  }
  const compress = (block: Uint8Array) =>
    Effect.callback<Uint8Array, Error>((resume) => {
      pieces = []
      stream.write(block, (error) => {
        if (error !== null && error !== undefined) {
          close()
          resume(Effect.fail(error))
          return
        }
        afterEach()
        // Not copied: consecutive outputs are views of one shared `outputRoom`-sized buffer (Node
        // starts a new one when the rest is full), so a later stage that gathers outputs into
        // larger parts keeps only about a third more memory alive than the bytes it holds.
        const output = pieces.length === 1 && pieces[0] !== undefined ? pieces[0] : Buffer.concat(pieces)
        pieces = []
        resume(Effect.succeed(output))
      })
      // Interrupted mid-block: the context holds half a frame, so it goes.
      return Effect.sync(close)
    })
  return { compress, usable: () => usable, close }
}

/** How {@link parallelZstd} and {@link parallelGzip} work. */
export interface CompressOptions<E2> {
  readonly onError: (error: Error) => E2
  /** Blocks compressed at once (default {@link defaultConcurrency}). */
  readonly concurrency?: number
  /** Bytes per block (default {@link blockBytes}). */
  readonly blockSize?: number
  /**
   * Where block buffers come from and go back to once compressed (default: a
   * pool of its own). Pass the reader's pool when the input's pieces are
   * whole blocks from it, so they are compressed without a copy and reused.
   */
  readonly pool?: BlockPool | undefined
}

/**
 * Compresses a byte stream block by block with compressors from `create`,
 * `concurrency` blocks in flight, output in input order. Memory: about
 * `concurrency` x (context + block + output), plus two spare blocks.
 */
const parallelBlocks =
  <E2>(create: () => Compressor, options: CompressOptions<E2>) =>
  <E, R>(self: Stream.Stream<Uint8Array, E, R>): Stream.Stream<Uint8Array, E | E2, R> =>
    Stream.unwrap(
      Effect.gen(function* () {
        const concurrency = options.concurrency ?? defaultConcurrency
        const size = options.blockSize ?? blockBytes
        const pool = options.pool ?? makeBlockPool(size, concurrency + 2)
        const idle: Array<Compressor> = []
        // Compressors still busy when the stream ends early are closed by their interruption.
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => {
            for (const compressor of idle.splice(0)) compressor.close()
          })
        )
        const compressBlock = (block: Uint8Array) =>
          Effect.suspend(() => {
            const compressor = idle.pop() ?? create()
            return compressor.compress(block).pipe(
              Effect.tap(() =>
                Effect.sync(() => {
                  // Compressed: the block's bytes are no longer needed, its buffer can take the next one.
                  pool.give(block)
                  if (compressor.usable()) idle.push(compressor)
                })
              ),
              Effect.mapError(options.onError)
            )
          })
        return self.pipe(toPooledBlocks(size, pool), Stream.mapEffect(compressBlock, { concurrency }))
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
export const parallelZstd = <E2>(options: CompressOptions<E2> & { readonly level: number }) =>
  parallelBlocks(
    () =>
      makeCompressor(
        createZstdCompress({
          chunkSize: outputRoom(options.blockSize ?? blockBytes),
          flush: constants.ZSTD_e_end,
          params: { [constants.ZSTD_c_compressionLevel]: options.level }
        }),
        () => {}
      ),
    options
  )

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
export const parallelGzip = <E2>(options: CompressOptions<E2> & { readonly level: number }) =>
  parallelBlocks(() => {
    const stream = createGzip({
      level: options.level,
      chunkSize: outputRoom(options.blockSize ?? blockBytes),
      flush: constants.Z_FINISH
    })
    // A finished deflate stream takes no more input: reset starts the next member (with its header).
    // Every zlib stream has `reset`; Node's types declare it only on Deflate and Inflate.
    return makeCompressor(stream, () => (stream as Gzip & ZlibReset).reset())
  }, options)
