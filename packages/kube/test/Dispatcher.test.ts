import { spawn } from "node:child_process"
import { createServer, type ServerHttp2Session, type ServerHttp2Stream } from "node:http2"
import type { AddressInfo } from "node:net"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Schedule, Scope } from "effect"
import type { Dispatcher as Undici } from "undici"
import { Dispatcher } from "../src/undici.ts"

const releaseUnderLoad = fileURLToPath(new URL("fixtures/releaseUnderLoad.ts", import.meta.url))

interface H2Server {
  readonly origin: string
  /** Every request stream the server received. */
  readonly streams: ReadonlyArray<ServerHttp2Stream>
  /** Resolves once the server has received `count` request streams. */
  readonly received: (count: number) => Promise<void>
  readonly close: () => Promise<void>
}

/**
 * A real HTTP/2 server (cleartext h2c, so no certificates) that answers each request,
 * with a body as big as a Pod, `answerAfter` milliseconds after it was received (never
 * when undefined). A watch (`watch=true`) gets an event every 5 ms until it is reset.
 */
const startH2Server = (answerAfter: number | undefined): Promise<H2Server> =>
  new Promise((resolve) => {
    const streams: Array<ServerHttp2Stream> = []
    const waiting = new Set<{ readonly count: number; readonly resolve: () => void }>()
    const received = (count: number) =>
      new Promise<void>((resolve) => {
        if (streams.length >= count) resolve()
        else waiting.add({ count, resolve })
      })
    const sessions = new Set<ServerHttp2Session>()
    const server = createServer()
    server.on("session", (session) => sessions.add(session))
    server.on("stream", (stream, headers) => {
      streams.push(stream)
      for (const waiter of waiting) {
        if (streams.length >= waiter.count) {
          waiting.delete(waiter)
          waiter.resolve()
        }
      }
      stream.on("error", () => undefined)
      stream.resume()
      if (headers[":path"]?.includes("watch=true")) {
        stream.respond({ ":status": 200, "content-type": "application/json" })
        const object = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "w", resourceVersion: "1" } }
        const timer = setInterval(() => stream.write(`${JSON.stringify({ type: "MODIFIED", object })}\n`), 5)
        stream.on("close", () => clearInterval(timer))
        return
      }
      if (answerAfter === undefined) return
      stream.on("end", () =>
        setTimeout(() => {
          if (stream.destroyed || stream.closed) return
          stream.respond({ ":status": 200, "content-type": "application/json" })
          const object = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "c", namespace: "ns" } }
          stream.end(JSON.stringify({ ...object, data: { padding: "x".repeat(4000) } }))
        }, answerAfter)
      )
    })
    server.listen(0, "127.0.0.1", () =>
      resolve({
        origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        streams,
        received,
        // Whatever a client left open, the server does not wait for it.
        close: () =>
          new Promise((closed) => {
            server.close(() => closed())
            for (const session of sessions) session.destroy()
          })
      })
    )
  })

const h2Server = (answerAfter: number | undefined) =>
  Effect.acquireRelease(
    Effect.promise(() => startH2Server(answerAfter)),
    (server) => Effect.promise(server.close)
  )

// Top-level useH2c (not in undici's types, but read): undici 8.13 Pools ignore h2Options.useH2c.
const h2c = { allowH2: true, useH2c: true } as const

/** Collects uncaught exceptions until `stop()`, which waits a little first: the crash came a few ticks after the release. */
const collectUncaught = () => {
  const errors: Array<unknown> = []
  const listener = (error: unknown) => errors.push(error)
  process.on("uncaughtException", listener)
  return {
    stop: async () => {
      await new Promise((resolve) => setTimeout(resolve, 200))
      process.off("uncaughtException", listener)
      return errors
    }
  }
}

/**
 * Calls `onSent()` the moment undici has handed a request to HTTP/2 (`onRequestSent`,
 * right after `stream.end()`), before node has sent it. Composed on top of the pool, it
 * sees what a caller's signal would.
 */
