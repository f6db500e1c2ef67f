import { mkdir, mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { FileObjectStore } from "@db-backup-operator/storage"
import { Effect, Layer } from "effect"
import { Fixture, objectStoreConformance } from "./conformance.ts"

// The shared ObjectStore conformance suite on a real directory (what a mounted volume is).
const FileFixture = Layer.effect(
  Fixture,
  Effect.gen(function* () {
    const root = yield* Effect.acquireRelease(
      Effect.promise(() => mkdtemp(join(tmpdir(), "db-backup-operator-file-store-"))),
      (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
    )
    let buckets = 0
    return Fixture.of({
      store: FileObjectStore.make(),
      freshBucket: Effect.promise(async () => {
        const bucket = join(root, `bucket-${++buckets}`)
        await mkdir(bucket)
        return bucket
      }),
      missingBucket: join(root, "no-such-volume"),
      denied: undefined,
      unreachable: undefined,
      keepsMetadata: false,
      skipReasons: {
        denied:
          process.getuid?.() === 0
            ? "the tests run as root, which file permissions do not stop"
            : "a filesystem has no credentials to refuse",
        unreachable: "a filesystem has no address to be unreachable at"
      }
    })
  })
)

objectStoreConformance("FileObjectStore conformance", FileFixture)
