import { Storage } from "@google-cloud/storage"
import { Effect } from "effect"
import { Readable } from "node:stream"
import { pipeline } from "node:stream/promises"
import { GcsObjectStore } from "@db-backup-operator/storage"
const storage = new Storage({ apiEndpoint: "http://127.0.0.1:48443" })
const total = 100 * 1024 * 1024
const small = Buffer.alloc(64 * 1024, 7)
const time = async (name: string, f: () => Promise<void>) => {
  const t0 = performance.now(); await f(); const s = (performance.now() - t0) / 1000
  console.log(name.padEnd(12), s.toFixed(2), "s", (total / 1e6 / s).toFixed(1), "MB/s")
}
const rawPipeline = () => pipeline(Readable.from((function* () { const big = Buffer.alloc(1 << 20, 7); for (let n = 0; n < total; n += big.length) yield big })()), storage.bucket("exp").file("raw/p").createWriteStream({ resumable: true, validation: "md5" }))
const manual = () => new Promise<void>((resolve, reject) => {
  const ws = storage.bucket("exp").file("raw/m").createWriteStream({ resumable: true, validation: "md5" })
  ws.on("error", reject); ws.on("finish", () => resolve())
  let n = 0
  const pump = () => { while (n < total) { const parts = []; for (let i = 0; i < 16; i++) parts.push(small.subarray()); n += 1 << 20; if (!ws.write(Buffer.concat(parts))) { ws.once("drain", pump); return } } ws.end() }
  pump()
})
const store = GcsObjectStore.make({ apiEndpoint: "http://127.0.0.1:48443" })
const viaEffect = () => Effect.runPromise(Effect.scoped(Effect.gen(function* () {
  const up = yield* store.upload("exp", "raw/e", { contentType: "application/octet-stream" })
  for (let n = 0; n < total; n += small.length) yield* up.write(small)
  yield* up.commit
})).pipe(Effect.orDie))
for (let i = 0; i < 3; i++) { await time("pipeline1M", rawPipeline); await time("manual1M", manual); await time("effect", viaEffect) }
