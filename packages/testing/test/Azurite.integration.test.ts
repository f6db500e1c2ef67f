import { BlobServiceClient, StorageSharedKeyCredential } from "@azure/storage-blob"
import { Azurite } from "@db-backup-operator/testing"
import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"

const client = (endpoint: string, accountName: string, accountKey: string) =>
  new BlobServiceClient(endpoint, new StorageSharedKeyCredential(accountName, accountKey), {
    retryOptions: { maxTries: 1 }
  })

layer(Azurite.layerWith({ containers: ["preset"] }), { timeout: "60 seconds", excludeTestServices: true })(
  "Azurite",
  (it) => {
    describe("blob service", () => {
      it.effect("serves the development account on 127.0.0.1 and has the containers asked for", () =>
        Effect.gen(function* () {
          const azurite = yield* Azurite
          assert.match(azurite.endpoint, /^http:\/\/127\.0\.0\.1:\d+\/devstoreaccount1$/u)
          const service = client(azurite.endpoint, azurite.accountName, azurite.accountKey)
          assert.isTrue(yield* Effect.promise(() => service.getContainerClient("preset").exists()))
        })
      )

      it.effect("creates a container that stores a blob, once", () =>
        Effect.gen(function* () {
          const azurite = yield* Azurite
          yield* azurite.createContainer("backups")
          // The connection string reaches the same account.
          const service = BlobServiceClient.fromConnectionString(azurite.connectionString, {
            retryOptions: { maxTries: 1 }
          })
          const blob = service.getContainerClient("backups").getBlockBlobClient("a/b.txt")
          yield* Effect.promise(() => blob.upload("hello", 5))
          const body = yield* Effect.promise(() => blob.downloadToBuffer())
          assert.strictEqual(body.toString("utf8"), "hello")
          const again = yield* azurite.createContainer("backups").pipe(Effect.flip)
          assert.strictEqual(again._tag, "AzuriteError")
          assert.include(again.message, "backups")
        })
      )

      it.effect("refuses a wrong account key", () =>
        Effect.gen(function* () {
          const azurite = yield* Azurite
          const wrongKey = Buffer.from("not the account key").toString("base64")
          const service = client(azurite.endpoint, azurite.accountName, wrongKey)
          const error = yield* Effect.tryPromise(() => service.getContainerClient("preset").exists()).pipe(Effect.flip)
          const cause = error.cause as { readonly statusCode?: number; readonly code?: string }
          assert.strictEqual(cause.statusCode, 403)
          assert.strictEqual(cause.code, "AuthorizationFailure")
        })
      )
    })
  }
)
