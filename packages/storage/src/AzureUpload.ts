import { randomUUID } from "node:crypto"
import type { BlockBlobClient } from "@azure/storage-blob"
import { Effect, Exit, FiberSet, type Scope, Semaphore } from "effect"
import { azureError } from "./AzureError.ts"
import { encodeMetadata } from "./AzureMetadata.ts"
import { type ObjectInfo, type Upload, type UploadState, uploadOf, type WriteOptions } from "./ObjectStore.ts"
import type { ObjectTarget, StorageError } from "./StorageError.ts"

/**
 * A streaming upload to a block blob: the bytes are cut into blocks staged
 * (Put Block) a few at a time, and the blob is created or replaced only by the
 * final Put Block List. Staged blocks that are never committed stay invisible
 * (Azure discards them after a week, or at the blob's next commit), so an
 * aborted upload leaves neither a new blob nor a change to an existing one.
 *
 * Staging is done here rather than with the SDK's `uploadStream`, which stages
 * its blocks without the abort signal: aborting it leaves up to `concurrency`
 * block requests running after the upload's Scope has closed. Here every
 * request is an interruptible effect, and aborting interrupts (cancels) them
 * and waits for them.
 *
 * A chunk handed to `write` is copied at once into the block being gathered
 * (the caller may reuse it), and the `concurrency + 1` block buffers are
 * allocated once and used again: concatenating the chunks into a new 8 MiB
 * buffer per block (each page faulted in, then garbage) took more of the
 * main thread than the requests themselves at 100 MB/s.
 */

/** Tuning shared by every upload of a store. */
export interface UploadSettings {
  /** Bytes per staged block (the last one may be smaller). */
  readonly blockSizeBytes: number
  /** Blocks staged at once; a write waits while all are busy (backpressure). */
  readonly concurrency: number
}

/** Azure's limit on the number of blocks in a block blob. */
export const maxBlocks = 50_000

/** Where an upload is in its life; only an `open` upload takes writes or can be committed. */

/**
 * Starts an upload to `client`. It lives in the current Scope: closing the
 * Scope before a successful commit aborts it. Memory is bounded by
 * `blockSizeBytes × (concurrency + 1)`: the blocks being staged plus the one
 * being gathered.
 */
