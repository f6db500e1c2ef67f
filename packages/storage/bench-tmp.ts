import { Effect } from "effect"
import { GcsObjectStore, ObjectStore } from "@db-backup-operator/storage"
const chunk = new Uint8Array(64 * 1024).map((_, i) => i % 251)
const total = 100 * 1024 * 1024
const program = Effect.gen(function* () {
  const store = yield* ObjectStore
  for (const name of ["a", "b", "c"]) {
    const t0 = performance.now()
    yield* Effect.scoped(Effect.gen(function* () {
      const up = yield* store.upload("exp", `bench/${name}`, { contentType: "application/octet-stream" })
      for (let n = 0; n < total; n += chunk.length) yield* up.write(chunk.slice())
      yield* up.commit
    }))
    const s = (performance.now() - t0) / 1000
    console.log(name, s.toFixed(2), "s", (total / 1e6 / s).toFixed(1), "MB/s")
  }
})
await Effect.runPromise(program.pipe(Effect.provide(GcsObjectStore.layer({ apiEndpoint: "http://127.0.0.1:48443" }))))
