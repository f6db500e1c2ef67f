import { Context, Effect, Ref, type Scope, Sink, type Stream } from "effect"
import type { ObjectNotFound, StorageError } from "./StorageError.ts"

/** What the store knows about a stored object. */
export interface ObjectInfo {
  readonly bucket: string
  readonly object: string
  /** Size in bytes. */
  readonly size: number
  /** Store-specific version of the object (GCS generation), when known. */
  readonly generation?: string
  readonly contentType?: string
  /** User metadata attached at upload. */
  readonly metadata: Readonly<Record<string, string>>
  /** Last modification time (RFC 3339), when known. */
  readonly updated?: string
}

/** Options for a new object. */
export interface WriteOptions {
  readonly contentType: string
  /** User metadata (GCS `x-goog-meta-*`). Never put secrets here. */
  readonly metadata?: Readonly<Record<string, string>>
}

/**
 * A streaming upload in progress. Nothing is visible in the bucket until
 * {@link Upload.commit} succeeds; {@link Upload.abort} (or closing the upload's
 * Scope without committing, whatever the reason) cancels it, so a failed
 * pipeline never leaves an object behind.
 */
export interface Upload {
  readonly bucket: string
  readonly object: string
  /**
   * Writes one chunk, waiting while the upload's buffer is full (backpressure).
   * Fails if the upload has failed or was aborted.
   */
  readonly write: (chunk: Uint8Array) => Effect.Effect<void, StorageError>
  /** A Sink writing every chunk with {@link Upload.write}; it does not commit. */
  readonly sink: Sink.Sink<void, Uint8Array, never, StorageError>
  /** Bytes accepted so far. */
  readonly bytesWritten: Effect.Effect<number>
  /** Finishes the upload and waits until the store has the whole object. */
  readonly commit: Effect.Effect<ObjectInfo, StorageError>
  /** Cancels the upload; no object appears. Idempotent, never fails. */
  readonly abort: (reason: string) => Effect.Effect<void>
}

/** How to list objects. */
export interface ListOptions {
  /** Only names starting with this. */
  readonly prefix?: string
  /** At most this many (one request): enough to learn that the bucket exists and may be listed. */
  readonly limit?: number
}

/**
 * An object store (GCS, S3, Azure Blob, a filesystem) behind one
 * interface, so the runner and tests do not know which one they talk to.
 *
 * @example
 * ```ts
 * const program = Effect.gen(function* () {
 *   const store = yield* ObjectStore
 *   yield* Effect.scoped(Effect.gen(function* () {
 *     const upload = yield* store.upload("bucket", "backups/a.sql", { contentType: "application/sql" })
 *     yield* Stream.make(new TextEncoder().encode("select 1;\n")).pipe(Stream.run(upload.sink))
 *     yield* upload.commit
 *   }))
 *   yield* store.writeSmall("bucket", "backups/a.json", { ok: true })
 *   return yield* store.stat("bucket", "backups/a.sql")
 * }).pipe(Effect.provide(GcsObjectStore.layer({ apiEndpoint: "http://127.0.0.1:4443" })))
 * ```
 */
