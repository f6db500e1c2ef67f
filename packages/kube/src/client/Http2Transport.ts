import * as http2 from "node:http2"
import { isIP } from "node:net"
import * as tls from "node:tls"
import { NodeStream } from "@effect/platform-node"
import { Context, Duration, Effect, Layer, Scope } from "effect"
import type { Tls } from "./Connection.ts"
import {
  type Answer,
  decodeUtf8,
  failure,
  type Head,
  HttpFailure,
  HttpTransport,
  type Request,
  type Streamed,
  type Transport
} from "./Http.ts"

// The transport for https servers on node:http2: one session (one TCP connection) per
// server, as client-go keeps, made on first use and again once it has closed, failed or
// been told to go away (GOAWAY: its streams finish, new ones go to a new session).
// Cancelling a request resets its stream at once (RST_STREAM CANCEL). A PING every
// `pingInterval` that is still unanswered at the next one ends a silently dead session, and
// with it the watches on it, which then reconnect. A server that answers TLS with HTTP/1.1
// only (a proxy) makes the first requests fail as transient; they and all later ones then
// go through undici (UndiciTransport), imported only for such a server.

export interface Options {
  readonly tls: Tls
  /** Default 15 seconds. */
  readonly pingInterval?: Duration.Input
}

const { NGHTTP2_CANCEL } = http2.constants

/** The request's pseudo-headers and headers, names in lower case as HTTP/2 requires. */
const headersOf = (request: Request): http2.OutgoingHttpHeaders => {
  const headers: http2.OutgoingHttpHeaders = { ":method": request.method, ":path": request.path }
  for (const [name, value] of Object.entries(request.headers)) headers[name.toLowerCase()] = value
  return headers
}

const headOf = (headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader): Head => ({
  status: Number(headers[":status"] ?? 0),
  headers
})

/** A closed stream that neither ended nor failed was reset by the server (e.g. REFUSED_STREAM after GOAWAY). */
const reset = (stream: http2.ClientHttp2Stream): HttpFailure =>
  new HttpFailure({ message: `stream reset by the server (HTTP/2 error code ${stream.rstCode})`, cause: undefined })

class Sessions {
  readonly #origin: string
  readonly #options: http2.SecureClientSessionOptions
  readonly #pingMillis: number
  readonly #open = new Set<http2.ClientHttp2Session>()
  #current: http2.ClientHttp2Session | undefined
  #closed = false
  /** Set once the server chose HTTP/1.1 over TLS: this transport then hands everything to undici. */
  http1Only = false