const whenSent =
  (onSent: () => void): Undici.DispatcherComposeInterceptor =>
  (dispatch) =>
  (options, handler) =>
    dispatch(options, {
      onRequestStart: (controller, context) => handler.onRequestStart?.(controller, context),
      onRequestUpgrade: (controller, statusCode, headers, socket) =>
        handler.onRequestUpgrade?.(controller, statusCode, headers, socket),
      onResponseStarted: () => handler.onResponseStarted?.(),
      onResponseStart: (controller, statusCode, headers, statusMessage) =>
        handler.onResponseStart?.(controller, statusCode, headers, statusMessage),
      onResponseData: (controller, chunk) => handler.onResponseData?.(controller, chunk),
      onResponseEnd: (controller, trailers) => handler.onResponseEnd?.(controller, trailers),
      onResponseError: (controller, error) => handler.onResponseError?.(controller, error),
      onBodySent: (chunk) => handler.onBodySent?.(chunk),
      onRequestSent: () => {
        handler.onRequestSent?.()
        onSent()
      }
    })

const send = (dispatcher: Undici, origin: string, path: string, signal?: AbortSignal) =>
  dispatcher.request({
    origin,
    path,
    method: "PATCH",
    body: JSON.stringify({ metadata: { labels: { a: "b" } } }),
    headers: { "content-type": "application/merge-patch+json" },
    ...(signal === undefined ? {} : { signal })
  })

/** "answered", or the name of the error the request failed with. */
const settled = (promise: Promise<Undici.ResponseData>) =>
  promise.then(
    (response) => response.body.text().then(() => "answered"),
    (error: unknown) => (error instanceof Error ? error.name : String(error))
  )

