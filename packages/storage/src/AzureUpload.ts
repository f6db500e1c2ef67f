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
 * Scope before a successful commit aborts it. Memory is bounded by about
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
    let pending: Array<Uint8Array> = []
    let pendingBytes = 0
    let bytes = 0
    const failed = (error: unknown) => azureError("upload", target, error)

    const stage = (id: string, block: Uint8Array): Effect.Effect<void> =>
      Effect.tryPromise({
        try: (signal) => client.stageBlock(id, block, block.byteLength, { abortSignal: signal }),
        catch: failed
      }).pipe(
        Effect.asVoid,
        Effect.catch((error) =>
          Effect.sync(() => {
            failure ??= error
          })
        ),
        // Also on failure: a write waiting for a slot wakes up and sees the failure.
        Effect.ensuring(Semaphore.release(slots, 1))
      )

    // Stages what was gathered as the next block, once one of the `concurrency` slots is free.
    const flush: Effect.Effect<void, StorageError> = Effect.suspend(() => {
      if (pendingBytes === 0) return Effect.void
      if (blockIds.length >= maxBlocks) {
        failure ??= failed(
          new Error(
            `the object needs more than ${maxBlocks} blocks of ${settings.blockSizeBytes} bytes: raise the block size`
          )
        )
        return Effect.fail(failure)
      }
      const block = pending.length === 1 && pending[0] !== undefined ? pending[0] : Buffer.concat(pending, pendingBytes)
      pending = []
      pendingBytes = 0
      return Effect.uninterruptibleMask((restore) =>
        restore(Semaphore.take(slots, 1)).pipe(
          // The block is gone from `pending`: an upload missing it must never be committed.
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
              return FiberSet.run(stagers, stage(id, block)).pipe(Effect.asVoid)
            })
          )
        )
      )
    })

    const notOpen = (): StorageError => failure ?? failed(new Error(`the upload is already ${state}`))

    const write = (chunk: Uint8Array): Effect.Effect<void, StorageError> =>
      Effect.suspend(() => {
        if (failure !== undefined || state !== "open") return Effect.fail(notOpen())
        pending.push(chunk)
        pendingBytes += chunk.byteLength
        bytes += chunk.byteLength
        return pendingBytes >= settings.blockSizeBytes ? flush : Effect.void
      })

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
        pending = []
        pendingBytes = 0
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
