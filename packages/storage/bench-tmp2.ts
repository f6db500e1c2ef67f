import { Readable } from "node:stream"
import { pipeline } from "node:stream/promises"
import { Storage } from "@google-cloud/storage"

const storage = new Storage({ apiEndpoint: "http://127.0.0.1:48443" })
const total = 100 * 1024 * 1024
const run = async (name: string, size: number, opts: object) => {
  const chunk = Buffer.alloc(size, 7)
  const src = Readable.from(
    (function* () {
      for (let n = 0; n < total; n += chunk.length) yield chunk
    })()
  )
  const t0 = performance.now()
  await pipeline(
    src,
    storage
      .bucket("exp")
      .file(`raw/${name}`)
      .createWriteStream({ resumable: true, ...opts })
  )
  const s = (performance.now() - t0) / 1000
  console.log(name, size / 1024 + "K", s.toFixed(2), "s", (total / 1e6 / s).toFixed(1), "MB/s")
}
for (let i = 0; i < 2; i++) {
  for (const size of [64 * 1024, 1024 * 1024]) {
    await run("md5", size, { validation: "md5" })
    await run("none", size, { validation: false })
  }
}
