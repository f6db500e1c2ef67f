import {
  AccountSASPermissions,
  AccountSASResourceTypes,
  AccountSASServices,
  BlobServiceClient,
  generateAccountSASQueryParameters,
  StorageSharedKeyCredential
} from "@azure/storage-blob"
import { AzureBlobObjectStore } from "@db-backup-operator/storage"
import { Azurite } from "@db-backup-operator/testing"
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Redacted, Stream } from "effect"

// What the shared conformance suite (AzureBlobObjectStore.conformance.integration.test.ts)
// does not cover: Azure's own rules (metadata names, block blobs, SAS tokens) against Azurite.

const MiB = 1024 * 1024
const encoder = new TextEncoder()
const decoder = new TextDecoder()
const megabyte = (seed: number) => Uint8Array.from({ length: MiB }, (_, i) => (i * 31 + seed) % 251)

const setup = Effect.gen(function* () {
  const azurite = yield* Azurite
  const key = new StorageSharedKeyCredential(azurite.accountName, azurite.accountKey)
  // The SDK directly, to see what is stored and to break things behind the store's back.
  const service = new BlobServiceClient(azurite.endpoint, key, { retryOptions: { maxTries: 1 } })
  const storeWith = (extra: Partial<AzureBlobObjectStore.AzureBlobOptions> = {}) =>
    AzureBlobObjectStore.make({
      accountName: azurite.accountName,
      endpoint: azurite.endpoint,
      credentials: { accountKey: Redacted.make(azurite.accountKey) },
      ...extra
    })
  return { azurite, key, service, storeWith }
})

let containers = 0
const freshContainer = Effect.gen(function* () {
  const name = `azure-store-${++containers}`
  yield* (yield* Azurite).createContainer(name)
  return name
})

