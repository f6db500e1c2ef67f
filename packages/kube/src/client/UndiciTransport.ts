import { Readable } from "node:stream"
import { NodeStream } from "@effect/platform-node"
import { Effect, Layer, type Scope } from "effect"
import type { Agent, Dispatcher as Undici } from "undici"
import * as Dispatcher from "./Dispatcher.ts"
import {
  type Answer,
  decodeUtf8,
  failure,
  type Head,
  type HttpFailure,
  HttpTransport,
  Interrupted,
  type Request,
  type Streamed,
  type Transport
} from "./Http.ts"

// The transport over an undici dispatcher, for plain http servers (a `kubectl proxy`),
// HTTPS servers that do not speak HTTP/2, and tests that need a dispatcher of their own.
// An exchange is one `dispatch` with a handler that gathers the answer: no AbortController
// (an abort builds a DOMException), no body stream, nothing to close.

/** Hands the request to `dispatcher`; what it throws at once, as a failure. */
const send = (
  dispatcher: Undici,
  request: Request,
  handler: Undici.DispatchHandler,
  timeouts: { readonly headersTimeout?: number; readonly bodyTimeout?: number } = {}
): HttpFailure | undefined => {
  try {
    dispatcher.dispatch(
      {
        origin: request.origin,
        method: request.method as Undici.HttpMethod,
        path: request.path,
        headers: request.headers,
        ...timeouts,
        ...(request.body === undefined ? {} : { body: request.body })
      },
      handler
    )
    return undefined
  } catch (error) {
    return failure(error)
  }
}

/** {@link Transport.exchange} over `dispatcher`. */
const exchange = (dispatcher: Undici, request: Request): Effect.Effect<Answer, HttpFailure> =>
  Effect.callback<Answer, HttpFailure>((resume) => {
    let controller: Undici.DispatchController | undefined
    let interrupted: Interrupted | undefined
    let status = 0
    let headers: Head["headers"] = {}
    const chunks: Array<Buffer> = []
    const handler: Undici.DispatchHandler = {
      onRequestStart(started) {
        controller = started
        // Interrupted while queued: aborting here keeps it off the wire.
        if (interrupted !== undefined) started.abort(interrupted)
      },
      onResponseStart(_controller, statusCode, responseHeaders) {
        status = statusCode
        headers = responseHeaders
      },
      onResponseData(_controller, chunk) {
        chunks.push(chunk)
      },
      // undici marks the connection free only after these return; resuming the caller inside
      // them would send its next request before, on a second connection (HTTP/1.1).
      onResponseEnd() {
        const answer = { status, headers, body: decodeUtf8(chunks) }
        queueMicrotask(() => resume(Effect.succeed(answer)))
      },
      onResponseError(_controller, error) {
        queueMicrotask(() => resume(Effect.fail(failure(error))))
      }
    }
    const sent = send(dispatcher, request, handler)
    if (sent !== undefined) resume(Effect.fail(sent))
    return Effect.sync(() => {
      interrupted = new Interrupted()
      controller?.abort(interrupted)
    })
  })

/** An answer's body as a Node stream, pausing the HTTP stream while the reader is behind. */
class Body extends Readable {
  readonly #controller: Undici.DispatchController
  constructor(controller: Undici.DispatchController) {
    super()
    this.#controller = controller
  }
  override _read(): void {
    this.#controller.resume()
  }
  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // Let go before the end: cancel the request (a watch closed by its reader).
    if (!this.readableEnded) this.#controller.abort(error ?? new Interrupted())
    callback(error)
  }
}

/** {@link Transport.open} over `dispatcher`. */
const open = (dispatcher: Undici, request: Request): Effect.Effect<Streamed, HttpFailure, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.callback<Head & { readonly readable: Body }, HttpFailure>((resume) => {
      let controller: Undici.DispatchController | undefined
      let interrupted: Interrupted | undefined
      let body: Body | undefined
      const handler: Undici.DispatchHandler = {
        onRequestStart(started) {
          controller = started
          if (interrupted !== undefined) started.abort(interrupted)
        },
        onResponseStart(started, statusCode, headers) {
          if (statusCode < 200) return
          body = new Body(started)
          resume(Effect.succeed({ status: statusCode, headers, readable: body }))
        },
        onResponseData(paused, chunk) {
          if (body?.push(chunk) === false) paused.pause()
        },
        onResponseEnd() {
          body?.push(null)
        },
        onResponseError(_controller, error) {
          if (body === undefined) resume(Effect.fail(failure(error)))
          else body.destroy(error)
        }
      }
      // A watch may be quiet for minutes (bookmarks aside): how long to wait is the caller's to say.
      const sent = send(dispatcher, request, handler, { headersTimeout: 0, bodyTimeout: 0 })
      if (sent !== undefined) resume(Effect.fail(sent))
      return Effect.sync(() => {
        interrupted = new Interrupted()
        controller?.abort(interrupted)
      })
    }),
    (answer) => Effect.sync(() => answer.readable.destroy())
  ).pipe(
    Effect.map(
      ({ readable, ...head }): Streamed => ({
        ...head,
        body: NodeStream.fromReadable<Uint8Array, HttpFailure>({ evaluate: () => readable, onError: failure })
      })
    )
  )

/** The transport over `dispatcher`. */
export const make = (dispatcher: Undici): Transport => ({
  exchange: (request) => exchange(dispatcher, request),
  open: (request) => open(dispatcher, request)
})

/**
 * The transport over a new undici pool ({@link Dispatcher.make}), for as long as the layer lives.
 *
 * @example
 * ```ts
 * import * as UndiciTransport from "./UndiciTransport.ts"
 *
 * const Http1 = UndiciTransport.layer({ allowH2: false })
 * ```
 */
export const layer = (options: Agent.Options, settings: Dispatcher.Settings = {}): Layer.Layer<HttpTransport> =>
  Layer.effect(HttpTransport, Effect.map(Dispatcher.make(options, settings), make))
