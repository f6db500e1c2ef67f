import { DefaultAzureCredential, type TokenCredential } from "@azure/identity"
import {
  AnonymousCredential,
  BlobServiceClient,
  type StoragePipelineOptions,
  StorageSharedKeyCredential
} from "@azure/storage-blob"
import { Effect, Layer, Redacted, Stream } from "effect"
import { azureError, isBlobNotFound, url as objectUrl, targetOf } from "./AzureError.ts"
import { decodeMetadata, encodeMetadata } from "./AzureMetadata.ts"
import { startUpload, type UploadSettings } from "./AzureUpload.ts"
import {
  type JsonValue,
  type ListOptions,
  type ObjectInfo,
  ObjectStore,
  smallObject,
  type WriteOptions
} from "./ObjectStore.ts"
import { ObjectNotFound, type StorageError, type StorageOperation } from "./StorageError.ts"

/** A secret given as text or as `Redacted` (which keeps it out of logs). */
export type Secret = string | Redacted.Redacted<string>

/**
 * How the store authenticates: the account's shared key, a SAS token (the
 * query string of a SAS URL, with or without its `?`), or any
 * `@azure/identity` credential. Without any, `DefaultAzureCredential`: on AKS,
 * Azure Workload Identity through `AZURE_CLIENT_ID`, `AZURE_TENANT_ID` and
 * `AZURE_FEDERATED_TOKEN_FILE` (set by the workload identity webhook for a Pod
 * whose service account is federated with a managed identity).
 */
export type AzureCredentials =
  | { readonly accountKey: Secret }
  | { readonly sasToken: Secret }
  | { readonly tokenCredential: TokenCredential }

/** Options of the Azure Blob Storage {@link ObjectStore}. */
export interface AzureBlobOptions {
  /** The storage account. */
  readonly accountName: string
  /**
   * The account's blob endpoint. Default `https://<accountName>.blob.core.windows.net`;
   * for Azurite `http://127.0.0.1:10000/devstoreaccount1` (path-style).
   */
  readonly endpoint?: string | undefined
  /** Default: `DefaultAzureCredential` (see {@link AzureCredentials}). */
  readonly credentials?: AzureCredentials | undefined
  /**
   * Bytes per staged block of an upload (default 8 MiB). A blob has at most
   * 50,000 blocks, so this also caps an object's size (8 MiB: about 390 GiB).
   */
  readonly blockSizeBytes?: number | undefined
  /**
   * Blocks staged at once (default 4). Memory per upload is about
   * `blockSizeBytes × (concurrency + 1)`.
   */
  readonly concurrency?: number | undefined
  /**
   * Retries of a failed request (connection errors, 500, 503): at once, then
   * after 1, 3, 7, ... seconds. Default 3, so an unreachable endpoint fails
   * within about 4 seconds.
   */
  readonly maxRetries?: number | undefined
}

/** Azure's largest block (4000 MiB). */
const maxBlockBytes = 4000 * 1024 * 1024

/** The option's value, or a RangeError (a configuration mistake, found when the store is built). */
const inRange = (name: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): number => {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(`AzureBlobObjectStore: ${name} must be an integer from ${min} to ${max}, got ${value}`)
  }
  return value
}

const reveal = (secret: Secret): string => (Redacted.isRedacted(secret) ? Redacted.value(secret) : secret)

const serviceClient = (options: AzureBlobOptions): BlobServiceClient => {
  const endpoint = (options.endpoint ?? `https://${options.accountName}.blob.core.windows.net`).replace(/\/+$/u, "")
  const pipeline: StoragePipelineOptions = {
    retryOptions: { maxTries: (options.maxRetries ?? 3) + 1, retryDelayInMs: 1000, maxRetryDelayInMs: 30_000 },
    userAgentOptions: { userAgentPrefix: "db-backup-operator" }
  }
  const credentials = options.credentials
  if (credentials === undefined) return new BlobServiceClient(endpoint, new DefaultAzureCredential(), pipeline)
  if ("accountKey" in credentials) {
    const key = new StorageSharedKeyCredential(options.accountName, reveal(credentials.accountKey))
    return new BlobServiceClient(endpoint, key, pipeline)
  }
  if ("sasToken" in credentials) {
    const sas = reveal(credentials.sasToken).replace(/^\?/u, "")
    return new BlobServiceClient(`${endpoint}?${sas}`, new AnonymousCredential(), pipeline)
  }
  return new BlobServiceClient(endpoint, credentials.tokenCredential, pipeline)
}

