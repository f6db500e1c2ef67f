import type { IncomingMessage, ServerResponse } from "node:http"
import * as http2 from "node:http2"
import * as https from "node:https"
import type { AddressInfo } from "node:net"
import { makeTestPki } from "@db-backup-operator/testing"
import { NodeServices } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Stream } from "effect"
import * as Http2Transport from "../src/client/Http2Transport.ts"

// node:http2 servers with a throwaway CA stand in for the API server, to make it misbehave
// on demand: never answer, send GOAWAY, speak HTTP/1.1 only.

interface Served {
  readonly origin: string
  readonly ca: string
}

/** A TLS server (HTTP/2, or HTTP/1.1 only) for the scope; `handle` answers its requests. */
const tlsServer = (
  protocol: "h2" | "http/1.1",
  handle: (
    request: http2.Http2ServerRequest | IncomingMessage,
    response: http2.Http2ServerResponse | ServerResponse
  ) => void,
  onSession: (session: http2.ServerHttp2Session) => void = () => {}
) =>
  Effect.gen(function* () {
    const pki = yield* makeTestPki()
    const certificate = yield* pki.serverCertificate()
    const options = { key: certificate.keyPem, cert: certificate.certPem }
    const server =
      protocol === "h2"
        ? http2.createSecureServer(options, handle).on("session", onSession)
        : https.createServer(options, handle)
    const port = yield* Effect.acquireRelease(
      Effect.callback<number>((resume) => {
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed((server.address() as AddressInfo).port)))
      }),
      () =>
        Effect.callback<void>((resume) => {
          server.close(() => resume(Effect.void))
          if ("closeAllConnections" in server) server.closeAllConnections()
        })
    )
    const served: Served = { origin: `https://127.0.0.1:${port}`, ca: pki.ca.certPem }
    return served
  }).pipe(Effect.provide(NodeServices.layer))

const get = (server: Served, path: string) => ({
  origin: server.origin,
  method: "GET",
  path,
  headers: { accept: "text/plain" }
})

describe("Http2Transport", () => {
  it.live("an interrupted request resets its stream at once (RST_STREAM CANCEL)", () =>
    Effect.gen(function* () {
      const reset = yield* Deferred.make<number>()
      const started = yield* Deferred.make<void>()
      const server = yield* tlsServer("h2", (request) => {
        // Never answers; tells how the stream ended.
        const stream = (request as http2.Http2ServerRequest).stream
        stream.on("close", () => Deferred.doneUnsafe(reset, Exit.succeed(stream.rstCode)))
        Deferred.doneUnsafe(started, Exit.void)
      })
      const transport = yield* Http2Transport.make(server.origin, { tls: { ca: server.ca } })
      const request = yield* Effect.forkChild(transport.exchange(get(server, "/never")))
      yield* Deferred.await(started)
      yield* Fiber.interrupt(request)
      assert.strictEqual(yield* Deferred.await(reset).pipe(Effect.timeout("5 seconds")), http2.constants.NGHTTP2_CANCEL)
    }).pipe(Effect.scoped)
  )

  it.live("after GOAWAY the open request finishes and new ones go to a new connection", () =>
    Effect.gen(function* () {
      const sessions: Array<http2.ServerHttp2Session> = []
      const wentAway = yield* Deferred.make<void>()
      const server = yield* tlsServer(
        "h2",
        (request, response) => {
          const session = (request as http2.Http2ServerRequest).stream.session
          if (request.url === "/slow") {
            // The server goes away while this one is still being answered.
            session?.goaway()
            Deferred.doneUnsafe(wentAway, Exit.void)
            setTimeout(() => response.end("slow done"), 200)
          } else response.end(`answered on connection ${sessions.indexOf(session as http2.ServerHttp2Session) + 1}`)
        },
        (session) => sessions.push(session)
      )
      const transport = yield* Http2Transport.make(server.origin, { tls: { ca: server.ca } })
      const first = yield* transport.exchange(get(server, "/first"))
      assert.strictEqual(first.body, "answered on connection 1")
      const slow = yield* Effect.forkChild(transport.exchange(get(server, "/slow")))
      yield* Deferred.await(wentAway)
      // Sent before the GOAWAY arrives, it is refused (REFUSED_STREAM) and, as KubeClient does with any
      // transient failure, tried again: then on the new connection.
      const after = yield* transport.exchange(get(server, "/after")).pipe(Effect.retry({ times: 3 }))
      assert.strictEqual(after.body, "answered on connection 2")
      const finished = yield* Fiber.join(slow)
      assert.strictEqual(finished.status, 200)
      assert.strictEqual(finished.body, "slow done")
    }).pipe(Effect.scoped)
  )

  it.live("a watch's body streams as it comes; closing its scope resets it", () =>
    Effect.gen(function* () {
      const reset = yield* Deferred.make<number>()
      const server = yield* tlsServer("h2", (request) => {
        const stream = (request as http2.Http2ServerRequest).stream
        stream.on("close", () => Deferred.doneUnsafe(reset, Exit.succeed(stream.rstCode)))
        stream.respond({ ":status": 200, "content-type": "application/json" })
        stream.write('{"n":1}\n')
        setTimeout(() => stream.write('{"n":2}\n'), 50)
      })
      const transport = yield* Http2Transport.make(server.origin, { tls: { ca: server.ca } })
      const lines = yield* Effect.scoped(
        Effect.flatMap(transport.open(get(server, "/watch")), (answer) =>
          answer.body.pipe(Stream.decodeText(), Stream.splitLines, Stream.take(2), Stream.runCollect)
        )
      )
      assert.deepStrictEqual([...lines], ['{"n":1}', '{"n":2}'])
      assert.strictEqual(yield* Deferred.await(reset).pipe(Effect.timeout("5 seconds")), http2.constants.NGHTTP2_CANCEL)
    }).pipe(Effect.scoped)
  )

  it.live("an HTTPS server without HTTP/2 fails the first request as transient, then is reached over HTTP/1.1", () =>
    Effect.gen(function* () {
      const server = yield* tlsServer("http/1.1", (request, response) => {
        response.end(`HTTP/${request.httpVersion}`)
      })
      const transport = yield* Http2Transport.make(server.origin, { tls: { ca: server.ca } })
      const first = yield* Effect.flip(transport.exchange(get(server, "/")))
      assert.strictEqual(first._tag, "HttpFailure")
      const second = yield* transport.exchange(get(server, "/"))
      assert.strictEqual(second.body, "HTTP/1.1")
    }).pipe(Effect.scoped)
  )
})