describe("AzureBlobObjectStore", () => {
  layer(Azurite.layer, { timeout: "120 seconds", excludeTestServices: true })((it) => {
    it.effect("commits an upload as a block blob of blockSizeBytes blocks; metadata names and values round-trip", () =>
      Effect.gen(function* () {
        const { service, storeWith } = yield* setup
        const store = storeWith({ blockSizeBytes: 2 * MiB, concurrency: 2 })
        const container = yield* freshContainer
        // As the runner names them, plus what Azure would refuse as is.
        const metadata = {
          "backup-resource": "team-a/orders",
          "backup-schema": "billing ✓",
          Owner: " spaced ",
          "1st": "=?utf-8?b?aGk=?="
        }
        const info = yield* Effect.scoped(
          Effect.gen(function* () {
            const upload = yield* store.upload(container, "dumps/a.sql.gz", {
              contentType: "application/gzip",
              metadata
            })
            for (let i = 0; i < 7; i++) yield* upload.write(megabyte(i))
            yield* upload.write(encoder.encode("tail"))
            return yield* upload.commit
          })
        )
        expect(info).toMatchObject({ size: 7 * MiB + 4, contentType: "application/gzip", metadata })
        // 7 MiB + 4 bytes in blocks of at least 2 MiB: staged in parts, not buffered whole.
        const blob = service.getContainerClient(container).getBlockBlobClient("dumps/a.sql.gz")
        const blocks = yield* Effect.promise(() => blob.getBlockList("committed"))
        expect(blocks.committedBlocks?.length).toBe(4)
        // Stored under Azure-valid names, readable by other tools.
        const raw = yield* Effect.promise(() => blob.getProperties())
        expect(raw.metadata?.backup_2dresource).toBe("team-a/orders")

        expect(yield* store.stat(container, "dumps/a.sql.gz")).toMatchObject({ size: 7 * MiB + 4, metadata })
        const listed = yield* store.list(container, { prefix: "dumps/" })
        expect(listed).toHaveLength(1)
        expect(listed[0]).toMatchObject({ object: "dumps/a.sql.gz", size: 7 * MiB + 4, metadata })
        yield* store.writeSmall(container, "dumps/a.json", { ok: true }, { metadata })
        expect((yield* store.stat(container, "dumps/a.json")).metadata).toEqual(metadata)
      })
    )

    it.effect("an empty upload commits an empty blob", () =>
      Effect.gen(function* () {
        const { storeWith } = yield* setup
        const store = storeWith()
        const container = yield* freshContainer
        const info = yield* Effect.scoped(
          Effect.flatMap(
            store.upload(container, "empty.bin", { contentType: "application/octet-stream" }),
            (u) => u.commit
          )
        )
        expect(info.size).toBe(0)
        expect(yield* store.stat(container, "empty.bin")).toMatchObject({ size: 0 })
        expect(yield* store.read(container, "empty.bin")).toEqual(new Uint8Array())
      })
    )

    it.effect("an aborted upload, or one whose Scope closed on a failure, leaves the previous blob untouched", () =>
      Effect.gen(function* () {
        const { storeWith } = yield* setup
        const store = storeWith({ blockSizeBytes: MiB })
        const container = yield* freshContainer
        const object = "backups/latest.sql.gz"
        yield* store.writeSmall(container, object, "previous", { metadata: { "backup-resource": "v1" } })
        const before = yield* store.stat(container, object)

        yield* Effect.scoped(
          Effect.gen(function* () {
            const upload = yield* store.upload(container, object, {
              contentType: "application/gzip",
              metadata: { "backup-resource": "v2" }
            })
            for (let i = 0; i < 5; i++) yield* upload.write(megabyte(i))
            yield* upload.abort("test")
          })
        )
        const failed = yield* Effect.exit(
          Effect.scoped(
            Effect.gen(function* () {
              const upload = yield* store.upload(container, object, { contentType: "application/gzip" })
              yield* Stream.range(0, 4).pipe(
                Stream.map(megabyte),
                Stream.concat(Stream.fail("pg_dump failed" as const)),
                Stream.run(upload.sink)
              )
              return yield* upload.commit
            })
          )
        )
        expect(failed._tag).toBe("Failure")

        expect(decoder.decode(yield* store.read(container, object))).toBe("previous")
        expect(yield* store.stat(container, object)).toEqual(before)
        expect((yield* store.list(container)).map((o) => o.object)).toEqual([object])
      })
    )

    it.effect("a failure of the store mid-upload fails the next writes promptly, and the commit", () =>
      Effect.gen(function* () {
        const { service, storeWith } = yield* setup
        const store = storeWith({ blockSizeBytes: MiB, concurrency: 2 })
        const container = yield* freshContainer
        yield* Effect.scoped(
          Effect.gen(function* () {
            const upload = yield* store.upload(container, "doomed.bin", { contentType: "application/octet-stream" })
            for (let i = 0; i < 4; i++) yield* upload.write(megabyte(i))
            // The container goes away under the upload: every later block is refused.
            yield* Effect.promise(() => service.getContainerClient(container).delete())
            let accepted = 0
            const error = yield* Effect.gen(function* () {
              for (;;) {
                yield* upload.write(megabyte(accepted))
                accepted++
                if (accepted > 50) return yield* Effect.die("50 MiB accepted after the store failed")
              }
            }).pipe(Effect.flip)
            // At most the blocks in flight, the one being gathered and the one that failed.
            expect(accepted).toBeLessThanOrEqual(4)
            expect(error).toMatchObject({ _tag: "StorageError", operation: "upload", reason: "BucketNotFound" })
            expect(error.message).toContain("azblob://")
            expect((yield* Effect.flip(upload.commit))._tag).toBe("StorageError")
          })
        )
      })
    )

    it.effect("authenticates with a SAS token, whose signature no error message shows", () =>
      Effect.gen(function* () {
        const { azurite, key, storeWith } = yield* setup
        const container = yield* freshContainer
        const sas = (permissions: string) =>
          generateAccountSASQueryParameters(
            {
              permissions: AccountSASPermissions.parse(permissions),
              services: AccountSASServices.parse("b").toString(),
              resourceTypes: AccountSASResourceTypes.parse("co").toString(),
              expiresOn: new Date(Date.now() + 3600_000)
            },
            key
          ).toString()
        const writer = storeWith({ credentials: { sasToken: `?${sas("rwdlc")}` } })
        yield* writer.writeSmall(container, "sas/a.txt", "via sas")
        expect(decoder.decode(yield* writer.read(container, "sas/a.txt"))).toBe("via sas")
        expect((yield* writer.list(container)).map((o) => o.object)).toEqual(["sas/a.txt"])

        const reader = storeWith({ credentials: { sasToken: Redacted.make(sas("rl")) } })
        expect(decoder.decode(yield* reader.read(container, "sas/a.txt"))).toBe("via sas")
        const refused = yield* Effect.flip(reader.writeSmall(container, "sas/b.txt", "no"))
        expect(refused).toMatchObject({ _tag: "StorageError", reason: "AccessDenied", status: 403 })
        expect(refused.message).not.toContain("sig=")
        expect(refused.message).not.toContain(azurite.accountKey)
      })
    )
  })
})
