import { type File, Storage, type StorageOptions } from "@google-cloud/storage"
import { Effect, Layer, Stream } from "effect"
import { gcsError, isNotFound, targetOf, url } from "./GcsError.ts"
import { infoOf, startUpload, type UploadSettings } from "./GcsUpload.ts"
import {
  abortUnlessCommitted,
  type JsonValue,
  type ListOptions,
  type ObjectInfo,
  ObjectStore,
  smallObject,
  type WriteOptions
} from "./ObjectStore.ts"
import { ObjectNotFound, type StorageError, type StorageOperation } from "./StorageError.ts"

/**
 * Google Cloud Storage behind {@link ObjectStore}, with `@google-cloud/storage`.
 *
 * Credentials are Application Default Credentials (on GKE: workload identity
 * through the Pod's Kubernetes service account), except for a custom
 * `apiEndpoint` outside `*.googleapis.com` (an emulator such as
 * fake-gcs-server), where the client sends no credentials unless
 * `authenticateCustomEndpoint` is set (for a private endpoint behind a custom
 * DNS name). A plain `http://` endpoint works as is.
 */
export interface GcsOptions {
  /**
   * Base URL of the JSON API, e.g. `http://127.0.0.1:4443` for fake-gcs-server.
   * Default: `https://storage.googleapis.com`.
   */
  readonly apiEndpoint?: string | undefined
  /** Project for project-scoped calls (none of the ObjectStore calls needs one). */
  readonly projectId?: string | undefined
  /** Send ADC credentials to a custom `apiEndpoint` too (default false). */
  readonly authenticateCustomEndpoint?: boolean | undefined
  /** Milliseconds to wait when cancelling an aborted upload session (default 10 s). */
  readonly abortTimeoutMillis?: number | undefined
  /**
   * End-to-end check of uploads: the client hashes what it sends and the
   * upload fails (and the object is deleted) if GCS stored something else.
   * Default `"md5"`: hashed natively, about twice as fast as the library's
   * JavaScript `"crc32c"`.
   */
  readonly validation?: "md5" | "crc32c" | false | undefined
  /**
   * Small upload writes are gathered into buffers of this many bytes (default
   * 1 MiB) before they reach the client library, whose cost is per chunk: 64 KiB
   * pipe reads cost about a third of the throughput. Writes of 256 KiB or more
   * (or of this many bytes, if fewer) go as they are. Bounds the extra memory too.
   */
  readonly writeBufferBytes?: number | undefined
  /**
   * Bytes that may wait inside the client library before a write waits for
   * it (default 4 MiB): keeps the HTTP request busy while the next buffer is
   * gathered. Memory per upload is bounded by this plus `writeBufferBytes`.
   */
  readonly maxQueuedBytes?: number | undefined
}

const clientOptions = (options: GcsOptions): StorageOptions => ({
  ...(options.apiEndpoint === undefined ? {} : { apiEndpoint: options.apiEndpoint }),
  ...(options.projectId === undefined ? {} : { projectId: options.projectId }),
  ...(options.authenticateCustomEndpoint === true ? { useAuthWithCustomEndpoint: true } : {})
})

const call = <A>(
  operation: StorageOperation,
  bucket: string,
  object: string,
  f: () => Promise<A>
): Effect.Effect<A, StorageError | ObjectNotFound> =>
  Effect.tryPromise({
    try: f,
    catch: (error) =>
      isNotFound(error) ? ObjectNotFound.of(targetOf(bucket, object)) : gcsError(operation, bucket, object, error)
  })

const callNoNotFound = <A>(
  operation: StorageOperation,
  bucket: string,
  object: string,
  f: () => Promise<A>
): Effect.Effect<A, StorageError> =>
  Effect.tryPromise({ try: f, catch: (error) => gcsError(operation, bucket, object, error) })

/**
 * Builds a GCS-backed {@link ObjectStore}.
 *
 * @example
 * ```ts
 * const store = GcsObjectStore.make({ apiEndpoint: "http://127.0.0.1:4443" })
 * await Effect.runPromise(store.exists("bucket", "a.json"))
 * ```
 */
