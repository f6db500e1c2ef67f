import { Context, Data, type Effect, type Scope, type Stream } from "effect"

// The client's HTTP: one small interface, two implementations. Why not effect's HttpClient:
// measured against a local API server (1000 merge patches of a status, 4 at a time, Node 24),
// its request and response objects, scopes and stream wrappers cost 0.80 ms of CPU per request
// where undici's own dispatch costs 0.53 and node:http2's 0.38, and the client's CPU per
// request is what an operator's reconcile rate is bound by on a small machine.
//   - Http2Transport (node:http2): https servers, i.e. every API server. It also keeps undici
//     (28 MiB of memory once imported, measured) out of an operator that never needs it.
//   - UndiciTransport: plain http (a `kubectl proxy`, test servers) and HTTPS servers that do
//     not speak HTTP/2; loaded only then.

/** One request: the origin, the path with its query, headers and a text body. */
export interface Request {
  readonly origin: string
  readonly method: string
  /** Path and query string, e.g. `/api/v1/namespaces/a/configmaps?limit=500`. */
  readonly path: string
  readonly headers: Readonly<Record<string, string>>
  readonly body?: string
}

/** An answer's status and headers (names in lower case). */
export interface Head {
  readonly status: number
  readonly headers: Readonly<Record<string, string | ReadonlyArray<string> | undefined>>
}

/** A whole answer, its body as text. */
export interface Answer extends Head {
  readonly body: string
}

/** An answer whose body is read as it arrives; reading stops, and the request is cancelled, when its Scope closes. */
export interface Streamed extends Head {
  readonly body: Stream.Stream<Uint8Array, HttpFailure>
}

/** The request could not be sent, or its answer was cut off (connection refused, reset, TLS). */
export class HttpFailure extends Data.TaggedError("HttpFailure")<{
  readonly message: string
  readonly cause: unknown
}> {}

/** Sends requests: a whole answer ({@link exchange}) or one read as it comes ({@link open}). */
export interface Transport {
  /**
   * Sends `request` and reads the whole answer. Interrupting it cancels the
   * request: before it is sent it never is; on the wire, it is reset.
   */
  readonly exchange: (request: Request) => Effect.Effect<Answer, HttpFailure>
  /**
   * Sends `request` and gives its status and headers once they arrive, with the
   * body as a stream (a watch). The request lives as long as the Scope: closing
   * it while the body is still coming cancels the request.
   */
  readonly open: (request: Request) => Effect.Effect<Streamed, HttpFailure, Scope.Scope>
}

/**
 * The transport the Kubernetes client sends its requests through.
 * `KubeClient.layer` provides the right one for the server's URL; a test may
 * provide {@link UndiciTransport.layer} over a dispatcher of its own.
 */
export class HttpTransport extends Context.Service<HttpTransport, Transport>()(
  "@db-backup-operator/kube/HttpTransport"
) {}

/** An `HttpFailure` from anything thrown or emitted as an error. */
export const failure = (error: unknown): HttpFailure =>
  new HttpFailure({ message: error instanceof Error ? error.message : String(error), cause: error })

/** The text of an answer gathered in chunks. */
export const decodeUtf8 = (chunks: ReadonlyArray<Buffer>): string =>
  chunks.length === 1 ? (chunks[0] as Buffer).toString("utf8") : Buffer.concat(chunks).toString("utf8")

/** Why a request was let go; never seen by the caller, whose fiber was interrupted. */
export class Interrupted extends Error {
  constructor() {
    super("request interrupted")
  }
}
