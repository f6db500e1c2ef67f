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

/** One line describing an unknown error (first line of its message). */
export const describe = (error: unknown): string => {
  const text = error instanceof Error ? error.message : String(error)
  const first = text.split("\n", 1)[0] ?? ""
  return first.trim() === "" ? "unknown error" : first.trim()
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