describe("Dispatcher", () => {
  // Plain async, not an Effect: requests made from a later turn of the Effect scheduler
  // reach HTTP/2 at other moments, and the window below is not hit reliably from there.
  it("an abort just after a request is handed to HTTP/2 waits for the answer: releasing the pool raises nothing", async () => {
    const server = await startH2Server(50)
    const uncaught = collectUncaught()
    const scope = Effect.runSync(Scope.make())
    const controllers = Array.from({ length: 20 }, () => new AbortController())
    let results: ReadonlyArray<string> = []
    let errors: ReadonlyArray<unknown> = []
    try {
      const pool = Effect.runSync(Dispatcher.make(h2c).pipe(Scope.provide(scope)))
      let handedOver = 0
      // Once every request is handed to HTTP/2 and none is sent yet, abort them all. Without
      // the pool's holding back, this is where undici's abort leaves each stream without a
      // reset: the server answers, node makes an unwatched stream of each answer, and the
      // release below crashes the process 20 times with ClientDestroyedError.
      const dispatcher = pool.compose(
        whenSent(() => {
          if (++handedOver === controllers.length + 1) {
            process.nextTick(() => {
              for (const controller of controllers) controller.abort()
            })
          }
        })
      )
      // The session is up first, so each request is written as it is made.
      assert.strictEqual(await settled(send(dispatcher, server.origin, "/warm")), "answered")
      results = await Promise.all(
        controllers.map((controller, i) => settled(send(dispatcher, server.origin, `/patch/${i}`, controller.signal)))
      )
      // Released only once the server has had the requests and answered them (undici alone
      // fails the callers at once, before its unreset streams even reach the server).
      for (let waited = 0; server.streams.length < 21 && waited < 2000; waited += 10) {
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
      await new Promise((resolve) => setTimeout(resolve, 150))
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      errors = await uncaught.stop()
      await server.close()
    }
    assert.deepStrictEqual(errors, [])
    assert.deepStrictEqual(new Set(results), new Set(["AbortError"]), "every caller sees its abort")
    assert.strictEqual(server.streams.length, 21, "the aborted requests had been sent")
  })

  it.live("a request aborted before it reaches a connection is never sent", () =>
    Effect.gen(function* () {
      const { origin, streams } = yield* h2Server(10)
      const dispatcher = yield* Dispatcher.make(h2c)
      const controller = new AbortController()
      const outcome = settled(send(dispatcher, origin, "/never", controller.signal))
      controller.abort()
      assert.strictEqual(yield* Effect.promise(() => outcome), "AbortError")
      // Never sent, not merely not yet: watched for 100 ms, while a request written to the
      // session before the abort reaches this server over loopback within a millisecond or two.
      yield* Effect.sync(() => assert.strictEqual(streams.length, 0, "the aborted request reached the server")).pipe(
        Effect.repeat(Schedule.spaced("5 millis")),
        Effect.timeoutOption("100 millis")
      )
    })
  )

  it.live("a held abort is sent after the grace when no answer comes", () =>
    Effect.gen(function* () {
      const { origin, streams, received } = yield* h2Server(undefined)
      const dispatcher = yield* Dispatcher.make(h2c, { abortGrace: "100 millis" })
      const controller = new AbortController()
      const outcome = settled(send(dispatcher, origin, "/unanswered", controller.signal))
      // Aborted once the server has the request: the abort is held for an answer that never comes.
      yield* Effect.promise(() => received(1))
      controller.abort()
      const started = Date.now()
      assert.strictEqual(yield* Effect.promise(() => outcome), "AbortError")
      assert.isAtLeast(Date.now() - started, 40, "held back")
      assert.strictEqual(streams.length, 1)
      const stream = streams[0]
      // The reset reaches the server: its stream closes (bounded, so a missing reset fails here).
      yield* Effect.promise(
        () =>
          new Promise<void>((resolve) =>
            stream === undefined || stream.closed ? resolve() : stream.once("close", resolve)
          )
      ).pipe(Effect.timeout("2 seconds"))
      assert.isTrue(stream?.closed, "the server saw the stream reset")
    })
  )

  it.live("release destroys connections whose requests outlive the close timeout", () =>
    Effect.gen(function* () {
      const { origin, received } = yield* h2Server(undefined)
      const scope = yield* Scope.make()
      const dispatcher = yield* Dispatcher.make(h2c, { closeTimeout: "100 millis" }).pipe(Scope.provide(scope))
      const outcome = settled(send(dispatcher, origin, "/forever"))
      // Released while the request is in flight: the server has it and will never answer.
      yield* Effect.promise(() => received(1))
      const started = Date.now()
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(yield* Effect.promise(() => outcome).pipe(Effect.timeout("2 seconds")), "ClientDestroyedError")
      assert.isBelow(Date.now() - started, 1000)
    })
  )

  it.live(
    "a process whose KubeClient is released with a watch and writes in flight exits cleanly",
    () =>
      Effect.gen(function* () {
        const { origin } = yield* h2Server(20)
        // Its own process: without the pool's holding back, this one does not crash but spins
        // (undici and node at 100% CPU, the event loop never turning again), which would hang
        // the test worker itself.
        const { code, stdout, stderr } = yield* Effect.callback<{
          code: number | string
          stdout: string
          stderr: string
        }>((resume) => {
          const child = spawn(process.execPath, [releaseUnderLoad, origin], { stdio: ["ignore", "pipe", "pipe"] })
          let stdout = ""
          let stderr = ""
          child.stdout.on("data", (chunk: Buffer) => {
            stdout += chunk.toString()
          })
          child.stderr.on("data", (chunk: Buffer) => {
            stderr += chunk.toString()
          })
          const timer = setTimeout(() => child.kill("SIGKILL"), 30_000)
          child.on("close", (code, signal) => {
            clearTimeout(timer)
            resume(Effect.succeed({ code: code ?? signal ?? "unknown", stdout, stderr }))
          })
          return Effect.sync(() => child.kill("SIGKILL"))
        })
        assert.strictEqual(code, 0, `exit ${code}, stderr:\n${stderr}`)
        assert.strictEqual(stderr, "")
        assert.strictEqual(stdout.trim(), "released")
      }),
    40_000
  )
})
