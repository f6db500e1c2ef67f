import {
  describe,
  type ObjectTarget,
  StorageError,
  type StorageFailure,
  type StorageOperation,
  statusOf,
  storageError
} from "./StorageError.ts"

/**
 * `azblob://account/container/blob`: the `azblob` scheme (as Go CDK's), with the
 * storage account first, since a container name is unique only within one.
 */
export const url = (account: string, container: string, blob: string): string =>
  `azblob://${account}/${container}/${blob}`

export const targetOf = (account: string, container: string, blob: string): ObjectTarget => ({
  bucket: container,
  object: blob,
  url: url(account, container, blob)
})

/**
 * The storage error code of an Azure SDK error (`BlobNotFound`,
 * `ContainerNotFound`, `AuthorizationFailure`, ...). A HEAD request has no
 * body, so the code is then only in the `x-ms-error-code` header, which the
 * SDK puts in `details.errorCode`.
 */
export const errorCodeOf = (error: unknown): string | undefined => {
  if (typeof error !== "object" || error === null) return undefined
  const record = error as { readonly code?: unknown; readonly details?: { readonly errorCode?: unknown } }
  const fromDetails = record.details?.errorCode
  if (typeof fromDetails === "string") return fromDetails
  return statusOf(error) !== undefined && typeof record.code === "string" ? record.code : undefined
}

/** Whether Azure answered that the blob does not exist (its container does). */
export const isBlobNotFound = (error: unknown): boolean => errorCodeOf(error) === "BlobNotFound"

// Error codes of https://learn.microsoft.com/rest/api/storageservices/common-rest-api-error-codes
// meaning that this identity (key, SAS, Entra ID token) may not do this here.
const deniedCodes = new Set([
  "AuthenticationFailed",
  "AuthorizationFailure",
  "AuthorizationPermissionMismatch",
  "AuthorizationProtocolMismatch",
  "AuthorizationResourceTypeMismatch",
  "AuthorizationServiceMismatch",
  "AuthorizationSourceIPMismatch",
  "InsufficientAccountPermissions",
  "AccountIsDisabled",
  "KeyBasedAuthenticationNotPermitted"
])

// @azure/identity's errors: no credential could be found, or Entra ID refused it.
const credentialErrors = new Set(["CredentialUnavailableError", "AuthenticationError", "AggregateAuthenticationError"])

const hasCode = (error: unknown, code: string): boolean =>
  typeof error === "object" && error !== null && (error as { readonly code?: unknown }).code === code

const reasonOf = (error: unknown): StorageFailure | undefined => {
  const code = errorCodeOf(error)
  if (code === "ContainerNotFound") return "BucketNotFound"
  if (code !== undefined && deniedCodes.has(code)) return "AccessDenied"
  if (error instanceof Error && credentialErrors.has(error.name)) return "AccessDenied"
  // The pipeline's wrapper of a request that never got an answer (the Node error code is in its message).
  if (statusOf(error) === undefined && hasCode(error, "REQUEST_SEND_ERROR")) return "Unreachable"
  return undefined
}

/**
 * An Azure SDK error as a store-neutral one: `ContainerNotFound` is
 * `BucketNotFound`, the authorization codes are `AccessDenied` (whatever the
 * status), and a connection that never got an answer is `Unreachable`.
 */
export const azureError = (operation: StorageOperation, target: ObjectTarget, error: unknown): StorageError => {
  const mapped = storageError(operation, target, error, reasonOf(error))
  const code = errorCodeOf(error)
  // The answer to a HEAD request has no body, so the error has no message: its code says what happened.
  if (code === undefined || describe(error) !== "unknown error") return mapped
  return new StorageError({
    operation: mapped.operation,
    bucket: mapped.bucket,
    object: mapped.object,
    ...(mapped.status === undefined ? {} : { status: mapped.status }),
    ...(mapped.reason === undefined ? {} : { reason: mapped.reason }),
    message: `${mapped.message.slice(0, -"unknown error".length)}${code}`,
    cause: error
  })
}
