import { createServer as createHttpServer, request } from "node:http"
import { type AddressInfo, connect, createServer as createTcpServer, type Socket } from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Data, Deferred, Duration, Effect, Fiber, Queue } from "effect"
import { HttpFaultProxy, TcpFaultProxy } from "./faultProxy.ts"

// The proxies alone, against small upstreams that report what reached them.

/** What the upstream HTTP server saw, in order. */
type Seen =
  | { readonly _tag: "Chunk"; readonly path: string; readonly text: string }
  | { readonly _tag: "End"; readonly path: string; readonly body: string }
  | { readonly _tag: "Aborted"; readonly path: string; readonly body: string }

/** An upstream that answers `201 {"got": BODY}` once a request's body ended; closed with the scope. */
const upstream = Effect.gen(function* () {
  const seen = yield* Queue.unbounded<Seen>()
  const server = yield* Effect.acquireRelease(
    Effect.callback<ReturnType<typeof createHttpServer>>((resume) => {
      const server = createHttpServer((req, res) => {
        const path = req.url ?? "/"
        let body = ""
        let ended = false
        req.on("data", (chunk: Buffer) => {
          body += chunk.toString()
          Queue.offerUnsafe(seen, { _tag: "Chunk", path, text: chunk.toString() })
        })
        req.on("end", () => {
          ended = true
          Queue.offerUnsafe(seen, { _tag: "End", path, body })
          // As the GCS emulator names where a resumable upload goes on: its own address.
          const { port } = server.address() as AddressInfo
          res.writeHead(201, {
            "content-type": "application/json",
            "x-upstream": "yes",
            location: `http://127.0.0.1:${port}/upload?upload_id=1`
          })
          res.end(JSON.stringify({ got: body }))
        })
        req.on("close", () => {
          if (!ended) Queue.offerUnsafe(seen, { _tag: "Aborted", path, body })
        })
      })
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) =>
      Effect.callback<void>((resume) => {
        server.close(() => resume(Effect.void))
        server.closeAllConnections()
      })
  )
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen }
})

class ClientError extends Data.TaggedError("ClientError")<{ readonly code: string }> {}

/**
 * A request written by hand, chunk by chunk, as an upload streams: `write`,
 * then `end`; `response` is what the client finally sees.
 */
const open = (url: string, options: { readonly method: string; readonly timeout?: Duration.Duration }) =>
  Effect.gen(function* () {
    const answer = yield* Deferred.make<
      { status: number; headers: Record<string, unknown>; body: string },
      ClientError
    >()
    const req = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const req = request(url, {
          method: options.method,
          headers: { "transfer-encoding": "chunked" },
          ...(options.timeout === undefined ? {} : { timeout: Duration.toMillis(options.timeout) })
        })
        req.on("timeout", () => req.destroy(Object.assign(new Error("client timeout"), { code: "TIMEOUT" })))
        req.on("error", (error: NodeJS.ErrnoException) =>
          Deferred.doneUnsafe(answer, Effect.fail(new ClientError({ code: error.code ?? error.message })))
        )
        req.on("response", (res) => {
          let body = ""
          res.on("data", (chunk: Buffer) => {
            body += chunk.toString()
          })
          res.on("end", () =>
            Deferred.doneUnsafe(answer, Effect.succeed({ status: res.statusCode ?? 0, headers: res.headers, body }))
          )
        })
        // Sends the head at once, so the proxy sees the request before its body.
        req.flushHeaders()
        return req
      }),
      (req) => Effect.sync(() => req.destroy())
    )
    return {
      write: (text: string) => Effect.sync(() => req.write(text)),
      end: (text?: string) => Effect.sync(() => req.end(text)),
      response: Deferred.await(answer)
    }
  })

/** Takes what the upstream saw until `predicate` holds. */
const until = (seen: Queue.Queue<Seen>, predicate: (event: Seen) => boolean) =>
  Queue.take(seen).pipe(
    Effect.repeat({ until: predicate }),
    Effect.timeoutOrElse({ duration: "10 seconds", orElse: () => Effect.die(new Error("the upstream saw nothing")) })
  )

