import { GetObjectCommand, ListBucketsCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3"
import { S3Server } from "@db-backup-operator/testing"
import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"

const clientFor = (s3: S3Server["Service"], secretAccessKey = s3.secretAccessKey) =>
  Effect.acquireRelease(
    Effect.sync(
      () =>
        new S3Client({
          endpoint: s3.endpoint,
          region: s3.region,
          forcePathStyle: true,
          credentials: { accessKeyId: s3.accessKeyId, secretAccessKey },
          maxAttempts: 1
        })
    ),
    (client) => Effect.sync(() => client.destroy())
  )

layer(S3Server.layerWith({ buckets: ["preloaded"] }), { timeout: "15 minutes", excludeTestServices: true })(
  "S3Server",
  (it) => {
    describe("versitygw", () => {
      it.effect("serves S3 on 127.0.0.1 with the buckets asked for, and creates more", () =>
        Effect.gen(function* () {
          const s3 = yield* S3Server
          assert.match(s3.endpoint, /^http:\/\/127\.0\.0\.1:\d+$/u)
          assert.strictEqual(s3.region, "us-east-1")
          yield* s3.createBucket("backups")
          const client = yield* clientFor(s3)
          yield* Effect.promise(() =>
            client.send(new PutObjectCommand({ Bucket: "backups", Key: "a/b.txt", Body: "hello" }))
          )
          const got = yield* Effect.promise(() =>
            client.send(new GetObjectCommand({ Bucket: "backups", Key: "a/b.txt" }))
          )
          assert.strictEqual(yield* Effect.promise(() => got.Body?.transformToString() ?? Promise.resolve("")), "hello")
          const listed = yield* Effect.promise(() => client.send(new ListBucketsCommand({})))
          assert.deepStrictEqual(listed.Buckets?.map((b) => b.Name).sort(), ["backups", "preloaded"])
        })
      )

      it.effect("fails to create a bucket twice", () =>
        Effect.gen(function* () {
          const s3 = yield* S3Server
          yield* s3.createBucket("twice")
          const error = yield* s3.createBucket("twice").pipe(Effect.flip)
          assert.strictEqual(error._tag, "S3ServerError")
          assert.include(error.message, "twice")
        })
      )

      it.effect("refuses a wrong secret key", () =>
        Effect.gen(function* () {
          const s3 = yield* S3Server
          const client = yield* clientFor(s3, `${s3.secretAccessKey}x`)
          const error = yield* Effect.tryPromise(() => client.send(new ListBucketsCommand({}))).pipe(Effect.flip)
          const cause = error.cause as { readonly name?: string; readonly $metadata?: { httpStatusCode?: number } }
          assert.strictEqual(cause.name, "SignatureDoesNotMatch")
          assert.strictEqual(cause.$metadata?.httpStatusCode, 403)
        })
      )
    })
  }
)
