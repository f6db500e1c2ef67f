import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  type HeadObjectCommandOutput,
  type _Object as ListedObject,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig
} from "@aws-sdk/client-s3"
import { Effect, Layer, Stream } from "effect"
import {
  abortUnlessCommitted,
  type JsonValue,
  type ListOptions,
  type ObjectInfo,
  ObjectStore,
  smallObject,
  type WriteOptions
} from "./ObjectStore.ts"
import { isNotFound, s3Error, targetOf, url } from "./S3Error.ts"
import { metadataOf, startUpload, type UploadSettings } from "./S3Upload.ts"
import { ObjectNotFound, type StorageError, type StorageOperation } from "./StorageError.ts"

/**
 * Amazon S3, or an S3-compatible server (MinIO, Ceph RGW, versitygw, R2, ...),
 * behind {@link ObjectStore}, with `@aws-sdk/client-s3` (streaming uploads
 * send their own multipart requests: see S3Upload.ts).
 *
 * Without `credentials` the SDK's default provider chain finds them: the
 * `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` environment, on EKS a web
 * identity token (IRSA) or EKS Pod Identity, a shared config profile, the
 * instance role. Without `region`, `AWS_REGION` (or the profile's) applies.
 *
 * User metadata travels as `x-amz-meta-*` headers: S3 lower-cases the keys
 * (and so does {@link ObjectInfo} here), and values must be ASCII.
 */
export interface S3Options {
  /** AWS region of the buckets (default: `AWS_REGION` / the SDK's configuration). */
  readonly region?: string | undefined
  /** Endpoint of an S3-compatible server, e.g. `http://127.0.0.1:7070` (default: AWS's for the region). */
  readonly endpoint?: string | undefined
  /** Path-style URLs (`endpoint/bucket/key`), which most S3-compatible servers need (default false). */
  readonly forcePathStyle?: boolean | undefined
  /** Static credentials; absent, the SDK's default provider chain. */
  readonly credentials?:
    | {
        readonly accessKeyId: string
        readonly secretAccessKey: string
        readonly sessionToken?: string | undefined
      }
    | undefined
  /**
   * Bytes of one part of a multipart upload (default 8 MiB, at least 5 MiB).
   * An upload of up to this many bytes is one `PutObject`. S3 allows 10,000
   * parts, so this bounds the largest upload too (8 MiB: about 78 GiB).
   */
  readonly partSizeBytes?: number | undefined
  /**
   * Parts sent at once (default 4). Memory per upload is about
   * `partSizeBytes × (queueSize + 1)`.
   */
  readonly queueSize?: number | undefined
  /**
   * Attempts per request, the first included (default 3): with the
   * connection timeout, bounds how long an unreachable endpoint takes to fail.
   */
  readonly maxAttempts?: number | undefined
  /** Milliseconds to wait for a TCP connection before an attempt fails (default 5 s). */
  readonly connectionTimeoutMillis?: number | undefined
  /** Milliseconds an abort waits for the multipart upload to be cancelled (default 30 s). */
  readonly abortTimeoutMillis?: number | undefined
}

const defaultPartSize = 8 * 1024 * 1024

const clientConfig = (options: S3Options): S3ClientConfig => ({
  ...(options.region === undefined ? {} : { region: options.region }),
  ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
  ...(options.forcePathStyle === undefined ? {} : { forcePathStyle: options.forcePathStyle }),
  ...(options.credentials === undefined
    ? {}
    : {
        credentials: {
          accessKeyId: options.credentials.accessKeyId,
          secretAccessKey: options.credentials.secretAccessKey,
          ...(options.credentials.sessionToken === undefined ? {} : { sessionToken: options.credentials.sessionToken })
        }
      }),
  maxAttempts: options.maxAttempts ?? 3,
  requestHandler: { connectionTimeout: options.connectionTimeoutMillis ?? 5_000 }
})

const call = <A>(
  operation: StorageOperation,
  bucket: string,
  object: string,
  f: (signal: AbortSignal) => Promise<A>
): Effect.Effect<A, StorageError | ObjectNotFound> =>
  Effect.tryPromise({
    try: f,
    catch: (error) =>
      isNotFound(error) ? ObjectNotFound.of(targetOf(bucket, object)) : s3Error(operation, bucket, object, error)
  })

const callNoNotFound = <A>(
  operation: StorageOperation,
  bucket: string,
  object: string,
  f: (signal: AbortSignal) => Promise<A>
): Effect.Effect<A, StorageError> =>
  Effect.tryPromise({ try: f, catch: (error) => s3Error(operation, bucket, object, error) })

const versionOf = (versionId: string | undefined) =>
  // "null" is the version id of an object written while versioning was off.
  versionId === undefined || versionId === "null" ? {} : { generation: versionId }

const headInfo = (bucket: string, object: string, head: HeadObjectCommandOutput): ObjectInfo => ({
  bucket,
  object,
  size: head.ContentLength ?? 0,
  ...versionOf(head.VersionId),
  ...(head.ContentType === undefined ? {} : { contentType: head.ContentType }),
  metadata: metadataOf(head.Metadata),
  ...(head.LastModified === undefined ? {} : { updated: head.LastModified.toISOString() })
})

const listedInfo = (bucket: string, listed: ListedObject): ObjectInfo => ({
  bucket,
  object: listed.Key ?? "",
  size: listed.Size ?? 0,
  metadata: {},
  ...(listed.LastModified === undefined ? {} : { updated: listed.LastModified.toISOString() })
})

/**
 * An S3-backed {@link ObjectStore} on an existing client (which the caller
 * destroys).
 */