describe("HttpFaultProxy", () => {
  it.live("passes requests and answers through, with redirects to the upstream sent back to itself", () =>
    Effect.gen(function* () {
      const target = yield* upstream
      const proxy = yield* HttpFaultProxy.make({ target: target.url })
      const upload = yield* open(`${proxy.url}/upload/b/o?uploadType=resumable`, { method: "PUT" })
      yield* upload.write("first ")
      yield* upload.end("second")
      const response = yield* upload.response
      assert.strictEqual(response.status, 201)
      assert.strictEqual(response.headers["x-upstream"], "yes")
      assert.strictEqual(response.headers.location, `${proxy.url}/upload?upload_id=1`)
      assert.deepStrictEqual(JSON.parse(response.body), { got: "first second" })
      const end = yield* until(target.seen, (event) => event._tag === "End")
      assert.deepStrictEqual(end, { _tag: "End", path: "/upload/b/o?uploadType=resumable", body: "first second" })
      assert.strictEqual(yield* proxy.requests, 1)
    })
  )

  it.live("resets the connection mid-request: the client sees ECONNRESET, the upstream a body cut short", () =>
    Effect.gen(function* () {
      const target = yield* upstream
      const proxy = yield* HttpFaultProxy.make({ target: target.url })
      const injected = yield* proxy.inject({ _tag: "Reset" }).pipe(Effect.forkChild)
      const upload = yield* open(`${proxy.url}/o`, { method: "PUT" })
      yield* upload.write("first ")
      const error = yield* upload.response.pipe(Effect.flip)
      assert.strictEqual(error.code, "ECONNRESET")
      const aborted = yield* until(target.seen, (event) => event._tag !== "Chunk")
      assert.deepStrictEqual(aborted, { _tag: "Aborted", path: "/o", body: "first " })
      assert.deepStrictEqual(yield* Fiber.join(injected), { method: "PUT", path: "/o", fault: { _tag: "Reset" } })
    })
  )

  it.live("answers a 5xx itself: the upstream never sees the request", () =>
    Effect.gen(function* () {
      const target = yield* upstream
      const proxy = yield* HttpFaultProxy.make({ target: target.url })
      // Armed for uploads only: the GET before it passes.
      const injected = yield* proxy
        .inject({ _tag: "ServerError", status: 503 }, (request) => request.method === "PUT")
        .pipe(Effect.forkChild)
      const read = yield* open(`${proxy.url}/read`, { method: "GET" })
      yield* read.end()
      assert.strictEqual((yield* read.response).status, 201)
      const upload = yield* open(`${proxy.url}/o`, { method: "PUT" })
      yield* upload.end("body")
      const response = yield* upload.response
      assert.strictEqual(response.status, 503)
      assert.deepStrictEqual(JSON.parse(response.body), {
        error: { code: 503, message: "injected by the fault proxy" }
      })
      assert.deepStrictEqual(yield* Fiber.join(injected), {
        method: "PUT",
        path: "/o",
        fault: { _tag: "ServerError", status: 503 }
      })
      // The next request passes: the upstream sees it, and it is the only PUT it ever saw.
      const again = yield* open(`${proxy.url}/o2`, { method: "PUT" })
      yield* again.end("next")
      assert.strictEqual((yield* again.response).status, 201)
      const ends: Array<Seen> = []
      yield* until(target.seen, (event) => {
        if (event._tag === "End") ends.push(event)
        return event._tag === "End" && event.path === "/o2"
      })
      assert.deepStrictEqual(
        ends.map((event) => event.path),
        ["/read", "/o2"]
      )
    })
  )

  it.live("stalls mid-upload: the rest of the body is held back for the stall, then delivered", () =>
    Effect.gen(function* () {
      const target = yield* upstream
      const proxy = yield* HttpFaultProxy.make({ target: target.url })
      const stall = Duration.millis(400)
      yield* proxy.inject({ _tag: "Stall", duration: stall }).pipe(Effect.forkChild)
      const upload = yield* open(`${proxy.url}/o`, { method: "PUT" })
      yield* upload.write("first ")
      // The first chunk goes through before the stall starts.
      yield* until(target.seen, (event) => event._tag === "Chunk")
      const written = yield* Clock.currentTimeMillis
      yield* upload.end("second")
      const response = yield* upload.response
      const waited = (yield* Clock.currentTimeMillis) - written
      assert.strictEqual(response.status, 201)
      assert.deepStrictEqual(JSON.parse(response.body), { got: "first second" })
      // The end of the body was written at once, and only reached the upstream after the stall.
      assert.isAtLeast(waited, Duration.toMillis(stall) - 50)
    })
  )

  it.live("stalls longer than the client's timeout: the client gives up, the upstream never gets the whole body", () =>
    Effect.gen(function* () {
      const target = yield* upstream
      const proxy = yield* HttpFaultProxy.make({ target: target.url })
      yield* proxy.inject({ _tag: "Stall", duration: Duration.minutes(5) }).pipe(Effect.forkChild)
      const upload = yield* open(`${proxy.url}/o`, { method: "PUT", timeout: Duration.millis(300) })
      yield* upload.write("first ")
      yield* upload.write("second")
      const error = yield* upload.response.pipe(Effect.flip)
      assert.strictEqual(error.code, "TIMEOUT")
      const first = yield* until(target.seen, () => true)
      assert.deepStrictEqual(first, { _tag: "Chunk", path: "/o", text: "first " })
      // Nothing else reached the upstream: it is still waiting for the rest of the body.
      assert.strictEqual(yield* Queue.size(target.seen), 0)
    })
  )
})