interface BlobProperties {
  readonly contentLength?: number | undefined
  readonly contentType?: string | undefined
  readonly metadata?: Readonly<Record<string, string | undefined>> | undefined
  readonly lastModified?: Date | undefined
  readonly versionId?: string | undefined
}

/** {@link ObjectInfo} from what Get Blob Properties or List Blobs says of a blob. */
const infoOf = (container: string, blob: string, properties: BlobProperties): ObjectInfo => ({
  bucket: container,
  object: blob,
  size: properties.contentLength ?? 0,
  ...(properties.versionId === undefined ? {} : { generation: properties.versionId }),
  ...(properties.contentType === undefined ? {} : { contentType: properties.contentType }),
  metadata: decodeMetadata(properties.metadata),
  ...(properties.lastModified === undefined ? {} : { updated: properties.lastModified.toISOString() })
})

const call = <A>(
  operation: StorageOperation,
  account: string,
  container: string,
  blob: string,
  f: (signal: AbortSignal) => Promise<A>
): Effect.Effect<A, StorageError> =>
  Effect.tryPromise({ try: f, catch: (error) => azureError(operation, targetOf(account, container, blob), error) })

/** Like {@link call}, with `BlobNotFound` as {@link ObjectNotFound}. */
const callBlob = <A>(
  operation: StorageOperation,
  account: string,
  container: string,
  blob: string,
  f: (signal: AbortSignal) => Promise<A>
): Effect.Effect<A, StorageError | ObjectNotFound> =>
  Effect.tryPromise({
    try: f,
    catch: (error) =>
      isBlobNotFound(error)
        ? ObjectNotFound.of(targetOf(account, container, blob))
        : azureError(operation, targetOf(account, container, blob), error)
  })

/**
 * Builds an Azure Blob Storage {@link ObjectStore} (`@azure/storage-blob`): a
 * bucket is a container, an object a block blob, and `url` gives
 * `azblob://account/container/blob`. Uploads stage blocks and commit them at the end,
 * so an aborted upload never shows. Metadata names and values are encoded to
 * fit Azure's rules and decoded back (see `AzureMetadata.ts`). Throws a
 * RangeError if a number in the options is out of range.
 *
 * @example
 * ```ts
 * declare const accountKey: Redacted.Redacted<string>
 * const store = AzureBlobObjectStore.make({
 *   accountName: "devstoreaccount1",
 *   endpoint: "http://127.0.0.1:10000/devstoreaccount1",
 *   credentials: { accountKey }
 * })
 * await Effect.runPromise(store.exists("backups", "a.json"))
 * ```
 */
