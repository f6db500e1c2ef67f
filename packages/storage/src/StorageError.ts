import { Schema } from "effect"

/**
 * The object (or its bucket) does not exist.
 *
 * @example
 * ```ts
 * declare const store: Context.Service.Shape<typeof ObjectStore>
 * store.stat("bucket", "missing.json").pipe(Effect.catchTag("ObjectNotFound", () => Effect.succeed(undefined)))
 * ```
 */
export class ObjectNotFound extends Schema.TaggedError<ObjectNotFound>()("ObjectNotFound", {
  bucket: Schema.String,
  object: Schema.String,
  message: Schema.String
}) {
  static readonly of = (target: ObjectTarget): ObjectNotFound =>
    new ObjectNotFound({ bucket: target.bucket, object: target.object, message: `${target.url} does not exist` })
}

/**
 * The object a call was about, with its URL in the store's own scheme
 * (`gs://`, `s3://`, `azblob://`, `file://`): errors name it as users see it.
 */
export interface ObjectTarget {
  readonly bucket: string
  readonly object: string
  readonly url: string
}

/** What the store was doing when it failed. */
export const StorageOperation = Schema.Literals(["upload", "write", "read", "stat", "exists", "list", "delete"])
export type StorageOperation = typeof StorageOperation.Type

/**
 * Why a store call failed, where it matters to the caller, whatever the store:
 * the bucket (container, directory) does not exist, the identity may not do
 * this, or the store could not be reached at all.
 */
export const StorageFailure = Schema.Literals(["BucketNotFound", "AccessDenied", "Unreachable"])
export type StorageFailure = typeof StorageFailure.Type

/**
 * An object-store call failed (network, permissions, a rejected upload, ...).
 * `message` is one readable line naming the operation and the object; the
 * original error is kept in `cause`.
 */
export class StorageError extends Schema.TaggedError<StorageError>()("StorageError", {
  operation: StorageOperation,
  bucket: Schema.String,
  object: Schema.String,
  /** HTTP status from the store, when it answered. */
  status: Schema.optionalKey(Schema.Number),
  /** The kind of failure, when the store's answer says which. */
  reason: Schema.optionalKey(StorageFailure),
  message: Schema.String,
  cause: Schema.optionalKey(Schema.Defect())
}) {}

/**
 * The HTTP status in an error thrown by a store client, if any:
 * `code` (`@google-cloud/storage`), `$metadata.httpStatusCode` (AWS SDK v3),
 * `statusCode` (Azure SDK).
 */
export const statusOf = (error: unknown): number | undefined => {
  if (typeof error !== "object" || error === null) return undefined
  const record = error as {
    readonly code?: unknown
    readonly statusCode?: unknown
    readonly $metadata?: { readonly httpStatusCode?: unknown }
  }
  for (const candidate of [record.code, record.statusCode, record.$metadata?.httpStatusCode]) {
    if (typeof candidate === "number" && candidate >= 100 && candidate < 600) return candidate
  }
  return undefined
}

/** Network error codes (Node, undici) of a store that never answered. */
const unreachableCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_SOCKET"
])

/** Whether an error (or one of its causes) is a connection that never got an answer. */
export const isUnreachable = (error: unknown): boolean => {
  for (let current = error, depth = 0; typeof current === "object" && current !== null && depth < 5; depth++) {
    const record = current as { readonly code?: unknown; readonly errno?: unknown; readonly cause?: unknown }
    if (typeof record.code === "string" && unreachableCodes.has(record.code)) return true
    if (current instanceof AggregateError && current.errors.some(isUnreachable)) return true
    current = record.cause
  }
  return false
}

/**
 * A store client's error text without what grants access: a resumable
 * upload's session URL (its `upload_id` is a bearer credential for that
 * upload) and signed URLs carry it in the query, so a URL keeps only its
 * scheme, host and path, and a bare upload id is masked. Such text reaches
 * status, Events and logs.
 *
 * @example
 * ```ts
 * withoutSecrets("PUT https://storage.googleapis.com/upload/storage/v1/b/b/o?uploadType=resumable&upload_id=ADPy failed")
 * // "PUT https://storage.googleapis.com/upload/storage/v1/b/b/o?<redacted> failed"
 * ```
 */
export const withoutSecrets = (text: string): string =>
  text
    .replace(/\b(https?:\/\/[^\s?#"'<>]+)[?#][^\s"'<>]*/gu, "$1?<redacted>")
    .replace(/\b(upload_?id|upload-id)([=:]\s*)[^\s&"',;]+/giu, "$1$2<redacted>")

/** One line describing an unknown error (first line of its message), without secrets ({@link withoutSecrets}). */
export const describe = (error: unknown): string => {
  const text = error instanceof Error ? error.message : String(error)
  const first = withoutSecrets(text.split("\n", 1)[0] ?? "").trim()
  return first === "" ? "unknown error" : first
}

/**
 * Wraps an error thrown by a store client as a {@link StorageError}. A store
 * that knows better (an error code in its answer) passes `reason`; otherwise
 * 401/403 are `AccessDenied` and a connection that never got an answer is
 * `Unreachable`.
 *
 * @example
 * ```ts
 * storageError("write", { bucket: "b", object: "a.json", url: "s3://b/a.json" }, new Error("Forbidden"), "AccessDenied")
 * // StorageError: "write s3://b/a.json failed: Forbidden", reason "AccessDenied"
 * ```
 */
export const storageError = (
  operation: StorageOperation,
  target: ObjectTarget,
  error: unknown,
  reason?: StorageFailure
): StorageError => {
  const status = statusOf(error)
  const failure =
    reason ??
    (status === 401 || status === 403
      ? "AccessDenied"
      : status === undefined && isUnreachable(error)
        ? "Unreachable"
        : undefined)
  return new StorageError({
    operation,
    bucket: target.bucket,
    object: target.object,
    ...(status === undefined ? {} : { status }),
    ...(failure === undefined ? {} : { reason: failure }),
    message: `${operation} ${target.url} failed${status === undefined ? "" : ` (HTTP ${status})`}: ${describe(error)}`,
    cause: error
  })
}
