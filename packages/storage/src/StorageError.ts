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
  static readonly of = (bucket: string, object: string): ObjectNotFound =>
    new ObjectNotFound({ bucket, object, message: `gs://${bucket}/${object} does not exist` })
}

/** What the store was doing when it failed. */
export const StorageOperation = Schema.Literals(["upload", "write", "read", "stat", "exists", "list", "delete"])
export type StorageOperation = typeof StorageOperation.Type

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
  message: Schema.String,
  cause: Schema.optionalKey(Schema.Defect())
}) {}

/** Reads the HTTP status code from an error thrown by `@google-cloud/storage`, if any. */
export const statusOf = (error: unknown): number | undefined => {
  if (typeof error !== "object" || error === null || !("code" in error)) return undefined
  const code = error.code
  return typeof code === "number" ? code : undefined
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

/** Wraps an error thrown by a store client as a {@link StorageError}. */
export const storageError = (
  operation: StorageOperation,
  bucket: string,
  object: string,
  error: unknown
): StorageError => {
  const status = statusOf(error)
  return new StorageError({
    operation,
    bucket,
    object,
    ...(status === undefined ? {} : { status }),
    message: `${operation} gs://${bucket}/${object} failed${status === undefined ? "" : ` (HTTP ${status})`}: ${describe(error)}`,
    cause: error
  })
}
