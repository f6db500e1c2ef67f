import {
  AbortMultipartUploadCommand,
  ChecksumAlgorithm,
  type CompletedPart,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand
} from "@aws-sdk/client-s3"
import { Effect, Exit, Fiber, Ref, Semaphore } from "effect"
import { type ObjectInfo, type Upload, type UploadState, uploadOf, type WriteOptions } from "./ObjectStore.ts"
import { s3Error } from "./S3Error.ts"
import type { StorageError } from "./StorageError.ts"

/**
 * A streaming S3 upload: the bytes are copied into part buffers of
 * `partSizeBytes`, and each full part is sent (`UploadPart`) while the next
 * fills, up to `queueSize` at once; a `write` waits while all are busy
 * (backpressure). Up to one part, the object goes up as one `PutObject` at
 * commit; beyond, as a multipart upload that S3 shows only once
 * `CompleteMultipartUpload` succeeds. Aborting cancels the parts in flight
 * and sends `AbortMultipartUpload`, so neither an object nor stored parts
 * are left behind.
 *
 * The parts are sent here rather than by `@aws-sdk/lib-storage`'s `Upload`,
 * which reads a stream and concatenates what it read into a new buffer for
 * every part: at 100 MB/s those fresh 8 MiB buffers (each page faulted in,
 * then garbage) cost more of the main thread than the requests themselves.
 * Here the `queueSize + 1` part buffers are allocated once and used again, a
 * part's buffer goes back only once its request has ended, and a chunk
 * handed to `write` is copied at once (the caller may reuse it).
 */

/** Tuning shared by every upload of a store. */
export interface UploadSettings {
  readonly partSizeBytes: number
  readonly queueSize: number
  /** How long an abort waits for S3 to cancel the multipart upload. */
  readonly abortTimeoutMillis: number
}

/** S3's limits on parts: 5 MiB to 5 GiB each (the last one may be smaller), 10,000 of them. */
const minPartBytes = 5 * 1024 * 1024
const maxPartBytes = 5 * 1024 * 1024 * 1024
const maxParts = 10_000

/** S3 lower-cases user metadata keys (they are `x-amz-meta-*` headers): report them as S3 stores them. */
export const metadataOf = (metadata: Readonly<Record<string, string>> | undefined): Record<string, string> => {
  const result: Record<string, string> = {}
  for (const [key, value] of Object.entries(metadata ?? {})) result[key.toLowerCase()] = value
  return result
}

/** What `CompleteMultipartUpload` needs of a part: its number, ETag and the checksum the SDK sent. */
const completedPart = (partNumber: number, output: CompletedPart): CompletedPart => ({
  PartNumber: partNumber,
  ETag: output.ETag,
  ...(output.ChecksumCRC32 === undefined ? {} : { ChecksumCRC32: output.ChecksumCRC32 }),
  ...(output.ChecksumCRC32C === undefined ? {} : { ChecksumCRC32C: output.ChecksumCRC32C }),
  ...(output.ChecksumSHA1 === undefined ? {} : { ChecksumSHA1: output.ChecksumSHA1 }),
  ...(output.ChecksumSHA256 === undefined ? {} : { ChecksumSHA256: output.ChecksumSHA256 })
})

/**
 * Starts an upload of `bucket/object` (S3 hears of it with the first full
 * part, or at commit). Returns the {@link Upload} and its state, which the
 * store's Scope finalizer reads to abort an upload that was not committed.
 */
