import { STATUS_CODES } from "node:http"
import {
  type ObjectTarget,
  type StorageError,
  type StorageFailure,
  type StorageOperation,
  statusOf,
  storageError
} from "./StorageError.ts"

/** `s3://bucket/object`, as the AWS CLI names objects. */
export const url = (bucket: string, object: string): string => `s3://${bucket}/${object}`

export const targetOf = (bucket: string, object: string): ObjectTarget => ({ bucket, object, url: url(bucket, object) })

/**
 * The S3 error code of an AWS SDK error (its `name`, e.g. `NoSuchBucket`),
 * or of a network error the SDK passed through (`TimeoutError`, `Error`).
 */
export const codeOf = (error: unknown): string | undefined => {
  if (typeof error !== "object" || error === null) return undefined
  const record = error as { readonly name?: unknown; readonly Code?: unknown }
  if (typeof record.Code === "string") return record.Code
  return typeof record.name === "string" ? record.name : undefined
}

/** Codes S3 (and S3-compatible servers) answer when the identity may not do this. */
const deniedCodes = new Set([
  "AccessDenied",
  "InvalidAccessKeyId",
  "SignatureDoesNotMatch",
  "ExpiredToken",
  "InvalidToken",
  "TokenRefreshRequired",
  "AllAccessDisabled",
  "AccountProblem",
  // versitygw's answer (a 404) to an access key id it does not know, where S3 says InvalidAccessKeyId.
  "XAdminUserNotFound"
])

/**
 * Whether S3 answered that the object does not exist: `NoSuchKey` (GET), or a
 * bare 404 (`HEAD` answers have no body, hence no code; the SDK names them
 * `NotFound`). Not a 404 whose code says something else: `NoSuchBucket`, or
 * a refused identity (versitygw's `XAdminUserNotFound`).
 */
export const isNotFound = (error: unknown): boolean => {
  const code = codeOf(error)
  if (code === "NoSuchKey" || code === "NotFound") return true
  return statusOf(error) === 404 && code !== "NoSuchBucket" && (code === undefined || !deniedCodes.has(code))
}

/** Whether the SDK gave up before any answer came (no HTTP status): refused, unknown host, connection timeout. */
const neverAnswered = (error: unknown): boolean => statusOf(error) === undefined && codeOf(error) === "TimeoutError"

const reasonOf = (operation: StorageOperation, error: unknown): StorageFailure | undefined => {
  const code = codeOf(error)
  if (code === "NoSuchBucket") return "BucketNotFound"
  if (code !== undefined && deniedCodes.has(code)) return "AccessDenied"
  // Where no object is looked up (writes, lists, deletes), a 404 that names nothing else
  // (NoSuchUpload, say) can only mean the bucket.
  if (
    statusOf(error) === 404 &&
    (code === undefined || code === "NotFound" || code === "Unknown") &&
    operation !== "read" &&
    operation !== "stat" &&
    operation !== "exists"
  )
    return "BucketNotFound"
  if (neverAnswered(error)) return "Unreachable"
  return undefined
}

/**
 * An AWS SDK error as a store-neutral one: `NoSuchBucket` is `BucketNotFound`,
 * the S3 codes of a refused identity (and any 401/403) `AccessDenied`, a
 * connection that never got an answer `Unreachable`. The message is the SDK's
 * first line, without URL queries or upload ids ({@link storageError}).
 */
export const s3Error = (operation: StorageOperation, bucket: string, object: string, error: unknown): StorageError =>
  storageError(operation, targetOf(bucket, object), readable(error), reasonOf(operation, error))

/**
 * An answer without a body (every `HEAD`) leaves the SDK nothing to say but
 * `UnknownError`: say the HTTP status's name instead (the original stays the
 * cause).
 */
const readable = (error: unknown): unknown => {
  const status = statusOf(error)
  if (status === undefined || !(error instanceof Error)) return error
  if (error.message !== "" && error.message !== "UnknownError" && error.message !== codeOf(error)) return error
  const text = STATUS_CODES[status] ?? "no message"
  return Object.assign(
    new Error(error.message === codeOf(error) ? `${error.message}: ${text}` : text, { cause: error }),
    {
      name: error.name,
      $metadata: (error as { readonly $metadata?: unknown }).$metadata
    }
  )
}