/** An echo server on 127.0.0.1 that counts the bytes it received; closed with the scope. */
const echo = Effect.gen(function* () {
  const received = { bytes: 0 }
  const sockets = new Set<Socket>()
  const server = yield* Effect.acquireRelease(
    Effect.callback<ReturnType<typeof createTcpServer>>((resume) => {
      const server = createTcpServer((socket) => {
        sockets.add(socket)
        socket.on("close", () => sockets.delete(socket))
        socket.on("error", () => socket.destroy())
        socket.on("data", (chunk) => {
          received.bytes += chunk.length
          socket.write(chunk)
        })
      })
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) =>
      Effect.callback<void>((resume) => {
        server.close(() => resume(Effect.void))
        for (const socket of sockets) socket.destroy()
      })
  )
  return { port: (server.address() as AddressInfo).port, received: Effect.sync(() => received.bytes) }
})

/** A client connection that queues every chunk it reads; closed with the scope. */
const dial = (port: number) =>
  Effect.gen(function* () {
    const incoming = yield* Queue.unbounded<string>()
    const socket = yield* Effect.acquireRelease(
      Effect.callback<Socket>((resume) => {
        const socket = connect(port, "127.0.0.1", () => resume(Effect.succeed(socket)))
        socket.on("data", (chunk) => Queue.offerUnsafe(incoming, chunk.toString()))
        socket.on("error", () => socket.destroy())
      }),
      (socket) => Effect.sync(() => socket.destroy())
    )
    const roundTrip = (text: string) =>
      Effect.sync(() => socket.write(text)).pipe(
        Effect.andThen(Queue.take(incoming)),
        Effect.timeoutOrElse({ duration: "10 seconds", orElse: () => Effect.die(new Error("no echo")) })
      )
    return { socket, incoming, roundTrip }
  })

describe("TcpFaultProxy", () => {
  it.live("freezes established connections without closing them, while new ones work", () =>
    Effect.gen(function* () {
      const server = yield* echo
      const proxy = yield* TcpFaultProxy.make({ host: "127.0.0.1", port: server.port })
      const old = yield* dial(proxy.port)
      assert.strictEqual(yield* old.roundTrip("ping"), "ping")
      assert.strictEqual(yield* proxy.freeze, 1)
      assert.strictEqual(yield* proxy.live, 0)
      yield* Effect.sync(() => old.socket.write("lost"))
      // A connection made after the freeze works, and its echo comes back after the frozen write went out.
      const fresh = yield* dial(proxy.port)
      assert.strictEqual(yield* fresh.roundTrip("pong"), "pong")
      assert.strictEqual(yield* proxy.accepted, 2)
      assert.strictEqual(yield* proxy.live, 1)
      // The frozen one got nothing back, the server never saw its write, and it is still open.
      assert.strictEqual(yield* Queue.size(old.incoming), 0)
      assert.strictEqual(yield* server.received, "ping".length + "pong".length)
      assert.isFalse(old.socket.destroyed)
      assert.isFalse(old.socket.readableEnded)
    })
  )
})
