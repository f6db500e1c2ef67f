import { createHash, randomBytes } from "node:crypto"
import { Readable } from "node:stream"
import { pipeline } from "node:stream/promises"
import { GcsEmulator } from "@db-backup-operator/testing"
import { assert, describe, layer } from "@effect/vitest"
import { Storage } from "@google-cloud/storage"
import { Effect } from "effect"

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex")

layer(GcsEmulator.layer, { timeout: "15 minutes", excludeTestServices: true })("GcsEmulator", (it) => {
  describe("fake-gcs-server", () => {
    it.effect("serves plain HTTP on 127.0.0.1", () =>
      Effect.gen(function* () {
        const gcs = yield* GcsEmulator
        assert.match(gcs.endpoint, /^http:\/\/127\.0\.0\.1:\d+$/u)
      })
    )

    it.effect(
      "takes a 20 MB resumable upload from @google-cloud/storage and returns it byte-identical",
      () =>
        Effect.gen(function* () {
          const gcs = yield* GcsEmulator
          yield* gcs.createBucket("backups")
          // apiEndpoint alone is enough: a non-Google endpoint makes the client skip authentication.
          const storage = new Storage({ apiEndpoint: gcs.endpoint, projectId: "test" })
          const data = randomBytes(20 * 1024 * 1024)
          const file = storage.bucket("backups").file("dumps/big.sql.gz")
          yield* Effect.promise(() =>
            pipeline(
              Readable.from([data.subarray(0, 7_000_000), data.subarray(7_000_000)]),
              file.createWriteStream({ resumable: true, contentType: "application/gzip" })
            )
          )
          const [metadata] = yield* Effect.promise(() => file.getMetadata())
          assert.strictEqual(Number(metadata.size), data.length)
          const [downloaded] = yield* Effect.promise(() => file.download())
          assert.strictEqual(downloaded.length, data.length)
          assert.strictEqual(sha256(downloaded), sha256(data))
          const [files] = yield* Effect.promise(() => storage.bucket("backups").getFiles({ prefix: "dumps/" }))
          assert.deepStrictEqual(
            files.map((f) => f.name),
            ["dumps/big.sql.gz"]
          )
        }),
      120_000
    )

    it.effect("fails to create a bucket twice", () =>
      Effect.gen(function* () {
        const gcs = yield* GcsEmulator
        yield* gcs.createBucket("twice")
        const error = yield* gcs.createBucket("twice").pipe(Effect.flip)
        assert.strictEqual(error._tag, "GcsEmulatorError")
      })
    )
  })
})
