import {
  Agent,
  createServer as createHttpServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ClientRequest as NodeClientRequest,
  type Server as NodeHttpServer,
  request as nodeRequest,
  type ServerResponse
} from "node:http"
import {
  type AddressInfo,
  connect,
  createServer as createTcpServer,
  type Server as NodeTcpServer,
  type Socket
} from "node:net"
import type { Writable } from "node:stream"
import { NodeStream } from "@effect/platform-node"
import {
  Context,
  Data,
  Deferred,
  type Duration,
  Effect,
  Exit,
  FiberSet,
  Layer,
  Ref,
  Schema,
  type Scope,
  Stream
} from "effect"

/**
 * Fault-injecting proxies for the chaos suite (issue 13), each a server on
 * 127.0.0.1 (a free port) that lives as long as its scope:
 *
 * - {@link HttpFaultProxy}: an HTTP/1.1 reverse proxy (in front of the GCS
 *   emulator) that passes requests through, with redirects to the upstream
 *   rewritten to itself, until told to hurt one: a reset mid-request, a 5xx
 *   answer, or a stall mid-upload;
 * - {@link TcpFaultProxy}: a byte-level TCP proxy (in front of the API
 *   server; TLS passes through untouched) that can freeze every established
 *   connection, the way a dead NAT entry or a hung load balancer does, while
 *   new connections still work.
 */

