import type { Writable } from "node:stream"
import type { File, FileMetadata } from "@google-cloud/storage"
import { Effect, Ref } from "effect"
import { gcsError } from "./GcsError.ts"
import * as NodeWritable from "./NodeWritable.ts"
import { type ObjectInfo, type Upload, type UploadState, uploadOf, type WriteOptions } from "./ObjectStore.ts"
import type { StorageError } from "./StorageError.ts"

/**
 * A streaming GCS upload: a resumable upload session fed chunk by chunk. The
 * object exists only once the final request completes, so destroying the
 * stream before `commit` (and cancelling the session) leaves nothing behind.
 */

/** Tuning shared by every upload of a store. */
export interface UploadSettings {
  readonly abortTimeoutMillis: number
  readonly validation: "md5" | "crc32c" | false
  readonly writeBufferBytes: number
  readonly maxQueuedBytes: number
}

/** Chunks of at least this many bytes (or `writeBufferBytes`, if smaller) are not gathered. */
const directWriteBytes = 256 * 1024

/** {@link ObjectInfo} from the object metadata GCS returns. */
export const infoOf = (bucket: string, object: string, metadata: FileMetadata): ObjectInfo => {
  const user: Record<string, string> = {}
  for (const [key, value] of Object.entries(metadata.metadata ?? {})) {
    if (value !== null && value !== undefined) user[key] = String(value)
  }
  return {
    bucket,
    object,
    size: Number(metadata.size ?? 0),
    ...(metadata.generation === undefined ? {} : { generation: String(metadata.generation) }),
    ...(metadata.contentType === undefined ? {} : { contentType: metadata.contentType }),
    metadata: user,
    ...(metadata.updated === undefined ? {} : { updated: metadata.updated })
  }
}

/**
 * Cancels a resumable upload session (`DELETE` on the session URI, which GCS
 * answers with 499). The stream is already destroyed, so the session can never
 * be finalized; this only frees it early. Best effort.
 */
const cancelSession = (uri: string, timeoutMillis: number): Effect.Effect<void> =>
  Effect.tryPromise(() => fetch(uri, { method: "DELETE", signal: AbortSignal.timeout(timeoutMillis) })).pipe(
    Effect.flatMap((response) => Effect.promise(() => response.arrayBuffer())),
    Effect.ignore
  )

/**
 * Starts an upload of `file` (the session is created on the first write).
 * Returns the {@link Upload} and its state, which the store's Scope finalizer
 * reads to abort an upload that was not committed.
 */
export const startUpload = (
  file: File,
  bucket: string,
  object: string,
  options: WriteOptions,
  settings: UploadSettings
): Effect.Effect<{ readonly upload: Upload; readonly state: Ref.Ref<UploadState> }> =>
  Effect.gen(function* () {
    const state = yield* Ref.make<UploadState>("open")
    let bytes = 0
    let sessionUri: string | undefined
    let failure: unknown
    let pending: Array<Uint8Array> = []
    let pendingBytes = 0
    const stream: Writable = file.createWriteStream({
      resumable: true,
      gzip: false,
      validation: settings.validation,
      contentType: options.contentType,
      metadata: { contentType: options.contentType, metadata: { ...options.metadata } }
    })
    // A permanent listener: an upload error must never become an uncaught exception.
    stream.on("error", (error) => {
      failure ??= error
    })
    stream.on("uri", (uri: unknown) => {
      if (typeof uri === "string") sessionUri = uri
    })
    const failed = (error: unknown) => gcsError("upload", bucket, object, failure ?? error)

    // Hands the gathered chunks to the client as one buffer (waiting while it is full).
    const flush: Effect.Effect<void, StorageError> = Effect.suspend(() => {
      if (failure !== undefined) return Effect.fail(failed(failure))
      if (pendingBytes === 0) return Effect.void
      const buffer =
        pending.length === 1 && pending[0] !== undefined ? pending[0] : Buffer.concat(pending, pendingBytes)
      pending = []
      pendingBytes = 0
      return NodeWritable.write(stream, buffer, settings.maxQueuedBytes).pipe(Effect.mapError(failed))
    })

    const write = (chunk: Uint8Array): Effect.Effect<void, StorageError> =>
      Effect.suspend(() => {
        if (failure !== undefined) return Effect.fail(failed(failure))
        bytes += chunk.byteLength
        // A large chunk goes to the client as it is (after what was gathered): the client's cost per
        // chunk is small beside it, and copying it into a fresh buffer (page faulted in, then garbage)
        // cost about as much main-thread time as the client's MD5 of it.
        if (chunk.byteLength >= Math.min(settings.writeBufferBytes, directWriteBytes)) {
          return flush.pipe(
            Effect.andThen(NodeWritable.write(stream, chunk, settings.maxQueuedBytes).pipe(Effect.mapError(failed)))
          )
        }
        pending.push(chunk)
        pendingBytes += chunk.byteLength
        return pendingBytes >= settings.writeBufferBytes ? flush : Effect.void
      })

    const abort = (reason: string): Effect.Effect<void> =>
      Ref.getAndUpdate(state, (s) => (s === "committed" ? s : "aborted")).pipe(
        Effect.flatMap((previous) =>
          previous === "committed" || previous === "aborted"
            ? Effect.void
            : NodeWritable.destroy(stream, new Error(`upload aborted: ${reason}`), settings.abortTimeoutMillis).pipe(
                Effect.andThen(
                  Effect.suspend(() =>
                    sessionUri === undefined ? Effect.void : cancelSession(sessionUri, settings.abortTimeoutMillis)
                  )
                )
              )
        )
      )

    const commit: Effect.Effect<ObjectInfo, StorageError> = Effect.gen(function* () {
      const previous = yield* Ref.getAndUpdate(state, (s) => (s === "open" ? "committing" : s))
      if (previous !== "open") {
        return yield* gcsError("upload", bucket, object, new Error(`the upload is already ${previous}`))
      }
      yield* flush.pipe(
        Effect.andThen(NodeWritable.end(stream).pipe(Effect.mapError(failed))),
        Effect.tapError(() => Ref.set(state, "open"))
      )
      yield* Ref.set(state, "committed")
      return infoOf(bucket, object, { size: bytes, ...file.metadata })
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
