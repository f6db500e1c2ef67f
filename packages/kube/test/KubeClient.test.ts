import { createServer } from "node:http"
import { NodeHttpServer } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Ref, Stream } from "effect"
import { HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "effect/http"
import { ConfigMap, KubeClient, type KubeClientShape } from "../src/index.ts"
import { UndiciTransport } from "../src/undici.ts"

// A scripted HTTP server standing in for the API server where a real one cannot be made
// to misbehave on demand (429s, 5xx, malformed objects). The real API server is used in
// KubeClient.integration.test.ts.
const status = (code: number, reason: string, message: string, extra: object = {}) =>
  HttpServerResponse.jsonUnsafe(
    { kind: "Status", status: "Failure", code, reason, message, ...extra },
    { status: code }
  )

const configMap = (name: string, data: Record<string, string> = {}) => ({
  apiVersion: "v1",
  kind: "ConfigMap",
  metadata: { name, namespace: "ns", resourceVersion: "5" },
  data
})

const withClient = <A, E>(
  routes: Layer.Layer<never, never, HttpRouter.HttpRouter>,
  body: (client: KubeClientShape) => Effect.Effect<A, E>
) =>
  Effect.gen(function* () {
    const server = yield* HttpServer.HttpServer
    const client = yield* KubeClient.make(
      {
        server: `http://${HttpServer.formatAddress(server.address).replace(/^http:\/\//u, "")}`,
        tls: {},
        headers: Effect.succeed({})
      },
      { retries: 3 }
    )
    return yield* body(client)
  }).pipe(
    Effect.provide(
      Layer.mergeAll(
        HttpRouter.serve(routes, { disableLogger: true, disableListenLog: true }).pipe(
          Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" }))
        ),
        UndiciTransport.layer({})
      )
    )
  )

describe("KubeClient", () => {
  it.live("maps API Status errors to typed errors naming the request", () =>
    Effect.gen(function* () {
      const routes = Layer.mergeAll(
        HttpRouter.add(
          "GET",
          "/api/v1/namespaces/ns/configmaps/missing",
          status(404, "NotFound", 'configmaps "missing" not found')
        ),
        HttpRouter.add(
          "POST",
          "/api/v1/namespaces/ns/configmaps",
          status(422, "Invalid", "ConfigMap is invalid", {
            details: { causes: [{ reason: "FieldValueRequired", message: "Required value", field: "metadata.name" }] }
          })
        ),
        HttpRouter.add(
          "PATCH",
          "/api/v1/namespaces/ns/configmaps/taken",
          status(409, "Conflict", "the object has been modified")
        )
      )
      yield* withClient(routes, (client) =>
        Effect.gen(function* () {
          const notFound = yield* client.get(ConfigMap, "missing", { namespace: "ns" }).pipe(Effect.flip)
          assert.strictEqual(notFound._tag, "NotFound")
          assert.strictEqual(
            "request" in notFound ? notFound.request : "",
            "GET /api/v1/namespaces/ns/configmaps/missing"
          )
          assert.include(notFound.message, "not found")

          const invalid = yield* client.create(ConfigMap, { metadata: { namespace: "ns" } }).pipe(Effect.flip)
          assert.strictEqual(invalid._tag, "Invalid")
          if (invalid._tag === "Invalid") assert.strictEqual(invalid.causes[0]?.field, "metadata.name")

          const conflict = yield* client.mergePatch(ConfigMap, "taken", {}, { namespace: "ns" }).pipe(Effect.flip)
          assert.strictEqual(conflict._tag, "Conflict")
        })
      )
    })
  )

  it.live("retries 429 honouring Retry-After and 5xx with backoff", () =>
    Effect.gen(function* () {
      const calls = yield* Ref.make(0)
      const routes = HttpRouter.add(
        "GET",
        "/api/v1/namespaces/ns/configmaps/flaky",
        Effect.gen(function* () {
          const n = yield* Ref.updateAndGet(calls, (c) => c + 1)
          if (n === 1) return HttpServerResponse.text("slow down", { status: 429, headers: { "retry-after": "1" } })
          if (n === 2) return status(503, "ServiceUnavailable", "etcd is restarting")
          return HttpServerResponse.jsonUnsafe(configMap("flaky", { a: "1" }))
        })
      )
      const started = Date.now()
      const result = yield* withClient(routes, (client) => client.get(ConfigMap, "flaky", { namespace: "ns" }))
      assert.deepStrictEqual(result.data, { a: "1" })
      assert.strictEqual(yield* Ref.get(calls), 3)
      assert.isAtLeast(Date.now() - started, 900, "the 1 s Retry-After was honoured")
    })
  )

  it.live("gives up on a persistent 5xx with a Transient error after the configured retries", () =>
    Effect.gen(function* () {
      const calls = yield* Ref.make(0)
      const routes = HttpRouter.add(
        "GET",
        "/api/v1/namespaces/ns/configmaps/down",
        Effect.as(
          Ref.update(calls, (c) => c + 1),
          status(500, "InternalError", "boom")
        )
      )
      const error = yield* withClient(routes, (client) =>
        client.get(ConfigMap, "down", { namespace: "ns" }).pipe(Effect.flip)
      )
      assert.strictEqual(error._tag, "Transient")
      assert.include(error.message, "boom")
      // `retries: 3` (withClient): the first attempt plus three retries, then the error surfaces.
      assert.strictEqual(yield* Ref.get(calls), 4)
    })
  )

  it.live("follows list pages and reports malformed objects by name and field", () =>
    Effect.gen(function* () {
      const routes = HttpRouter.add(
        "GET",
        "/api/v1/configmaps",
        Effect.gen(function* () {
          const request = yield* HttpServerRequest.HttpServerRequest
          const url = new URL(request.url, "http://x")
          if (url.searchParams.get("continue") === "page2") {
            return HttpServerResponse.jsonUnsafe({
              metadata: { resourceVersion: "42" },
              items: [configMap("c"), { metadata: { name: "bad", namespace: "ns" }, data: { n: 7 } }]
            })
          }
          return HttpServerResponse.jsonUnsafe({
            metadata: { resourceVersion: "41", continue: "page2" },
            items: [configMap("a"), configMap("b")]
          })
        })
      )
      const result = yield* withClient(routes, (client) => client.list(ConfigMap, { limit: 2 }))
      assert.deepStrictEqual(
        result.items.map((item) => item.metadata.name),
        ["a", "b", "c"]
      )
      assert.strictEqual(result.resourceVersion, "42")
      assert.strictEqual(result.malformed.length, 1)
      assert.include(result.malformed[0]?.message, "ns/bad")
      assert.include(result.malformed[0]?.message, "data")
    })
  )

  it.live("decodes watch events, bookmarks and malformed objects; ERROR 410 fails with Gone", () =>
    Effect.gen(function* () {
      const lines = [
        { type: "ADDED", object: configMap("a") },
        { type: "BOOKMARK", object: { kind: "ConfigMap", metadata: { resourceVersion: "77" } } },
        { type: "MODIFIED", object: { metadata: { name: "x", namespace: "ns", resourceVersion: "78" }, data: [] } },
        { type: "ERROR", object: { kind: "Status", code: 410, reason: "Expired", message: "too old resource version" } }
      ]
      const routes = HttpRouter.add(
        "GET",
        "/api/v1/namespaces/ns/configmaps",
        HttpServerResponse.text(lines.map((line) => JSON.stringify(line)).join("\n"))
      )
      const events: Array<string> = []
      const error = yield* withClient(routes, (client) =>
        client.watch(ConfigMap, { namespace: "ns", resourceVersion: "1" }).pipe(
          Stream.runForEach((event) =>
            Effect.sync(() => {
              if (event.type === "BOOKMARK") events.push(`BOOKMARK ${event.resourceVersion}`)
              else if (event.type === "MALFORMED") events.push(`MALFORMED ${event.resourceVersion}`)
              else events.push(`${event.type} ${event.object.metadata.name}`)
            })
          ),
          Effect.flip
        )
      )
      assert.deepStrictEqual(events, ["ADDED a", "BOOKMARK 77", "MALFORMED 78"])
      assert.strictEqual(error._tag, "Gone")
    })
  )
})
