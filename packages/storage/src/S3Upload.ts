import { PassThrough } from "node:stream"
import type { S3Client } from "@aws-sdk/client-s3"
import { Upload as SdkUpload } from "@aws-sdk/lib-storage"
import { Effect, Ref } from "effect"
import * as NodeWritable from "./NodeWritable.ts"
import { type ObjectInfo, type Upload, type UploadState, uploadOf, type WriteOptions } from "./ObjectStore.ts"
import { s3Error } from "./S3Error.ts"
import type { StorageError } from "./StorageError.ts"

/**
 * A streaming S3 upload: `@aws-sdk/lib-storage`'s `Upload` reading a Node
 * `PassThrough` that {@link Upload.write} feeds. lib-storage cuts the stream
 * into parts of `partSizeBytes` and sends up to `queueSize` of them at once; it
 * pulls from the stream only while a sender is free, so a full stream makes
 * `write` wait (backpressure) and memory stays near `partSizeBytes × (queueSize
 * + 2)`. Up to one part, the object goes up as one `PutObject` at commit;
 * beyond, as a multipart upload that S3 shows only once
 * `CompleteMultipartUpload` succeeds. Aborting destroys the stream: lib-storage
 * then stops, lets the parts in flight end and sends `AbortMultipartUpload`,
 * so neither an object nor stored parts are left behind.
 */

/** Tuning shared by every upload of a store. */
export interface UploadSettings {
  readonly partSizeBytes: number
  readonly queueSize: number
  /** How long an abort waits for lib-storage to cancel the multipart upload. */
  readonly abortTimeoutMillis: number
}

/**
 * Bytes the stream between `write` and lib-storage may hold before `write`
 * waits: enough that a pipe's 64 KiB reads do not wait on every chunk, small
 * beside the parts lib-storage holds.
 */
const streamBufferBytes = 1024 * 1024

/** S3 lower-cases user metadata keys (they are `x-amz-meta-*` headers): report them as S3 stores them. */
export const metadataOf = (metadata: Readonly<Record<string, string>> | undefined): Record<string, string> => {
  const result: Record<string, string> = {}
  for (const [key, value] of Object.entries(metadata ?? {})) result[key.toLowerCase()] = value
  return result
}

/**
 * The client, except that a rejected request also calls `onFailure` first:
 * any request lib-storage sends for an upload is fatal to it when it fails
 * (the SDK has retried already), but lib-storage only says why once all its
 * senders have stopped, and meanwhile closes the stream without a reason, so
 * a `write` would fail as "the upload stream was closed" instead of with the
 * store's answer.
 */
const watchedClient = (client: S3Client, onFailure: (error: unknown) => void): S3Client => {
  const send = client.send.bind(client) as (...args: ReadonlyArray<unknown>) => Promise<unknown>
  const watched: S3Client = Object.create(client, {
    send: {
      value: (...args: ReadonlyArray<unknown>) =>
        send(...args).catch((error: unknown) => {
          onFailure(error)
          throw error
        })
    }
  })
  return watched
}

/**
 * Starts an upload of `bucket/object` (lib-storage starts reading at once; S3
 * hears of it with the first full part, or at commit). Returns the
 * {@link Upload} and its state, which the store's Scope finalizer reads to
 * abort an upload that was not committed.
 */
export const startUpload = (
  client: S3Client,
  bucket: string,
  object: string,
  options: WriteOptions,
  settings: UploadSettings
): Effect.Effect<{ readonly upload: Upload; readonly state: Ref.Ref<UploadState> }, StorageError> =>
  Effect.gen(function* () {
    const state = yield* Ref.make<UploadState>("open")
    let bytes = 0
    let failure: unknown
    const body = new PassThrough({ highWaterMark: streamBufferBytes })
    // The first failure wins; destroying the stream wakes a `write` waiting for room and
    // makes lib-storage's readers stop.
    const fail = (error: unknown) => {
      failure ??= error
      if (!body.destroyed) body.destroy(error instanceof Error ? error : new Error(String(error)))
    }
    // A permanent listener: a destroyed stream must never become an uncaught exception.
    body.on("error", () => {})
    const failed = (error: unknown) => s3Error("upload", bucket, object, failure ?? error)

    const sdkUpload = yield* Effect.try({
      try: () =>
        new SdkUpload({
          client: watchedClient(client, fail),
          params: {
            Bucket: bucket,
            Key: object,
            Body: body,
            ContentType: options.contentType,
            Metadata: metadataOf(options.metadata)
          },
          partSize: settings.partSizeBytes,
          queueSize: settings.queueSize,
          leavePartsOnError: false
        }),
      catch: (error) => s3Error("upload", bucket, object, error)
    })
    // done() may be called once: it starts reading the stream, and settles when the object
    // is stored, or once lib-storage has given up (and aborted the multipart upload).
    const settled = sdkUpload.done().then(
      (output) => ({ ok: true as const, versionId: output.VersionId }),
      (error: unknown) => {
        fail(error)
        return { ok: false as const, error }
      }
    )

    const write = (chunk: Uint8Array): Effect.Effect<void, StorageError> =>
      Effect.suspend(() => {
        if (failure !== undefined) return Effect.fail(failed(failure))
        bytes += chunk.byteLength
        return NodeWritable.write(body, chunk).pipe(Effect.mapError(failed))
      })

    const abort = (reason: string): Effect.Effect<void> =>
      Ref.getAndUpdate(state, (s) => (s === "committed" ? s : "aborted")).pipe(
        Effect.flatMap((previous) => {
          if (previous === "committed" || previous === "aborted") return Effect.void
          fail(new Error(`upload aborted: ${reason}`))
          // Once the stream has ended (a commit was interrupted), only lib-storage's own abort
          // can still keep it from completing the upload.
          if (previous === "committing") return Effect.promise(() => sdkUpload.abort())
          // Wait for lib-storage to cancel the multipart upload (after the parts in flight).
          return Effect.promise(() => settled).pipe(
            Effect.timeoutOrElse({
              duration: settings.abortTimeoutMillis,
              orElse: () => Effect.promise(() => sdkUpload.abort())
            }),
            Effect.asVoid
          )
        })
      )

    const commit: Effect.Effect<ObjectInfo, StorageError> = Effect.gen(function* () {
      const previous = yield* Ref.getAndUpdate(state, (s) => (s === "open" ? "committing" : s))
      if (previous !== "open") {
        return yield* s3Error("upload", bucket, object, new Error(`the upload is already ${previous}`))
      }
      const outcome = yield* NodeWritable.end(body).pipe(
        Effect.mapError(failed),
        Effect.andThen(Effect.promise(() => settled)),
        Effect.flatMap((outcome) => (outcome.ok ? Effect.succeed(outcome) : Effect.fail(failed(outcome.error)))),
        // Failed: the upload is open again, so closing its Scope aborts it (a no-op by now).
        Effect.tapError(() => Ref.update(state, (s) => (s === "committing" ? "open" : s)))
      )
      yield* Ref.set(state, "committed")
      return {
        bucket,
        object,
        size: bytes,
        ...(outcome.versionId === undefined || outcome.versionId === "null" ? {} : { generation: outcome.versionId }),
        contentType: options.contentType,
        metadata: metadataOf(options.metadata)
      }
    })

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
