import { createHash } from "node:crypto"
import { ListMultipartUploadsCommand, S3Client } from "@aws-sdk/client-s3"
import { type ObjectStore, S3ObjectStore } from "@db-backup-operator/storage"
import { eventually, S3Server } from "@db-backup-operator/testing"
import { describe, expect, layer } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Scope, Stream } from "effect"

// What the shared conformance suite (S3ObjectStore.conformance.integration.test.ts) does not
// reach: real multipart uploads (several parts), what S3 keeps of an aborted one, a server that
// goes away mid-upload, and S3's own ways of refusing an identity.

const MiB = 1024 * 1024
/** The smallest part S3 allows: 17 MiB make four parts, three of them full. */
const partSizeBytes = 5 * MiB

const storeOptions = (s3: S3Server["Service"]) => ({
  endpoint: s3.endpoint,
  region: s3.region,
  forcePathStyle: true,
  credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  partSizeBytes
})

/** A client of our own, to see what the store does not show: pending multipart uploads. */
const rawClient = (s3: S3Server["Service"]) =>
  Effect.acquireRelease(
    Effect.sync(
      () =>
        new S3Client({
          endpoint: s3.endpoint,
          region: s3.region,
          forcePathStyle: true,
          credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey }
        })
    ),
    (client) => Effect.sync(() => client.destroy())
  )

const pendingUploads = (client: S3Client, bucket: string) =>
  Effect.promise(() => client.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).pipe(
    Effect.map((listed) => (listed.Uploads ?? []).map((upload) => upload.Key))
  )

/** Block `i` of an upload: 1 MiB that differs from every other block. */
const block = (i: number): Uint8Array => {
  const bytes = Buffer.alloc(MiB, i % 251)
  bytes.writeUInt32BE(i, 0)
  return bytes
}

const sha256 = (chunks: Iterable<Uint8Array>) => {
  const hash = createHash("sha256")
  for (const chunk of chunks) hash.update(chunk)
  return hash.digest("hex")
}

let buckets = 0
const freshBucket = Effect.gen(function* () {
  const name = `s3-store-${++buckets}`
  yield* (yield* S3Server).createBucket(name)
  return name
})

const writeBlocks = (upload: { readonly write: (chunk: Uint8Array) => Effect.Effect<void, unknown> }, count: number) =>
  Effect.forEach(
    Array.from({ length: count }, (_, i) => i),
    (i) => upload.write(block(i)),
    { discard: true }
  )