export const startUpload = (
  client: BlockBlobClient,
  target: ObjectTarget,
  options: WriteOptions,
  settings: UploadSettings
): Effect.Effect<Upload, never, Scope.Scope> =>
  Effect.gen(function* () {
    const stagers = yield* FiberSet.make<void, never>()
    const slots = yield* Semaphore.make(settings.concurrency)
    // Block ids must all have the same length within a blob; a random prefix keeps two
    // uploads to the same name from staging over each other's blocks.
    const prefix = randomUUID()
    const blockIds: Array<string> = []
    let state: UploadState = "open"
    // The first failure of a staged block (or the abort): every later write and the commit fail with it.
    let failure: StorageError | undefined
    // Block buffers not in use, the one being gathered, and how much of it is.
    const free: Array<Buffer> = []
    let current: Buffer | undefined
    let filled = 0
    let bytes = 0
    const failed = (error: unknown) => azureError("upload", target, error)

    const stage = (id: string, buffer: Buffer, length: number): Effect.Effect<void> =>
      Effect.tryPromise({
        try: (signal) => client.stageBlock(id, buffer.subarray(0, length), length, { abortSignal: signal }),
        catch: failed
      }).pipe(
        Effect.asVoid,
        Effect.catch((error) =>
          Effect.sync(() => {
            failure ??= error
          })
        ),
        // Also on failure: the request has ended (its buffer is free again), and a write waiting for
        // a slot wakes up and sees the failure.
        Effect.ensuring(
          Effect.sync(() => {
            if (free.length < settings.concurrency + 1) free.push(buffer)
          }).pipe(Effect.andThen(Semaphore.release(slots, 1)))
        )
      )

    // Stages what was gathered as the next block, once one of the `concurrency` slots is free.
    const flush: Effect.Effect<void, StorageError> = Effect.suspend(() => {
      const buffer = current
      const length = filled
      if (buffer === undefined || length === 0) return Effect.void
      if (blockIds.length >= maxBlocks) {
        failure ??= failed(
          new Error(
            `the object needs more than ${maxBlocks} blocks of ${settings.blockSizeBytes} bytes: raise the block size`
          )
        )
        return Effect.fail(failure)
      }
      return Effect.uninterruptibleMask((restore) =>
        restore(Semaphore.take(slots, 1)).pipe(
          // The block will not be staged: an upload missing it must never be committed.
          Effect.onInterrupt(() =>
            Effect.sync(() => {
              failure ??= failed(new Error("a write was interrupted"))
            })
          ),
          Effect.andThen(
            Effect.suspend(() => {
              if (failure !== undefined) {
                const error = failure
                return Semaphore.release(slots, 1).pipe(Effect.andThen(Effect.fail(error)))
              }
              const id = Buffer.from(`${prefix}-${String(blockIds.length).padStart(6, "0")}`).toString("base64")
              blockIds.push(id)
              current = undefined
              filled = 0
              return FiberSet.run(stagers, stage(id, buffer, length)).pipe(Effect.asVoid)
            })
          )
        )
      )
    })

    const notOpen = (): StorageError => failure ?? failed(new Error(`the upload is already ${state}`))

    const write = (chunk: Uint8Array): Effect.Effect<void, StorageError> =>
      Effect.gen(function* () {
        if (failure !== undefined || state !== "open") return yield* Effect.fail(notOpen())
        bytes += chunk.byteLength
        for (let offset = 0; offset < chunk.byteLength; ) {
          const buffer = current ?? free.pop() ?? Buffer.allocUnsafe(settings.blockSizeBytes)
          current = buffer
          const n = Math.min(settings.blockSizeBytes - filled, chunk.byteLength - offset)
          buffer.set(chunk.subarray(offset, offset + n), filled)
          filled += n
          offset += n
          if (filled === settings.blockSizeBytes) yield* flush
        }
      }).pipe(
        // Stopped halfway, part of the chunk is missing: an upload without it must never be committed.
        Effect.onInterrupt(() =>
          Effect.sync(() => {
            failure ??= failed(new Error("a write was interrupted"))
          })
        )
      )

    // Every block staged: all slots free again (a failed block frees its slot too).
    const allStaged = Semaphore.take(slots, settings.concurrency).pipe(
      Effect.andThen(Semaphore.release(slots, settings.concurrency))
    )

    const commit: Effect.Effect<ObjectInfo, StorageError> = Effect.suspend(() => {
      if (state !== "open" || failure !== undefined) return Effect.fail(notOpen())
      state = "committing"
      return Effect.gen(function* () {
        yield* flush
        yield* allStaged
        if (failure !== undefined || state !== "committing") return yield* Effect.fail(notOpen())
        const response = yield* Effect.tryPromise({
          try: (signal) =>
            client.commitBlockList(blockIds, {
              abortSignal: signal,
              blobHTTPHeaders: { blobContentType: options.contentType },
              metadata: encodeMetadata(options.metadata)
            }),
          catch: failed
        })
        state = "committed"
        const info: ObjectInfo = {
          bucket: target.bucket,
          object: target.object,
          size: bytes,
          ...(response.versionId === undefined ? {} : { generation: response.versionId }),
          contentType: options.contentType,
          metadata: { ...options.metadata },
          ...(response.lastModified === undefined ? {} : { updated: response.lastModified.toISOString() })
        }
        return info
      }).pipe(
        // Failed or interrupted: open again, so that the Scope's close aborts it.
        Effect.onExit((exit) =>
          Effect.sync(() => {
            if (Exit.isFailure(exit) && state === "committing") state = "open"
          })
        )
      )
    })

    const abort = (reason: string): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (state === "committed" || state === "aborted") return Effect.void
        state = "aborted"
        failure ??= failed(new Error(`upload aborted: ${reason}`))
        current = undefined
        filled = 0
        // Cancels the block requests in flight and waits for them.
        return FiberSet.clear(stagers)
      })

    yield* Effect.addFinalizer(() => abort("the upload's scope closed before commit"))

    return uploadOf({
      bucket: target.bucket,
      object: target.object,
      write,
      bytesWritten: Effect.sync(() => bytes),
      commit,
      abort
    })
  })