  constructor(origin: string, tlsOptions: Tls, pingMillis: number) {
    this.#origin = origin
    this.#pingMillis = pingMillis
    const url = new URL(origin)
    const host = url.hostname.replace(/^\[|\]$/gu, "")
    this.#options = {
      // Our own TLS socket, offering HTTP/1.1 too, so that a server without HTTP/2 is told
      // apart from a broken one (before node's own check fails the session).
      createConnection: () => {
        const socket = tls.connect({
          host,
          port: Number(url.port || 443),
          ALPNProtocols: ["h2", "http/1.1"],
          // SNI takes a name, not an address.
          ...(isIP(host) === 0 ? { servername: host } : {}),
          ...tlsOptions
        })
        socket.once("secureConnect", () => {
          if (socket.alpnProtocol !== "h2") this.http1Only = true
        })
        return socket
      }
    }
  }

  /** The session to send on; a new one when there is none usable. */
  get(): http2.ClientHttp2Session {
    if (this.#closed) throw new Error("the HTTP/2 transport is closed")
    const current = this.#current
    if (current !== undefined && !current.closed && !current.destroyed) return current
    return this.#connect()
  }

  #connect(): http2.ClientHttp2Session {
    const session = http2.connect(this.#origin, this.#options)
    this.#current = session
    this.#open.add(session)
    const retire = () => {
      if (this.#current === session) this.#current = undefined
    }
    // Errors also reach the session's streams, whose requests report them.
    session.on("error", retire)
    session.on("goaway", retire)
    let unanswered = false
    const ping = setInterval(() => {
      if (unanswered) {
        session.destroy(new Error(`no answer to an HTTP/2 PING in ${this.#pingMillis} ms`))
        return
      }
      unanswered = true
      session.ping(() => {
        unanswered = false
      })
    }, this.#pingMillis)
    ping.unref()
    session.on("close", () => {
      clearInterval(ping)
      retire()
      this.#open.delete(session)
    })
    // An idle session does not keep the process alive; the program's own fiber does.
    session.unref()
    return session
  }

  /** Closes every session: streams still open get `grace` to finish, then are cut. */
  close(graceMillis: number): Promise<void> {
    this.#closed = true
    this.#current = undefined
    const sessions = [...this.#open]
    return Promise.all(
      sessions.map(
        (session) =>
          new Promise<void>((resolve) => {
            if (session.destroyed) return resolve()
            const timer = setTimeout(() => session.destroy(), graceMillis)
            // Listened to here, not through close(callback): a session already closing
            // (after GOAWAY) ignores close() and its callback.
            session.once("close", () => {
              clearTimeout(timer)
              resolve()
            })
            session.close()
          })
      )
    ).then(() => undefined)
  }
}

/** Opens the request's stream and sends its body; its events come later, once listened to. */
const send = (sessions: Sessions, request: Request): http2.ClientHttp2Stream | HttpFailure => {
  try {
    const stream = sessions.get().request(headersOf(request), { endStream: request.body === undefined })
    if (request.body !== undefined) stream.end(request.body)
    return stream
  } catch (error) {
    return failure(error)
  }
}

const exchange = (sessions: Sessions, request: Request): Effect.Effect<Answer, HttpFailure> =>
  Effect.callback<Answer, HttpFailure>((resume) => {
    const stream = send(sessions, request)
    if (stream instanceof HttpFailure) return resume(Effect.fail(stream))
    let head: Head = { status: 0, headers: {} }
    const chunks: Array<Buffer> = []
    let settled = false
    const settle = (effect: Effect.Effect<Answer, HttpFailure>) => {
      if (settled) return
      settled = true
      resume(effect)
    }
    stream.on("response", (headers) => {
      head = headOf(headers)
    })
    stream.on("data", (chunk: Buffer) => chunks.push(chunk))
    stream.on("end", () => settle(Effect.succeed({ ...head, body: decodeUtf8(chunks) })))
    stream.on("error", (error) => settle(Effect.fail(failure(error))))
    stream.on("close", () => settle(Effect.fail(reset(stream))))
    return Effect.sync(() => {
      settled = true
      stream.close(NGHTTP2_CANCEL)
    })
  })

const open = (sessions: Sessions, request: Request): Effect.Effect<Streamed, HttpFailure, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.callback<{ readonly head: Head; readonly stream: http2.ClientHttp2Stream }, HttpFailure>((resume) => {
      const stream = send(sessions, request)
      if (stream instanceof HttpFailure) return resume(Effect.fail(stream))
      let settled = false
      const settle = (
        effect: Effect.Effect<{ readonly head: Head; readonly stream: http2.ClientHttp2Stream }, HttpFailure>
      ) => {
        if (settled) return
        settled = true
        stream.removeListener("error", failed)
        stream.removeListener("close", closed)
        resume(effect)
      }
      const failed = (error: Error) => settle(Effect.fail(failure(error)))
      const closed = () => settle(Effect.fail(reset(stream)))
      stream.once("response", (headers) => settle(Effect.succeed({ head: headOf(headers), stream })))
      // Cut off mid-answer (a reset, the session gone): the body fails rather than ending quietly.
      stream.once("aborted", () =>
        stream.destroy(new Error(`the answer was cut off (HTTP/2 error code ${stream.rstCode})`))
      )
      stream.on("error", failed)
      stream.on("close", closed)
      return Effect.sync(() => {
        settled = true
        stream.close(NGHTTP2_CANCEL)
      })
    }),
    ({ stream }) => Effect.sync(() => stream.close(NGHTTP2_CANCEL))
  ).pipe(
    Effect.map(({ head, stream }) => ({
      ...head,
      // A reset mid-body (the server going away) fails the stream rather than ending it.
      body: NodeStream.fromReadable<Uint8Array, HttpFailure>({
        evaluate: () => stream,
        onError: failure,
        closeOnDone: false
      })
    }))
  )

/**
 * The HTTP/2 transport to `server` for as long as the Scope lives; streams still
 * open when it closes get 2 seconds to finish.
 */
export const make = (server: string, options: Options): Effect.Effect<Transport, never, Scope.Scope> =>
  Effect.gen(function* () {
    const pingMillis = Duration.toMillis(Duration.fromInputUnsafe(options.pingInterval ?? "15 seconds"))
    const sessions = yield* Effect.acquireRelease(
      Effect.sync(() => new Sessions(new URL(server).origin, options.tls, pingMillis)),
      (sessions) => Effect.promise(() => sessions.close(2000))
    )
    // Only for a server that turned out to speak HTTP/1.1 alone.
    const scope = yield* Effect.scope
    const fallback = yield* Effect.cached(
      Effect.promise(() => import("./UndiciTransport.ts")).pipe(
        Effect.flatMap((undici) => Layer.build(undici.layer({ connect: { ...options.tls } }))),
        Effect.map(Context.get(HttpTransport)),
        Scope.provide(scope)
      )
    )
    return {
      exchange: (request) =>
        sessions.http1Only ? Effect.flatMap(fallback, (http1) => http1.exchange(request)) : exchange(sessions, request),
      open: (request) =>
        sessions.http1Only ? Effect.flatMap(fallback, (http1) => http1.open(request)) : open(sessions, request)
    }
  })

/**
 * {@link make} as the client's transport.
 *
 * @example
 * ```ts
 * import * as Http2Transport from "./Http2Transport.ts"
 *
 * const Http = Http2Transport.layer("https://127.0.0.1:6443", { tls: {} })
 * ```
 */
export const layer = (server: string, options: Options): Layer.Layer<HttpTransport> =>
  Layer.effect(HttpTransport, make(server, options))