export const make = (options: GcsOptions = {}): ObjectStore["Service"] => {
  const storage = new Storage(clientOptions(options))
  const settings: UploadSettings = {
    abortTimeoutMillis: options.abortTimeoutMillis ?? 10_000,
    validation: options.validation ?? "md5",
    writeBufferBytes: options.writeBufferBytes ?? 1024 * 1024,
    maxQueuedBytes: options.maxQueuedBytes ?? 4 * 1024 * 1024
  }
  const fileOf = (bucket: string, object: string): File => storage.bucket(bucket).file(object)

  const upload = (bucket: string, object: string, writeOptions: WriteOptions) =>
    abortUnlessCommitted(startUpload(fileOf(bucket, object), bucket, object, writeOptions, settings))

  const writeSmall = (
    bucket: string,
    object: string,
    data: Uint8Array | string | JsonValue,
    writeOptions?: Partial<WriteOptions>
  ): Effect.Effect<ObjectInfo, StorageError> => {
    const { body, contentType } = smallObject(data, writeOptions?.contentType)
    const file = fileOf(bucket, object)
    return callNoNotFound("write", bucket, object, () =>
      file.save(body, {
        resumable: false,
        gzip: false,
        contentType,
        metadata: { contentType, metadata: { ...writeOptions?.metadata } }
      })
    ).pipe(Effect.map(() => infoOf(bucket, object, { size: body.byteLength, ...file.metadata })))
  }

  const read = (bucket: string, object: string) =>
    call("read", bucket, object, () => fileOf(bucket, object).download()).pipe(
      Effect.map(([contents]) => new Uint8Array(contents.buffer, contents.byteOffset, contents.byteLength))
    )

  const readStream = (bucket: string, object: string): Stream.Stream<Uint8Array, StorageError | ObjectNotFound> =>
    Stream.suspend(() =>
      Stream.fromAsyncIterable(
        fileOf(bucket, object).createReadStream({ validation: false }) as AsyncIterable<Uint8Array>,
        (error) =>
          isNotFound(error) ? ObjectNotFound.of(targetOf(bucket, object)) : gcsError("read", bucket, object, error)
      )
    )

  const exists = (bucket: string, object: string) =>
    callNoNotFound("exists", bucket, object, () => fileOf(bucket, object).exists()).pipe(Effect.map(([found]) => found))

  const stat = (bucket: string, object: string) =>
    call("stat", bucket, object, () => fileOf(bucket, object).getMetadata()).pipe(
      Effect.map(([metadata]) => infoOf(bucket, object, metadata))
    )

  const list = (bucket: string, listOptions?: ListOptions) =>
    callNoNotFound("list", bucket, listOptions?.prefix ?? "", () =>
      storage.bucket(bucket).getFiles({
        ...(listOptions?.limit === undefined
          ? { autoPaginate: true }
          : { autoPaginate: false, maxResults: listOptions.limit }),
        ...(listOptions?.prefix === undefined ? {} : { prefix: listOptions.prefix })
      })
    ).pipe(Effect.map(([files]) => files.map((file) => infoOf(bucket, file.name, file.metadata))))

  const remove = (bucket: string, object: string) =>
    callNoNotFound("delete", bucket, object, () => fileOf(bucket, object).delete({ ignoreNotFound: true })).pipe(
      Effect.asVoid
    )

  return ObjectStore.of({ url, upload, writeSmall, read, readStream, exists, stat, list, remove })
}

/**
 * The GCS {@link ObjectStore} as a Layer.
 *
 * @example
 * ```ts
 * declare const program: Effect.Effect<void, never, ObjectStore>
 * program.pipe(Effect.provide(GcsObjectStore.layer({ apiEndpoint: process.env.GCS_ENDPOINT })))
 * ```
 */
export const layer = (options: GcsOptions = {}): Layer.Layer<ObjectStore> =>
  Layer.sync(ObjectStore, () => make(options))