/** A proxy could not listen. */
export class FaultProxyError extends Schema.TaggedError<FaultProxyError>()("FaultProxyError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

/**
 * What the HTTP proxy does to one request.
 *
 * - `Reset`: part of the request reaches the upstream (its first body chunk,
 *   or the whole request when it has no body), then both connections are
 *   reset: the client sees `ECONNRESET` and never an answer.
 * - `ServerError`: the request body is read and dropped (the upstream never
 *   sees it) and the proxy answers `status` with a GCS-style JSON error.
 * - `Stall`: after the first body chunk (or, without a body, before
 *   anything) nothing more is forwarded for `duration`, then the exchange
 *   goes on, unless the client gave up meanwhile.
 */
export type HttpFault =
  | { readonly _tag: "Reset" }
  | { readonly _tag: "ServerError"; readonly status: number }
  | { readonly _tag: "Stall"; readonly duration: Duration.Duration }

/** A request as a fault's `match` sees it. */
export interface ProxiedRequest {
  readonly method: string
  /** Path and query, as the client sent them. */
  readonly path: string
}

/** A fault that hit a request. */
export interface InjectedFault extends ProxiedRequest {
  readonly fault: HttpFault
}

/** An HTTP reverse proxy that can hurt the requests it passes on. */
export interface HttpFaultProxyShape {
  /** `http://127.0.0.1:PORT`: use it instead of the upstream's URL. */
  readonly url: string
  /**
   * Arms `fault` for the next request that `match`es (default: any) and
   * waits until one took it. Interrupting the wait (a timeout) disarms it.
   * Several faults may be armed; each request takes at most one.
   */
  readonly inject: (fault: HttpFault, match?: (request: ProxiedRequest) => boolean) => Effect.Effect<InjectedFault>
  /** Requests received so far. */
  readonly requests: Effect.Effect<number>
}

/** An exchange that ended early: the client went away, or a reset was injected. */
class Dropped extends Data.TaggedError("Dropped")<{ readonly reason: string }> {}

interface Armed {
  readonly fault: HttpFault
  readonly match: (request: ProxiedRequest) => boolean
  readonly taken: Deferred.Deferred<InjectedFault>
}

// Hop-by-hop headers belong to one connection, not to the exchange (RFC 9110 §7.6.1).
const hopByHop = new Set(["connection", "keep-alive", "proxy-connection", "upgrade", "te", "trailer"])

const endToEnd = (headers: IncomingHttpHeaders): IncomingHttpHeaders =>
  Object.fromEntries(Object.entries(headers).filter(([name]) => !hopByHop.has(name)))

/**
 * Writes a chunk and waits until it was handed to the connection (its write
 * callback), so a fault injected right after it happens after these bytes left:
 * one chunk in flight at a time is plenty for a test proxy.
 */
const writeTo = (writable: Writable, chunk: Uint8Array): Effect.Effect<void, Dropped> =>
  Effect.callback<void, Dropped>((resume) => {
    if (writable.destroyed) return resume(Effect.fail(new Dropped({ reason: "the peer went away" })))
    writable.write(chunk, (error) =>
      resume(error == null ? Effect.void : Effect.fail(new Dropped({ reason: `write failed: ${error.message}` })))
    )
  })

/** A body as a stream; it ends the exchange (`Dropped`) if its connection breaks. */
const bodyOf = (message: IncomingMessage): Stream.Stream<Uint8Array, Dropped> =>
  NodeStream.fromReadable<Uint8Array, Dropped>({
    evaluate: () => message,
    onError: (cause) => new Dropped({ reason: `the body broke off: ${String(cause)}` }),
    // Destroying a request would destroy its keep-alive connection.
    closeOnDone: false
  })

/** Listens on 127.0.0.1, a free port; closed (every connection with it) with the scope. */
const listen = <S extends NodeHttpServer | NodeTcpServer>(
  what: string,
  server: S,
  closeConnections: (server: S) => void
): Effect.Effect<{ readonly server: S; readonly port: number }, FaultProxyError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.callback<S, FaultProxyError>((resume) => {
      server.once("error", (cause) =>
        resume(Effect.fail(new FaultProxyError({ message: `${what} cannot listen`, cause })))
      )
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) =>
      Effect.callback<void>((resume) => {
        server.close(() => resume(Effect.void))
        closeConnections(server)
      })
  ).pipe(Effect.map((server) => ({ server, port: (server.address() as AddressInfo).port })))

const makeHttp = (options: { readonly target: string }) =>
  Effect.gen(function* () {
    const target = new URL(options.target)
    const armed = yield* Ref.make<ReadonlyArray<Armed>>([])
    const requests = yield* Ref.make(0)
    // One connection per forwarded request: a reset or a stall then hurts that request only.
    const agent = yield* Effect.acquireRelease(
      Effect.sync(() => new Agent({ keepAlive: false })),
      (agent) => Effect.sync(() => agent.destroy())
    )
    const run = yield* FiberSet.makeRuntime<never>()

    /** The first armed fault that matches, taken off the list. */
    const take = (request: ProxiedRequest) =>
      Ref.modify(armed, (all): [Armed | undefined, ReadonlyArray<Armed>] => {
        const found = all.find((a) => a.match(request))
        return [found, found === undefined ? all : all.filter((a) => a !== found)]
      })

    /** The upstream request, with its answer (or failure) captured from the start. */
    const open = (req: IncomingMessage) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          const answer = Deferred.makeUnsafe<IncomingMessage, Dropped>()
          const upstream: NodeClientRequest = nodeRequest(new URL(req.url ?? "/", target), {
            method: req.method ?? "GET",
            headers: { ...endToEnd(req.headers), host: target.host },
            agent
          })
          upstream.on("response", (response) => Deferred.doneUnsafe(answer, Effect.succeed(response)))
          upstream.on("error", (cause) =>
            Deferred.doneUnsafe(answer, Effect.fail(new Dropped({ reason: `upstream: ${cause.message}` })))
          )
          return { upstream, answer }
        }),
        ({ upstream }) => Effect.sync(() => upstream.destroy())
      )

    const reset = (req: IncomingMessage, upstream: NodeClientRequest) =>
      Effect.sync(() => {
        upstream.destroy()
        req.socket.resetAndDestroy()
      }).pipe(Effect.andThen(Effect.fail(new Dropped({ reason: "reset injected" }))))

    /** Passes one exchange on, hurting it with `fault` at its first body chunk (or at its end without a body). */
    const forward = (req: IncomingMessage, res: ServerResponse, fault: HttpFault | undefined) =>
      Effect.gen(function* () {
        const { upstream, answer } = yield* open(req)
        const midRequest =
          fault?._tag === "Reset"
            ? reset(req, upstream)
            : fault?._tag === "Stall"
              ? Effect.sleep(fault.duration)
              : Effect.void
        const chunks = yield* bodyOf(req).pipe(
          Stream.runFoldEffect(
            () => 0,
            (n, chunk) =>
              writeTo(upstream, chunk).pipe(Effect.andThen(n === 0 ? midRequest : Effect.void), Effect.as(n + 1))
          )
        )
        if (chunks === 0) yield* midRequest
        yield* Effect.sync(() => upstream.end())
        const response = yield* Deferred.await(answer)
        const headers = endToEnd(response.headers)
        // Like any reverse proxy, keep the client on this side: a resumable upload goes on at the
        // `Location` of its session, which the emulator gives as its own address.
        if (headers.location?.startsWith(target.origin) === true && req.headers.host !== undefined) {
          headers.location = `http://${req.headers.host}${headers.location.slice(target.origin.length)}`
        }
        yield* Effect.sync(() => res.writeHead(response.statusCode ?? 502, headers))
        yield* bodyOf(response).pipe(Stream.runForEach((chunk) => writeTo(res, chunk)))
        yield* Effect.sync(() => res.end())
      }).pipe(Effect.scoped)

    const answerError = (req: IncomingMessage, res: ServerResponse, status: number) =>
      Stream.runDrain(bodyOf(req)).pipe(
        Effect.andThen(
          Effect.sync(() =>
            res
              .writeHead(status, { "content-type": "application/json" })
              .end(JSON.stringify({ error: { code: status, message: "injected by the fault proxy" } }))
          )
        )
      )

    const handle = (req: IncomingMessage, res: ServerResponse) =>
      Effect.gen(function* () {
        yield* Ref.update(requests, (n) => n + 1)
        const request: ProxiedRequest = { method: req.method ?? "GET", path: req.url ?? "/" }
        const hit = yield* take(request)
        if (hit !== undefined) yield* Deferred.succeed(hit.taken, { ...request, fault: hit.fault })
        if (hit?.fault._tag === "ServerError") return yield* answerError(req, res, hit.fault.status)
        yield* forward(req, res, hit?.fault)
      }).pipe(
        // Whatever broke the exchange, the client must not wait forever for the rest of it.
        Effect.onExit((exit) => (Exit.isSuccess(exit) ? Effect.void : Effect.sync(() => res.destroy()))),
        Effect.ignore
      )

    const { port } = yield* listen(
      "the HTTP fault proxy",
      createHttpServer((req, res) => {
        run(handle(req, res))
      }),
      (server) => server.closeAllConnections()
    )

    const inject = (fault: HttpFault, match: (request: ProxiedRequest) => boolean = () => true) =>
      Effect.gen(function* () {
        const entry: Armed = { fault, match, taken: yield* Deferred.make<InjectedFault>() }
        yield* Ref.update(armed, (all) => [...all, entry])
        return yield* Deferred.await(entry.taken).pipe(
          Effect.onInterrupt(() => Ref.update(armed, (all) => all.filter((a) => a !== entry)))
        )
      })

    return HttpFaultProxy.of({ url: `http://127.0.0.1:${port}`, inject, requests: Ref.get(requests) })
  })

