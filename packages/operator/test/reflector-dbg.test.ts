import { createServer, connect } from "node:net"
import { it } from "@effect/vitest"
import { ConfigMap, Kube } from "@db-backup-operator/kube"
import { NodeHttpClient } from "@effect/platform-node"
import { Effect, Layer, Stream } from "effect"
import { HttpClient, HttpClientResponse } from "effect/http"
it.live("x", () => Effect.gen(function* () {
  let ids = 0
  const server = createServer((client) => {
    const id = ++ids
    const upstream = connect(36443, "127.0.0.1")
    client.pipe(upstream); upstream.pipe(client)
    console.log("open", id, Date.now() % 100000)
    client.on("close", () => console.log("close", id, Date.now() % 100000))
  })
  yield* Effect.promise(() => new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r())))
  const port = (server.address() as { port: number }).port
  const http = yield* Layer.build(NodeHttpClient.layerUndiciOptions({ connect: { rejectUnauthorized: false }, allowH2: false }))
  const kube = yield* Kube.make({ server: `https://127.0.0.1:${port}`, tls: { rejectUnauthorized: false }, headers: Effect.succeed({ authorization: "Bearer admintoken" }) }).pipe(Effect.provideContext(http))
  const client = yield* HttpClient.HttpClient.pipe(Effect.provideContext(http))
  console.log("kube watch, interrupted by timeout", Date.now() % 100000)
  yield* kube.watch(ConfigMap, { namespace: "default" }).pipe(Stream.timeout("1 second"), Stream.runDrain)
  yield* Effect.sleep("2 seconds")
  console.log("raw watch, interrupted by timeout", Date.now() % 100000)
  yield* HttpClientResponse.stream(client.get(`https://127.0.0.1:${port}/api/v1/namespaces/default/configmaps`, { headers: { authorization: "Bearer admintoken" }, urlParams: { watch: "true" } })).pipe(Stream.timeout("1 second"), Stream.runDrain)
  yield* Effect.sleep("2 seconds")
  console.log("end", Date.now() % 100000)
  server.close()
}), 60000)
