import { createServer } from "node:net"
import { NodeHttpClient } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Metric, Option, Ref } from "effect"
import { HttpClient } from "effect/http"
import { HttpEndpoints } from "../src/http/index.ts"

const loopback = { host: "127.0.0.1", port: 0 } as const

const fetchText = (url: string) =>
  Effect.gen(function* () {
    const client = yield* HttpClient.HttpClient
    const response = yield* client.get(url)
    return { status: response.status, body: yield* response.text, contentType: response.headers["content-type"] }
  })

const urls = Effect.gen(function* () {
  const endpoints = yield* HttpEndpoints
  return { metrics: Option.getOrElse(endpoints.metricsUrl, () => ""), health: Option.getOrThrow(endpoints.healthUrl) }
})

/** A port that was free a moment ago (for the shared-port case, which needs a fixed one). */
const freePort = Effect.callback<number>((resume) => {
  const server = createServer()
  server.listen({ host: "127.0.0.1", port: 0 }, () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

describe("HttpEndpoints", () => {
  it.live("serves /healthz, /readyz that follows its checks, and Prometheus /metrics", () =>
    Effect.gen(function* () {
      const synced = yield* Ref.make(false)
      const requests = Metric.counter("http_endpoints_test_total", { description: "a metric for the test" })
      yield* Metric.update(requests, 3)
      const program = Effect.gen(function* () {
        const { metrics, health } = yield* urls
        assert.notStrictEqual(metrics, health)

        const healthz = yield* fetchText(`${health}/healthz`)
        assert.strictEqual(healthz.status, 200)
        assert.strictEqual(healthz.body, "ok\n")

        const notReady = yield* fetchText(`${health}/readyz`)
        assert.strictEqual(notReady.status, 503)
        assert.include(notReady.body, "[-]caches failed: not ready")
        assert.include(notReady.body, "[+]leader ok")

        yield* Ref.set(synced, true)
        const ready = yield* fetchText(`${health}/readyz`)
        assert.strictEqual(ready.status, 200)
        assert.include(ready.body, "readyz check passed")

        const scrape = yield* fetchText(`${metrics}/metrics`)
        assert.strictEqual(scrape.status, 200)
        assert.include(scrape.contentType ?? "", "text/plain; version=0.0.4")
        assert.include(scrape.body, "# TYPE http_endpoints_test_total counter")
        assert.match(scrape.body, /^http_endpoints_test_total 3$/mu)

        // Probes and metrics are on separate servers, as in controller-runtime.
        assert.strictEqual((yield* fetchText(`${metrics}/healthz`)).status, 404)
        assert.strictEqual((yield* fetchText(`${health}/metrics`)).status, 404)
      })
      yield* program.pipe(
        Effect.provide(
          Layer.mergeAll(
            HttpEndpoints.layer({
              metrics: loopback,
              health: loopback,
              readiness: { caches: Ref.get(synced), leader: Effect.succeed(true) }
            }),
            NodeHttpClient.layerUndici
          )
        )
      )
    })
  )

  it.live("a single readiness effect; failing, dying and slow checks are not ready", () =>
    Effect.gen(function* () {
      const ready = yield* Ref.make(true)
      const program = Effect.gen(function* () {
        const { health } = yield* urls
        assert.strictEqual((yield* fetchText(`${health}/readyz`)).status, 200)
        yield* Ref.set(ready, false)
        const body = (yield* fetchText(`${health}/readyz`)).body
        assert.include(body, "[-]ready failed: not ready")
      })
      yield* program.pipe(
        Effect.provide(
          Layer.mergeAll(
            HttpEndpoints.layer({ metrics: false, health: loopback, readiness: Ref.get(ready) }),
            NodeHttpClient.layerUndici
          )
        )
      )
      const checks = Effect.gen(function* () {
        const { health } = yield* urls
        const response = yield* fetchText(`${health}/readyz`)
        assert.strictEqual(response.status, 503)
        assert.include(response.body, "[-]dies failed: check failed")
        assert.include(response.body, "[-]slow failed: timed out")
        assert.include(response.body, "readyz check failed")
      })
      yield* checks.pipe(
        Effect.provide(
          Layer.mergeAll(
            HttpEndpoints.layer({
              metrics: false,
              health: loopback,
              checkTimeout: "50 millis",
              readiness: { dies: Effect.die("boom"), slow: Effect.as(Effect.sleep("1 second"), true) }
            }),
            NodeHttpClient.layerUndici
          )
        )
      )
    })
  )

  it.live("one server answers everything when metrics and health share a port", () =>
    Effect.gen(function* () {
      const port = yield* freePort
      const address = { host: "127.0.0.1", port }
      const program = Effect.gen(function* () {
        const { metrics, health } = yield* urls
        assert.strictEqual(metrics, health)
        assert.strictEqual((yield* fetchText(`${health}/healthz`)).status, 200)
        assert.strictEqual((yield* fetchText(`${health}/readyz`)).status, 200)
        assert.strictEqual((yield* fetchText(`${health}/metrics`)).status, 200)
      })
      yield* program.pipe(
        Effect.provide(
          Layer.mergeAll(
            HttpEndpoints.layer({ metrics: address, health: address, readiness: Effect.succeed(true) }),
            NodeHttpClient.layerUndici
          )
        )
      )
    })
  )

  it.live("a taken port fails the layer with a ServeError naming the address", () =>
    Effect.gen(function* () {
      const taken = yield* Effect.acquireRelease(
        Effect.callback<ReturnType<typeof createServer>>((resume) => {
          const server = createServer()
          server.listen({ host: "127.0.0.1", port: 0 }, () => resume(Effect.succeed(server)))
        }),
        (server) =>
          Effect.callback<void>((resume) => {
            server.close(() => resume(Effect.void))
          })
      )
      const address = taken.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      const error = yield* Effect.flip(
        Layer.build(
          HttpEndpoints.layer({ metrics: false, health: { host: "127.0.0.1", port }, readiness: Effect.succeed(true) })
        )
      )
      assert.strictEqual(error._tag, "ServeError")
      assert.include(error.message, `127.0.0.1:${port}`)
      assert.include(error.message, "EADDRINUSE")
    }).pipe(Effect.scoped)
  )
})