export const startUpload = (
  client: S3Client,
  bucket: string,
  object: string,
  options: WriteOptions,
  settings: UploadSettings
): Effect.Effect<{ readonly upload: Upload; readonly state: Ref.Ref<UploadState> }, StorageError> =>
  Effect.gen(function* () {
    const partSize = settings.partSizeBytes
    if (!Number.isSafeInteger(partSize) || partSize < minPartBytes || partSize > maxPartBytes) {
      return yield* s3Error(
        "upload",
        bucket,
        object,
        new Error(`EntityTooSmall: the part size ${partSize} is outside S3's 5 MiB to 5 GiB`)
      )
    }
    const queueSize = Math.max(1, settings.queueSize)
    const state = yield* Ref.make<UploadState>("open")
    const slots = yield* Semaphore.make(queueSize)
    const failed = (error: unknown) => s3Error("upload", bucket, object, error)
    const metadata = metadataOf(options.metadata)
    // The first failure (of a part, or the abort): every later write and the commit fail with it.
    let failure: StorageError | undefined
    let bytes = 0
    // Part buffers not in use, the one being filled, and how much of it is.
    const free: Array<Buffer> = []
    let current: Buffer | undefined
    let filled = 0
    let partsSent = 0
    const completed: Array<CompletedPart> = []
    const inFlight = new Set<Fiber.Fiber<void>>()
    // Started once, with the first full part; an abort waits for it to learn what to cancel.
    let created: Promise<string> | undefined

    const createMultipart = (): Promise<string> => {
      created ??= (async () => {
        const calculation = await client.config.requestChecksumCalculation()
        const output = await client.send(
          new CreateMultipartUploadCommand({
            Bucket: bucket,
            Key: object,
            ContentType: options.contentType,
            Metadata: metadata,
            // As lib-storage does: the SDK sends a CRC32 with every part, which S3 then expects here.
            ...(calculation === "WHEN_SUPPORTED" ? { ChecksumAlgorithm: ChecksumAlgorithm.CRC32 } : {})
          })
        )
        if (output.UploadId === undefined) throw new Error("CreateMultipartUpload returned no upload id")
        return output.UploadId
      })()
      return created
    }

    const sendPart = (uploadId: string, partNumber: number, buffer: Buffer, length: number): Effect.Effect<void> =>
      Effect.tryPromise({
        try: (signal) =>
          client.send(
            new UploadPartCommand({
              Bucket: bucket,
              Key: object,
              UploadId: uploadId,
              PartNumber: partNumber,
              Body: buffer.subarray(0, length)
            }),
            { abortSignal: signal }
          ),
        catch: failed
      }).pipe(
        Effect.flatMap((output) =>
          output.ETag === undefined
            ? Effect.fail(failed(new Error(`part ${partNumber} was stored without an ETag`)))
            : Effect.sync(() => {
                completed.push(completedPart(partNumber, output))
              })
        ),
        Effect.catch((error) =>
          Effect.sync(() => {
            failure ??= error
          })
        ),
        // Also when it failed or was interrupted: the request has ended, its buffer is free again, and a
        // write waiting for a slot wakes up (and sees a failure).
        Effect.ensuring(
          Effect.sync(() => {
            if (free.length < queueSize + 1) free.push(buffer)
          }).pipe(Effect.andThen(Semaphore.release(slots, 1)))
        )
      )

    /** Sends the part being filled (`filled` bytes of it), once one of the `queueSize` slots is free. */
    const flush: Effect.Effect<void, StorageError> = Effect.suspend(() => {
      const buffer = current
      const length = filled
      if (buffer === undefined || length === 0) return Effect.void
      return Effect.tryPromise({ try: createMultipart, catch: failed }).pipe(
        Effect.tapError((error) =>
          Effect.sync(() => {
            failure ??= error
          })
        ),
        Effect.flatMap((uploadId) =>
          Effect.uninterruptibleMask((restore) =>
            restore(Semaphore.take(slots, 1)).pipe(
              Effect.andThen(
                Effect.suspend(() => {
                  if (failure !== undefined) {
                    const error = failure
                    return Semaphore.release(slots, 1).pipe(Effect.andThen(Effect.fail(error)))
                  }
                  if (partsSent >= maxParts) {
                    failure = failed(
                      new Error(
                        `the object needs more than ${maxParts} parts of ${partSize} bytes: raise the part size`
                      )
                    )
                    return Semaphore.release(slots, 1).pipe(Effect.andThen(Effect.fail(failure)))
                  }
                  partsSent += 1
                  current = undefined
                  filled = 0
                  return Effect.forkDetach(sendPart(uploadId, partsSent, buffer, length)).pipe(
                    Effect.tap((fiber) =>
                      Effect.sync(() => {
                        inFlight.add(fiber)
                        fiber.addObserver(() => inFlight.delete(fiber))
                      })
                    ),
                    Effect.asVoid
                  )
                })
              )
            )
          )
        )
      )
    })

    const notOpen = (s: UploadState): StorageError => failure ?? failed(new Error(`the upload is already ${s}`))

    const write = (chunk: Uint8Array): Effect.Effect<void, StorageError> =>
      Effect.gen(function* () {
        const s = yield* Ref.get(state)
        if (failure !== undefined || s !== "open") return yield* Effect.fail(notOpen(s))
        bytes += chunk.byteLength
        for (let offset = 0; offset < chunk.byteLength; ) {
          const buffer = current ?? free.pop() ?? Buffer.allocUnsafe(partSize)
          current = buffer
          const n = Math.min(partSize - filled, chunk.byteLength - offset)
          buffer.set(chunk.subarray(offset, offset + n), filled)
          filled += n
          offset += n
          if (filled === partSize) yield* flush
        }
      }).pipe(
        // Stopped halfway, part of the chunk is missing: an upload without it must never be committed.
        Effect.onInterrupt(() =>
          Effect.sync(() => {
            failure ??= failed(new Error("a write was interrupted"))
          })
        )
      )

    // Every part sent: all slots free again (a failed part frees its slot too).
    const allSent = Semaphore.take(slots, queueSize).pipe(Effect.andThen(Semaphore.release(slots, queueSize)))

    const complete = Effect.gen(function* () {
      yield* flush
      yield* allSent
      if (failure !== undefined) return yield* Effect.fail(failure)
      const uploadId = yield* Effect.tryPromise({ try: createMultipart, catch: failed })
      const parts = [...completed].sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0))
      const output = yield* Effect.tryPromise({
        try: (signal) =>
          client.send(
            new CompleteMultipartUploadCommand({
              Bucket: bucket,
              Key: object,
              UploadId: uploadId,
              MultipartUpload: { Parts: parts }
            }),
            { abortSignal: signal }
          ),
        catch: failed
      })
      return output.VersionId
    })

    // Up to one part: one PutObject of what was gathered (also of nothing).
    const putWhole = Effect.suspend(() => {
      const body = current === undefined ? new Uint8Array() : current.subarray(0, filled)
      return Effect.tryPromise({
        try: (signal) =>
          client.send(
            new PutObjectCommand({
              Bucket: bucket,
              Key: object,
              Body: body,
              ContentType: options.contentType,
              Metadata: metadata
            }),
            { abortSignal: signal }
          ),
        catch: failed
      }).pipe(Effect.map((output) => output.VersionId))
    })

    const commit: Effect.Effect<ObjectInfo, StorageError> = Effect.gen(function* () {
      const previous = yield* Ref.getAndUpdate(state, (s) => (s === "open" ? "committing" : s))
      if (previous !== "open") return yield* Effect.fail(notOpen(previous))
      const versionId = yield* Effect.suspend(() => {
        if (failure !== undefined) return Effect.fail(failure)
        return created === undefined ? putWhole : complete
      }).pipe(
        // Failed: the upload is open again, so closing its Scope aborts it.
        Effect.onExit((exit) =>
          Exit.isFailure(exit) ? Ref.update(state, (s) => (s === "committing" ? "open" : s)) : Effect.void
        )
      )
      yield* Ref.set(state, "committed")
      return {
        bucket,
        object,
        size: bytes,
        ...(versionId === undefined || versionId === "null" ? {} : { generation: versionId }),
        contentType: options.contentType,
        metadata
      }
    })

    const abort = (reason: string): Effect.Effect<void> =>
      Ref.getAndUpdate(state, (s) => (s === "committed" ? s : "aborted")).pipe(
        Effect.flatMap((previous) => {
          if (previous === "committed" || previous === "aborted") return Effect.void
          failure ??= failed(new Error(`upload aborted: ${reason}`))
          current = undefined
          filled = 0
          const pending = created
          return Fiber.interruptAll([...inFlight]).pipe(
            Effect.andThen(
              pending === undefined
                ? Effect.void
                : // S3 drops the parts stored so far (and any still arriving) with the upload.
                  Effect.tryPromise(async (signal) => {
                    const uploadId = await pending
                    await client.send(
                      new AbortMultipartUploadCommand({ Bucket: bucket, Key: object, UploadId: uploadId }),
                      { abortSignal: signal }
                    )
                  }).pipe(Effect.timeout(settings.abortTimeoutMillis), Effect.ignore)
            )
          )
        })
      )

    const upload = uploadOf({
      bucket,
      object,
      write,
      bytesWritten: Effect.sync(() => bytes),
      commit,
      abort
    })
    return { upload, state }
  })