export const make = (options: AzureBlobOptions): ObjectStore["Service"] => {
  const settings: UploadSettings = {
    blockSizeBytes: inRange("blockSizeBytes", options.blockSizeBytes ?? 8 * 1024 * 1024, 1, maxBlockBytes),
    concurrency: inRange("concurrency", options.concurrency ?? 4, 1)
  }
  inRange("maxRetries", options.maxRetries ?? 3, 0)
  const service = serviceClient(options)
  const account = options.accountName
  const url = (container: string, blob: string) => objectUrl(account, container, blob)
  const blobOf = (container: string, blob: string) => service.getContainerClient(container).getBlockBlobClient(blob)

  const upload = (container: string, blob: string, writeOptions: WriteOptions) =>
    startUpload(blobOf(container, blob), targetOf(account, container, blob), writeOptions, settings)

  const writeSmall = (
    container: string,
    blob: string,
    data: Uint8Array | string | JsonValue,
    writeOptions?: Partial<WriteOptions>
  ): Effect.Effect<ObjectInfo, StorageError> => {
    const { body, contentType } = smallObject(data, writeOptions?.contentType)
    return call("write", account, container, blob, (signal) =>
      blobOf(container, blob).upload(body, body.byteLength, {
        abortSignal: signal,
        blobHTTPHeaders: { blobContentType: contentType },
        metadata: encodeMetadata(writeOptions?.metadata)
      })
    ).pipe(
      Effect.map((response) => ({
        bucket: container,
        object: blob,
        size: body.byteLength,
        ...(response.versionId === undefined ? {} : { generation: response.versionId }),
        contentType,
        metadata: { ...writeOptions?.metadata },
        ...(response.lastModified === undefined ? {} : { updated: response.lastModified.toISOString() })
      }))
    )
  }

  const read = (container: string, blob: string) =>
    callBlob("read", account, container, blob, (signal) =>
      blobOf(container, blob).downloadToBuffer(0, undefined, { abortSignal: signal })
    ).pipe(Effect.map((contents) => new Uint8Array(contents.buffer, contents.byteOffset, contents.byteLength)))

  const readStream = (container: string, blob: string): Stream.Stream<Uint8Array, StorageError | ObjectNotFound> =>
    Stream.unwrap(
      callBlob("read", account, container, blob, (signal) =>
        blobOf(container, blob).download(0, undefined, { abortSignal: signal })
      ).pipe(
        Effect.map((response) => {
          const body = response.readableStreamBody
          if (body === undefined) return Stream.empty
          // Ending the stream early destroys the body, which closes its connection.
          return Stream.fromAsyncIterable(body as AsyncIterable<Uint8Array>, (error) =>
            azureError("read", targetOf(account, container, blob), error)
          )
        })
      )
    )

  const stat = (container: string, blob: string) =>
    callBlob("stat", account, container, blob, (signal) =>
      blobOf(container, blob).getProperties({ abortSignal: signal })
    ).pipe(Effect.map((properties) => infoOf(container, blob, properties)))

  // Not the SDK's `exists`, which answers false for a missing container too.
  const exists = (container: string, blob: string): Effect.Effect<boolean, StorageError> =>
    Effect.tryPromise({
      try: (signal) => blobOf(container, blob).getProperties({ abortSignal: signal }),
      catch: (error) => error
    }).pipe(
      Effect.as(true),
      Effect.catch((error) =>
        isBlobNotFound(error)
          ? Effect.succeed(false)
          : Effect.fail(azureError("exists", targetOf(account, container, blob), error))
      )
    )

  const list = (container: string, listOptions?: ListOptions) =>
    call("list", account, container, listOptions?.prefix ?? "", async (signal) => {
      const pages = service
        .getContainerClient(container)
        .listBlobsFlat({
          abortSignal: signal,
          includeMetadata: true,
          ...(listOptions?.prefix === undefined ? {} : { prefix: listOptions.prefix })
        })
        .byPage(listOptions?.limit === undefined ? {} : { maxPageSize: listOptions.limit })
      const found: Array<ObjectInfo> = []
      for await (const page of pages) {
        for (const item of page.segment.blobItems) {
          found.push(
            infoOf(container, item.name, { ...item.properties, metadata: item.metadata, versionId: item.versionId })
          )
        }
        // A limit asks for one request.
        if (listOptions?.limit !== undefined) break
      }
      return found
    })

  const remove = (container: string, blob: string) =>
    call("delete", account, container, blob, (signal) =>
      // Snapshots would make the delete fail; they go with the blob.
      blobOf(container, blob).deleteIfExists({ abortSignal: signal, deleteSnapshots: "include" })
    ).pipe(Effect.asVoid)

  return ObjectStore.of({ url, upload, writeSmall, read, readStream, exists, stat, list, remove })
}

/**
 * The Azure Blob Storage {@link ObjectStore} as a Layer.
 *
 * @example
 * ```ts
 * declare const program: Effect.Effect<void, never, ObjectStore>
 * // Workload identity on AKS: no credentials in the options.
 * program.pipe(Effect.provide(AzureBlobObjectStore.layer({ accountName: "backupsprod" })))
 * ```
 */
export const layer = (options: AzureBlobOptions): Layer.Layer<ObjectStore> =>
  Layer.sync(ObjectStore, () => make(options))