/**
 * An HTTP/1.1 reverse proxy to `target` on 127.0.0.1 (a free port) that passes
 * every request through (one upstream connection per request) until
 * {@link HttpFaultProxyShape.inject} arms a fault for one.
 *
 * @example
 * ```ts
 * const program = Effect.gen(function* () {
 *   const proxy = yield* HttpFaultProxy
 *   // the next upload answers 503
 *   yield* proxy.inject({ _tag: "ServerError", status: 503 }, (request) => request.method !== "GET")
 * }).pipe(Effect.provide(HttpFaultProxy.layer({ target: "http://127.0.0.1:4443" })))
 * ```
 */
export class HttpFaultProxy extends Context.Service<HttpFaultProxy, HttpFaultProxyShape>()(
  "@db-backup-operator/chaos/HttpFaultProxy"
) {
  /** The proxy in the current scope. */
  static readonly make = makeHttp
  static readonly layer = (options: { readonly target: string }): Layer.Layer<HttpFaultProxy, FaultProxyError> =>
    Layer.effect(HttpFaultProxy, makeHttp(options))
}

/** A TCP proxy that can freeze the connections it carries. */
export interface TcpFaultProxyShape {
  readonly host: string
  readonly port: number
  /**
   * Stops forwarding bytes, both ways, on every connection established so
   * far, without closing any: each end sees a peer that went silent. New
   * connections are forwarded as usual. Returns how many froze.
   */
  readonly freeze: Effect.Effect<number>
  /** Connections accepted so far. */
  readonly accepted: Effect.Effect<number>
  /** Connections forwarding right now (neither frozen nor closed). */
  readonly live: Effect.Effect<number>
}