const fromClient = (client: S3Client, options: S3Options): ObjectStore["Service"] => {
  const settings: UploadSettings = {
    partSizeBytes: options.partSizeBytes ?? defaultPartSize,
    queueSize: options.queueSize ?? 4,
    abortTimeoutMillis: options.abortTimeoutMillis ?? 30_000
  }

  const upload = (bucket: string, object: string, writeOptions: WriteOptions) =>
    abortUnlessCommitted(startUpload(client, bucket, object, writeOptions, settings))

  const writeSmall = (
    bucket: string,
    object: string,
    data: Uint8Array | string | JsonValue,
    writeOptions?: Partial<WriteOptions>
  ): Effect.Effect<ObjectInfo, StorageError> => {
    const { body, contentType } = smallObject(data, writeOptions?.contentType)
    const metadata = metadataOf(writeOptions?.metadata)
    return callNoNotFound("write", bucket, object, (signal) =>
      client.send(
        new PutObjectCommand({ Bucket: bucket, Key: object, Body: body, ContentType: contentType, Metadata: metadata }),
        { abortSignal: signal }
      )
    ).pipe(
      Effect.map((output) => ({
        bucket,
        object,
        size: body.byteLength,
        ...versionOf(output.VersionId),
        contentType,
        metadata
      }))
    )
  }

  const read = (bucket: string, object: string) =>
    call("read", bucket, object, async (signal) => {
      const output = await client.send(new GetObjectCommand({ Bucket: bucket, Key: object }), { abortSignal: signal })
      return output.Body === undefined ? new Uint8Array() : await output.Body.transformToByteArray()
    })

  const readStream = (bucket: string, object: string): Stream.Stream<Uint8Array, StorageError | ObjectNotFound> =>
    Stream.unwrap(
      // No abort signal: it would fire only if this request were interrupted, and ending the
      // stream early destroys the body (the iterator's return) anyway.
      call("read", bucket, object, () => client.send(new GetObjectCommand({ Bucket: bucket, Key: object }))).pipe(
        Effect.map((output) =>
          output.Body === undefined
            ? Stream.empty
            : Stream.fromAsyncIterable(output.Body as AsyncIterable<Uint8Array>, (error) =>
                s3Error("read", bucket, object, error)
              )
        )
      )
    )

  const head = (operation: StorageOperation, bucket: string, object: string) =>
    call(operation, bucket, object, (signal) =>
      client.send(new HeadObjectCommand({ Bucket: bucket, Key: object }), { abortSignal: signal })
    )

  const exists = (bucket: string, object: string): Effect.Effect<boolean, StorageError> =>
    head("exists", bucket, object).pipe(
      Effect.as(true),
      Effect.catchTag("ObjectNotFound", () => Effect.succeed(false))
    )

  const stat = (bucket: string, object: string) =>
    head("stat", bucket, object).pipe(Effect.map((output) => headInfo(bucket, object, output)))

  const list = (bucket: string, listOptions?: ListOptions): Effect.Effect<ReadonlyArray<ObjectInfo>, StorageError> =>
    Effect.gen(function* () {
      const prefix = listOptions?.prefix
      const limit = listOptions?.limit
      const found: Array<ObjectInfo> = []
      let token: string | undefined
      do {
        const page = yield* callNoNotFound("list", bucket, prefix ?? "", (signal) =>
          client.send(
            new ListObjectsV2Command({
              Bucket: bucket,
              ...(prefix === undefined ? {} : { Prefix: prefix }),
              ...(limit === undefined ? {} : { MaxKeys: limit }),
              ...(token === undefined ? {} : { ContinuationToken: token })
            }),
            { abortSignal: signal }
          )
        )
        for (const listed of page.Contents ?? []) found.push(listedInfo(bucket, listed))
        token = page.IsTruncated === true ? page.NextContinuationToken : undefined
        // `limit` asks for one request: enough to learn that the bucket exists and may be listed.
      } while (token !== undefined && limit === undefined)
      return limit === undefined ? found : found.slice(0, limit)
    })

  const remove = (bucket: string, object: string) =>
    callNoNotFound("delete", bucket, object, (signal) =>
      client.send(new DeleteObjectCommand({ Bucket: bucket, Key: object }), { abortSignal: signal })
    ).pipe(Effect.asVoid)

  return ObjectStore.of({ url, upload, writeSmall, read, readStream, exists, stat, list, remove })
}

/**
 * Builds an S3-backed {@link ObjectStore} with its own client (whose idle
 * connections close on their own; {@link layer} also closes them on release).
 *
 * @example
 * ```ts
 * const store = S3ObjectStore.make({
 *   endpoint: "http://127.0.0.1:7070",
 *   region: "us-east-1",
 *   forcePathStyle: true,
 *   credentials: { accessKeyId: "test", secretAccessKey: "test-secret" }
 * })
 * await Effect.runPromise(store.exists("bucket", "a.json"))
 * ```
 */
export const make = (options: S3Options = {}): ObjectStore["Service"] =>
  fromClient(new S3Client(clientConfig(options)), options)

/**
 * The S3 {@link ObjectStore} as a Layer; the client is destroyed when the
 * layer is released.
 *
 * @example
 * ```ts
 * declare const program: Effect.Effect<void, never, ObjectStore>
 * // On EKS: credentials from IRSA or Pod Identity, region from AWS_REGION.
 * program.pipe(Effect.provide(S3ObjectStore.layer()))
 * ```
 */
export const layer = (options: S3Options = {}): Layer.Layer<ObjectStore> =>
  Layer.effect(
    ObjectStore,
    Effect.acquireRelease(
      Effect.sync(() => new S3Client(clientConfig(options))),
      (client) => Effect.sync(() => client.destroy())
    ).pipe(Effect.map((client) => fromClient(client, options)))
  )