export class ObjectStore extends Context.Service<
  ObjectStore,
  {
    /**
     * The object's URL in the store's own scheme (`gs://bucket/object`,
     * `s3://bucket/object`, `azblob://account/container/object`, `file:///dir/object`):
     * what status, manifests and messages show.
     */
    readonly url: (bucket: string, object: string) => string
    /**
     * Starts a streaming upload. The upload lives in the current Scope: if the
     * Scope closes before `commit` succeeded, the upload is aborted.
     */
    readonly upload: (
      bucket: string,
      object: string,
      options: WriteOptions
    ) => Effect.Effect<Upload, StorageError, Scope.Scope>
    /**
     * Writes a small object in one request (manifests, markers). A string is
     * written as UTF-8; any other value that is not bytes is written as JSON
     * (and `contentType` defaults to `application/json`).
     */
    readonly writeSmall: (
      bucket: string,
      object: string,
      data: Uint8Array | string | JsonValue,
      options?: Partial<WriteOptions>
    ) => Effect.Effect<ObjectInfo, StorageError>
    /** Reads a whole object into memory (for small objects and tests). */
    readonly read: (bucket: string, object: string) => Effect.Effect<Uint8Array, StorageError | ObjectNotFound>
    /** Streams an object (for verifying large objects without holding them in memory). */
    readonly readStream: (bucket: string, object: string) => Stream.Stream<Uint8Array, StorageError | ObjectNotFound>
    readonly exists: (bucket: string, object: string) => Effect.Effect<boolean, StorageError>
    readonly stat: (bucket: string, object: string) => Effect.Effect<ObjectInfo, StorageError | ObjectNotFound>
    readonly list: (bucket: string, options?: ListOptions) => Effect.Effect<ReadonlyArray<ObjectInfo>, StorageError>
    /** Deletes an object; deleting a missing object succeeds. */
    readonly remove: (bucket: string, object: string) => Effect.Effect<void, StorageError>
  }
>()("@db-backup-operator/storage/ObjectStore") {}

/** A JSON value, for {@link ObjectStore} `writeSmall`. */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | ReadonlyArray<JsonValue>
  | { readonly [key: string]: JsonValue | undefined }

/** Where an upload is in its life; only an `open` upload can be committed. */
export type UploadState = "open" | "committing" | "committed" | "aborted"

/**
 * An {@link Upload} from a store's `write`, `commit` and `abort` (its `sink`
 * writes every chunk with `write`).
 *
 * @example
 * ```ts
 * declare const parts: Omit<Upload, "sink">
 * const upload: Upload = uploadOf(parts)
 * ```
 */
export const uploadOf = (parts: Omit<Upload, "sink">): Upload => ({ ...parts, sink: Sink.forEach(parts.write) })

/**
 * A started upload that aborts when its Scope closes before a successful
 * commit (a failure, an interruption): what {@link ObjectStore}'s `upload`
 * promises, for a store whose upload records its {@link UploadState}.
 *
 * @example
 * ```ts
 * declare const start: Effect.Effect<{ readonly upload: Upload; readonly state: Ref.Ref<UploadState> }>
 * const upload: Effect.Effect<Upload, never, Scope.Scope> = abortUnlessCommitted(start)
 * ```
 */
export const abortUnlessCommitted = <E, R>(
  start: Effect.Effect<{ readonly upload: Upload; readonly state: Ref.Ref<UploadState> }, E, R>
): Effect.Effect<Upload, E, R | Scope.Scope> =>
  Effect.acquireRelease(start, ({ upload, state }) =>
    Ref.get(state).pipe(
      Effect.flatMap((s) => (s === "committed" ? Effect.void : upload.abort("the upload's scope closed before commit")))
    )
  ).pipe(Effect.map(({ upload }) => upload))

/**
 * The bytes and content type of a `writeSmall`: a string as UTF-8
 * (`text/plain`), bytes as they are (`application/octet-stream`), anything
 * else as JSON (`application/json`), unless `contentType` is given.
 *
 * @example
 * ```ts
 * smallObject({ ok: true }) // { body: <Buffer 7b 22 6f 6b ...>, contentType: "application/json" }
 * ```
 */
export const smallObject = (
  data: Uint8Array | string | JsonValue,
  contentType?: string
): { readonly body: Buffer; readonly contentType: string } => {
  if (data instanceof Uint8Array) {
    return {
      body: Buffer.from(data.buffer, data.byteOffset, data.byteLength),
      contentType: contentType ?? "application/octet-stream"
    }
  }
  if (typeof data === "string") return { body: Buffer.from(data, "utf8"), contentType: contentType ?? "text/plain" }
  return { body: Buffer.from(JSON.stringify(data), "utf8"), contentType: contentType ?? "application/json" }
}
