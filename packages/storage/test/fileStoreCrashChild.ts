/**
 * A process killed in the middle of a FileObjectStore upload (run by
 * FileObjectStore.test.ts): `node fileStoreCrashChild.ts <bucket> <object>`
 * writes 3 MiB, then SIGKILLs itself, so no finalizer runs.
 */
import { Effect } from "effect"
import * as FileObjectStore from "../src/FileObjectStore.ts"

const [bucket, object] = process.argv.slice(2)
if (bucket === undefined || object === undefined) throw new Error("usage: fileStoreCrashChild.ts <bucket> <object>")
const store = FileObjectStore.make()
await Effect.runPromise(
  Effect.scoped(
    Effect.gen(function* () {
      const upload = yield* store.upload(bucket, object, { contentType: "application/gzip" })
      for (let i = 0; i < 3; i++) yield* upload.write(new Uint8Array(1024 * 1024).fill(i + 1))
      process.kill(process.pid, "SIGKILL")
      return yield* Effect.never
    })
  )
)
