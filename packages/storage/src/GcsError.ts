import { type ObjectTarget, type StorageError, type StorageOperation, statusOf, storageError } from "./StorageError.ts"

/** Whether GCS answered 404. */
export const isNotFound = (error: unknown): boolean => statusOf(error) === 404

/** `gs://bucket/object`, as `gcloud storage` names objects. */
export const url = (bucket: string, object: string): string => `gs://${bucket}/${object}`

export const targetOf = (bucket: string, object: string): ObjectTarget => ({ bucket, object, url: url(bucket, object) })

/**
 * A GCS error as a store-neutral one. Where no object is looked up (writes,
 * lists, deletes), a 404 can only mean the bucket.
 */
export const gcsError = (operation: StorageOperation, bucket: string, object: string, error: unknown): StorageError =>
  storageError(operation, targetOf(bucket, object), error, isNotFound(error) ? "BucketNotFound" : undefined)