interface Pair {
  readonly client: Socket
  readonly upstream: Socket
  frozen: boolean
}

const makeTcp = (options: { readonly host: string; readonly port: number }) =>
  Effect.gen(function* () {
    // Owned by the server's callbacks; Effects only read them (one thread).
    const pairs = new Set<Pair>()
    let accepted = 0

    const onConnection = (client: Socket) => {
      accepted += 1
      const upstream = connect(options.port, options.host)
      const pair: Pair = { client, upstream, frozen: false }
      pairs.add(pair)
      // A frozen pair must not hear of a close either: only the scope ends it.
      const close = () => {
        if (pair.frozen) return
        pairs.delete(pair)
        client.destroy()
        upstream.destroy()
      }
      for (const socket of [client, upstream]) {
        socket.on("error", close)
        socket.on("close", close)
      }
      client.pipe(upstream)
      upstream.pipe(client)
    }

    const freeze = Effect.sync(() => {
      let frozen = 0
      for (const pair of pairs) {
        if (pair.frozen) continue
        pair.frozen = true
        pair.client.unpipe(pair.upstream)
        pair.upstream.unpipe(pair.client)
        pair.client.pause()
        pair.upstream.pause()
        frozen += 1
      }
      return frozen
    })

    const { port } = yield* listen("the TCP fault proxy", createTcpServer(onConnection), () => {
      for (const pair of pairs) {
        pair.client.destroy()
        pair.upstream.destroy()
      }
      pairs.clear()
    })

    return TcpFaultProxy.of({
      host: "127.0.0.1",
      port,
      freeze,
      accepted: Effect.sync(() => accepted),
      live: Effect.sync(() => [...pairs].filter((pair) => !pair.frozen).length)
    })
  })

/**
 * A byte-level TCP proxy to `host:port` on 127.0.0.1 (a free port): TLS and
 * HTTP/2 pass through untouched, and {@link TcpFaultProxyShape.freeze} makes
 * every established connection go silent without closing it.
 *
 * @example
 * ```ts
 * const program = Effect.gen(function* () {
 *   const proxy = yield* TcpFaultProxy
 *   const frozen = yield* proxy.freeze
 * }).pipe(Effect.provide(TcpFaultProxy.layer({ host: "127.0.0.1", port: 6443 })))
 * ```
 */
export class TcpFaultProxy extends Context.Service<TcpFaultProxy, TcpFaultProxyShape>()(
  "@db-backup-operator/chaos/TcpFaultProxy"
) {
  /** The proxy in the current scope. */
  static readonly make = makeTcp
  static readonly layer = (options: {
    readonly host: string
    readonly port: number
  }): Layer.Layer<TcpFaultProxy, FaultProxyError> => Layer.effect(TcpFaultProxy, makeTcp(options))
}