describe("S3ObjectStore", () => {
  layer(S3Server.layer, { timeout: "120 seconds", excludeTestServices: true })((it) => {
    it.effect("sends a multipart upload of several parts that S3 completes only on commit", () =>
      Effect.gen(function* () {
        const s3 = yield* S3Server
        const store = S3ObjectStore.make(storeOptions(s3))
        const client = yield* rawClient(s3)
        const bucket = yield* freshBucket
        const object = "backups/multi.sql.gz"
        const info = yield* Effect.scoped(
          Effect.gen(function* () {
            const upload = yield* store.upload(bucket, object, {
              contentType: "application/gzip",
              metadata: { Database: "orders" }
            })
            yield* writeBlocks(upload, 17)
            // The parts are on the server, but no object yet.
            yield* eventually(
              "the pending multipart upload",
              pendingUploads(client, bucket).pipe(Effect.map((keys) => (keys.includes(object) ? keys : undefined)))
            )
            expect(yield* store.exists(bucket, object)).toBe(false)
            expect(yield* store.list(bucket)).toEqual([])
            return yield* upload.commit
          })
        )
        expect(info).toMatchObject({ bucket, object, size: 17 * MiB, metadata: { database: "orders" } })
        expect(yield* pendingUploads(client, bucket)).toEqual([])
        const stat = yield* store.stat(bucket, object)
        expect(stat).toMatchObject({
          size: 17 * MiB,
          contentType: "application/gzip",
          metadata: { database: "orders" }
        })
        expect(stat.updated).toMatch(/^\d{4}-\d\d-\d\dT/u)
        const read = yield* store.readStream(bucket, object).pipe(Stream.runCollect)
        expect(sha256(read)).toBe(sha256(Array.from({ length: 17 }, (_, i) => block(i))))
      })
    )

    it.effect("aborting a multipart upload leaves neither an object nor its parts", () =>
      Effect.gen(function* () {
        const s3 = yield* S3Server
        const store = S3ObjectStore.make(storeOptions(s3))
        const client = yield* rawClient(s3)
        const bucket = yield* freshBucket
        const started = (object: string) =>
          eventually(
            `the multipart upload of ${object}`,
            pendingUploads(client, bucket).pipe(Effect.map((keys) => (keys.includes(object) ? keys : undefined)))
          )

        // An explicit abort: once it returns, S3 has dropped the parts.
        yield* Effect.scoped(
          Effect.gen(function* () {
            const upload = yield* store.upload(bucket, "aborted.bin", { contentType: "application/octet-stream" })
            yield* writeBlocks(upload, 17)
            yield* started("aborted.bin")
            yield* upload.abort("test")
            expect(yield* pendingUploads(client, bucket)).toEqual([])
            const write = yield* Effect.flip(upload.write(block(0)))
            expect(write.message).toContain("upload aborted: test")
          })
        )

        // The Scope closes on a failure before commit.
        const exit = yield* Effect.exit(
          Effect.scoped(
            Effect.gen(function* () {
              const upload = yield* store.upload(bucket, "failed.bin", { contentType: "application/octet-stream" })
              yield* writeBlocks(upload, 17)
              yield* started("failed.bin")
              return yield* Effect.fail("the dump failed" as const)
            })
          )
        )
        expect(exit).toEqual(Exit.fail("the dump failed"))
        expect(yield* pendingUploads(client, bucket)).toEqual([])
        expect(yield* store.list(bucket)).toEqual([])
      })
    )

    it.effect("a server that goes away mid-upload fails the next writes promptly, and the commit", () =>
      Effect.gen(function* () {
        // A server of this test's own, stopped halfway through.
        const serverScope = yield* Scope.make()
        yield* Effect.addFinalizer(() => Scope.close(serverScope, Exit.void))
        // Fresh: not the file's shared server, which the layer memoizes.
        const doomed = Context.get(yield* Layer.buildWithScope(Layer.fresh(S3Server.layer), serverScope), S3Server)
        yield* doomed.createBucket("doomed")
        const store: ObjectStore["Service"] = S3ObjectStore.make({ ...storeOptions(doomed), maxAttempts: 2 })
        yield* Effect.scoped(
          Effect.gen(function* () {
            const upload = yield* store.upload("doomed", "backup.bin", { contentType: "application/octet-stream" })
            yield* writeBlocks(upload, 12)
            yield* Scope.close(serverScope, Exit.void)
            const started = Date.now()
            // Writes go on into the part being filled until a part's request fails.
            let written = 0
            const error = yield* Effect.flip(
              Effect.suspend(() => upload.write(block(written++))).pipe(Effect.forever, Effect.timeout("60 seconds"))
            )
            const seconds = (Date.now() - started) / 1000
            expect(error._tag).toBe("StorageError")
            if (error._tag === "StorageError") expect(error.reason).toBe("Unreachable")
            expect(seconds).toBeLessThan(20)
            // At most the part being filled and the parts in flight went in after the stop.
            expect(written).toBeLessThan(40)
            const commit = yield* Effect.flip(upload.commit)
            expect(commit.message).toContain("s3://doomed/backup.bin")
          })
        )
      })
    )

    it.effect("refused credentials are AccessDenied, also where S3 answers without a body", () =>
      Effect.gen(function* () {
        const s3 = yield* S3Server
        const bucket = yield* freshBucket
        yield* S3ObjectStore.make(storeOptions(s3)).writeSmall(bucket, "a.json", { ok: true })

        // A wrong secret: HEAD answers carry no error code, the 403 alone says it, and
        // `exists` must not turn it into "no such object".
        const wrongSecret = S3ObjectStore.make({
          ...storeOptions(s3),
          credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: `${s3.secretAccessKey}-wrong` }
        })
        for (const refused of [
          wrongSecret.exists(bucket, "a.json"),
          wrongSecret.stat(bucket, "a.json"),
          wrongSecret.read(bucket, "a.json"),
          wrongSecret.remove(bucket, "a.json")
        ]) {
          const error = yield* Effect.flip(refused)
          expect(error).toMatchObject({ _tag: "StorageError", reason: "AccessDenied", status: 403 })
          expect(error.message).toContain(`s3://${bucket}/a.json`)
          expect(error.message).not.toContain("UnknownError")
        }

        // An access key id the server does not know (versitygw answers 404 XAdminUserNotFound).
        const stranger = S3ObjectStore.make({
          ...storeOptions(s3),
          credentials: { accessKeyId: "AKNOBODY", secretAccessKey: s3.secretAccessKey }
        })
        for (const refused of [
          stranger.list(bucket),
          stranger.read(bucket, "a.json"),
          stranger.writeSmall(bucket, "b.json", {}),
          stranger.remove(bucket, "a.json")
        ]) {
          expect(yield* Effect.flip(refused)).toMatchObject({ _tag: "StorageError", reason: "AccessDenied" })
        }
        expect(yield* S3ObjectStore.make(storeOptions(s3)).exists(bucket, "a.json")).toBe(true)
      })
    )

    it.effect("an upload of no bytes stores an empty object", () =>
      Effect.gen(function* () {
        const s3 = yield* S3Server
        const store = S3ObjectStore.make(storeOptions(s3))
        const bucket = yield* freshBucket
        const info = yield* Effect.scoped(
          Effect.gen(function* () {
            const upload = yield* store.upload(bucket, "empty.sql", { contentType: "application/sql" })
            return yield* upload.commit
          })
        )
        expect(info).toMatchObject({ size: 0 })
        expect(yield* store.stat(bucket, "empty.sql")).toMatchObject({ size: 0, contentType: "application/sql" })
        expect(yield* store.read(bucket, "empty.sql")).toEqual(new Uint8Array())
      })
    )

    it.effect("a part size under S3's 5 MiB minimum fails the upload with a StorageError", () =>
      Effect.gen(function* () {
        const s3 = yield* S3Server
        const bucket = yield* freshBucket
        const store = S3ObjectStore.make({ ...storeOptions(s3), partSizeBytes: MiB })
        const error = yield* Effect.flip(
          Effect.scoped(store.upload(bucket, "small-parts.bin", { contentType: "application/octet-stream" }))
        )
        expect(error._tag).toBe("StorageError")
        expect(error.message).toContain("s3://")
      })
    )
  })
})
