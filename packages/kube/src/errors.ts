import { Schema } from "effect"

/**
 * Typed failures of API calls. Each names the request (`GET /api/v1/...`) and
 * carries the API server's message, so a log line or a status condition is readable
 * without the stack.
 */
const common = {
  message: Schema.String,
  request: Schema.String
}

/** 404: the object (or its namespace) does not exist. */
export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", common) {}

/** 409 with reason AlreadyExists: a create found the name taken. */
export class AlreadyExists extends Schema.TaggedError<AlreadyExists>()("AlreadyExists", common) {}

/** 409 Conflict: a resourceVersion/precondition/JSON-patch test did not match. */
export class Conflict extends Schema.TaggedError<Conflict>()("Conflict", common) {}

/** 410 Gone: a watch or list resourceVersion is too old (compacted); relist. */
export class Gone extends Schema.TaggedError<Gone>()("Gone", common) {}

/** One field-level cause of an Invalid error (`details.causes[]`). */
export const StatusCause = Schema.Struct({
  reason: Schema.optionalKey(Schema.String),
  message: Schema.optionalKey(Schema.String),
  field: Schema.optionalKey(Schema.String)
})
export type StatusCause = typeof StatusCause.Type

/** 422 Invalid: validation failed; `causes` name the fields. */
export class Invalid extends Schema.TaggedError<Invalid>()("Invalid", {
  ...common,
  causes: Schema.Array(StatusCause)
}) {}

/** 403: RBAC denied the request. */
export class Forbidden extends Schema.TaggedError<Forbidden>()("Forbidden", common) {}

/** 401: the credentials were rejected. */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", common) {}

/** Any other 4xx (400 BadRequest, 405, 406, 415, ...): the request itself is wrong; retrying will not help. */
export class BadRequest extends Schema.TaggedError<BadRequest>()("BadRequest", {
  ...common,
  status: Schema.Int
}) {}

/**
 * 429, 5xx, or a connection failure: worth retrying. `retryAfterSeconds` carries the
 * server's `Retry-After`. The client has already retried these with backoff when
 * one reaches the caller.
 */
export class Transient extends Schema.TaggedError<Transient>()("Transient", {
  ...common,
  status: Schema.optionalKey(Schema.Int),
  retryAfterSeconds: Schema.optionalKey(Schema.Finite)
}) {}

/** The server sent an object that does not match the kind's Schema. Names the object and the field. */
export class DecodeError extends Schema.TaggedError<DecodeError>()("DecodeError", {
  message: Schema.String,
  kind: Schema.String,
  object: Schema.String
}) {}

/** Every way an API call can fail. */
export type KubeError =
  | NotFound
  | AlreadyExists
  | Conflict
  | Gone
  | Invalid
  | Forbidden
  | Unauthorized
  | BadRequest
  | Transient
  | DecodeError

/** The `metav1.Status` body the API server returns with errors. */
export const Status = Schema.Struct({
  kind: Schema.optionalKey(Schema.String),
  status: Schema.optionalKey(Schema.String),
  message: Schema.optionalKey(Schema.String),
  reason: Schema.optionalKey(Schema.String),
  code: Schema.optionalKey(Schema.Int),
  details: Schema.optionalKey(
    Schema.Struct({
      name: Schema.optionalKey(Schema.String),
      kind: Schema.optionalKey(Schema.String),
      causes: Schema.optionalKey(Schema.Array(StatusCause))
    })
  )
})
export type Status = typeof Status.Type

const decodeStatus = Schema.decodeUnknownOption(Status)

/**
 * Maps an HTTP status and its body (a `metav1.Status` when the API server produced
 * it) to the typed error.
 */
export const fromStatus = (
  request: string,
  httpStatus: number,
  body: unknown,
  retryAfterSeconds?: number
): KubeError => {
  const status = decodeStatus(body)
  const parsed = status._tag === "Some" ? status.value : undefined
  const message = parsed?.message ?? (typeof body === "string" && body.length > 0 ? body : `HTTP ${httpStatus}`)
  const base = { message, request }
  if (httpStatus === 404) return new NotFound(base)
  if (httpStatus === 409) return parsed?.reason === "AlreadyExists" ? new AlreadyExists(base) : new Conflict(base)
  if (httpStatus === 410) return new Gone(base)
  if (httpStatus === 422) return new Invalid({ ...base, causes: parsed?.details?.causes ?? [] })
  if (httpStatus === 403) return new Forbidden(base)
  if (httpStatus === 401) return new Unauthorized(base)
  if (httpStatus === 429 || httpStatus >= 500) {
    return new Transient(
      retryAfterSeconds === undefined
        ? { ...base, status: httpStatus }
        : { ...base, status: httpStatus, retryAfterSeconds }
    )
  }
  return new BadRequest({ ...base, status: httpStatus })
}

/** True for errors the client retries with backoff. */
export const isTransient = (error: KubeError): error is Transient => error._tag === "Transient"
