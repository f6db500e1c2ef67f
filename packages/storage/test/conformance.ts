/**
 * The behaviour every {@link ObjectStore} must share, as one suite that each
 * store's test file runs against its real server (fake-gcs-server, versitygw,
 * Azurite, a directory): what the runner and a user restoring a backup rely on,
 * whichever store holds the backups. Not a test file itself.
 *
 * ```ts
 * objectStoreConformance("S3ObjectStore", Layer.effect(Fixture, makeFixture))
 * ```
 */
import { createHash } from "node:crypto"
import type { ObjectInfo, ObjectNotFound, ObjectStore, StorageError } from "@db-backup-operator/storage"
import { expect, layer } from "@effect/vitest"
import { Context, Deferred, Effect, Exit, Fiber, type Layer, Stream } from "effect"
import type { TestContext } from "vitest"

/** What one store's conformance run needs. */
export interface ConformanceFixture {
  /** The store under test, configured as the runner would use it. */
  readonly store: ObjectStore["Service"]
  /** Creates a fresh, empty bucket (container, directory) and returns its name. */
  readonly freshBucket: Effect.Effect<string, unknown>
  /** A bucket name that does not exist in that store. */
  readonly missingBucket: string
  /** The same store with credentials the server refuses; undefined where the server checks none (fake-gcs-server; a filesystem as root). */
  readonly denied: ObjectStore["Service"] | undefined
  /** The same store at an address nobody listens on; undefined for a filesystem. */
  readonly unreachable: ObjectStore["Service"] | undefined
  /**
   * Whether the store keeps `contentType` and user metadata (default true).
   * A filesystem keeps bytes only.
   */
  readonly keepsMetadata?: boolean
  /**
   * Whether a streamed upload keeps its `contentType` (default: `keepsMetadata`).
   * Only for an emulator that loses it where the real store does not.
   */
  readonly uploadKeepsContentType?: boolean
  /**
   * Why `denied` / `unreachable` is undefined, shown as the skip note of the
   * tests that need it (default: a generic note).
   */
  readonly skipReasons?: { readonly denied?: string; readonly unreachable?: string }
  /**
   * Bytes of the large streaming upload for this store, when its server
   * cannot take `CONFORMANCE_LARGE_BYTES` (default 2 GiB) on a test machine.
   */
  readonly largeBytes?: number
}

export class Fixture extends Context.Service<Fixture, ConformanceFixture>()("test/ObjectStoreConformance/Fixture") {}

const KiB = 1024
const MiB = 1024 * KiB

/**
 * Bytes of the multi-GB test: `CONFORMANCE_LARGE_BYTES` (an integer, e.g.
 * `2147483648`), default 2 GiB.
 */
const largeBytes = (): number => {
  const raw = process.env.CONFORMANCE_LARGE_BYTES
  if (raw === undefined || raw.trim() === "") return 2 * 1024 * MiB
  const value = Number(raw)
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new Error(`CONFORMANCE_LARGE_BYTES must be a positive integer, got ${JSON.stringify(raw)}`)
  }
  return value
}

/** Deterministic bytes that neither compress nor repeat (xorshift32), so no store can shortcut them. */
const pseudoRandom = (seed: number, length: number): Uint8Array => {
  const bytes = new Uint8Array(length)
  let x = (seed * 2654435761) >>> 0 || 1
  for (let i = 0; i < length; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    bytes[i] = x & 0xff
  }
  return bytes
}

/**
 * `total` bytes in chunks of uneven sizes (1 byte to over 1 MiB), as a dump
 * pipe delivers them: a store that buffers or splits wrongly changes the bytes.
 */
const unevenChunks = (total: number): ReadonlyArray<Uint8Array> => {
  const sizes = [1, 7, 4096, 65_536, 100_003, MiB + 13, 333_333, 16 * KiB]
  const chunks: Array<Uint8Array> = []
  for (let sent = 0, i = 0; sent < total; i++) {
    const size = Math.min(sizes[i % sizes.length] ?? 1, total - sent)
    chunks.push(pseudoRandom(i + 1, size))
    sent += size
  }
  return chunks
}

const base = pseudoRandom(42, MiB)
/**
 * Block `index` of a large upload (a fresh buffer: a store may still hold the
 * previous one). Generated on demand so the test holds at most a few blocks.
 */
const block = (index: number, size: number): Uint8Array => {
  const bytes = Buffer.allocUnsafe(size)
  bytes.set(size === MiB ? base : base.subarray(0, size))
  if (size >= 8) bytes.writeUInt32BE(index >>> 0, 0)
  return bytes
}

const sha256 = (chunks: Iterable<Uint8Array>): string => {
  const hash = createHash("sha256")
  for (const chunk of chunks) hash.update(chunk)
  return hash.digest("hex")
}

const names = (infos: ReadonlyArray<ObjectInfo>): ReadonlyArray<string> => infos.map((info) => info.object).sort()

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** Uploads a stream in its own Scope and commits it. */
const uploadAll = <E>(
  store: ObjectStore["Service"],
  bucket: string,
  object: string,
  chunks: Stream.Stream<Uint8Array, E>,
  contentType = "application/octet-stream"
): Effect.Effect<ObjectInfo, StorageError | E> =>
  Effect.scoped(
    Effect.gen(function* () {
      const upload = yield* store.upload(bucket, object, { contentType })
      yield* chunks.pipe(Stream.run(upload.sink))
      return yield* upload.commit
    })
  )

/** `count` MiB blocks, generated one at a time. */
const blocks = (count: number): Stream.Stream<Uint8Array> =>
  Stream.range(0, count - 1, 1).pipe(Stream.map((i) => block(i, MiB)))

/**
 * A message shows no URL query (signed URLs, resumable session URLs carry
 * credentials there) and no upload id, except as redacted by `withoutSecrets`.
 */
const expectNoSecrets = (message: string): void => {
  expect(message).not.toMatch(/\?(?!<redacted>)/u)
  expect(message).not.toMatch(/upload[_-]?id\s*[=:]\s*(?!<redacted>)/iu)
}

/** A one-line, secret-free StorageError of that reason whose message names `url`. */
const expectStorageError = (
  error: StorageError | ObjectNotFound,
  reason: StorageError["reason"],
  url: string
): void => {
  expect(error._tag).toBe("StorageError")
  if (error._tag === "StorageError") expect(error.reason).toBe(reason)
  expect(error.message).toContain(url)
  expect(error.message).not.toContain("\n")
  expectNoSecrets(error.message)
}

/** Marks the running test skipped with a note (Vitest's `ctx.skip`), like `it.skip` but decided at run time. */
const skip = (ctx: TestContext, note: string): Effect.Effect<never> => Effect.sync(() => ctx.skip(note))

/** Milliseconds `effect` took, with its result. */
const timed = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<readonly [A, number], E, R> =>
  Effect.gen(function* () {
    const started = performance.now()
    const result = yield* effect
    return [result, performance.now() - started] as const
  })

/** RSS sampled every 100 ms for as long as the current Scope is open: the highest value seen. */
const peakRss = Effect.acquireRelease(
  Effect.sync(() => {
    const state = { peak: process.memoryUsage().rss }
    const timer = setInterval(() => {
      state.peak = Math.max(state.peak, process.memoryUsage().rss)
    }, 100)
    return { state, timer }
  }),
  ({ timer }) => Effect.sync(() => clearInterval(timer))
).pipe(Effect.map(({ state }) => Effect.sync(() => Math.max(state.peak, process.memoryUsage().rss))))

/**
 * Registers a `describe(name)` block running every conformance test against
 * the fixture Layer (built once per file).
 */
export const objectStoreConformance = (name: string, fixture: Layer.Layer<Fixture, unknown>): void =>
  layer(fixture, { timeout: "180 seconds", excludeTestServices: true })(name, (it) => {
    it.effect(
      "a streamed upload is invisible until commit, then reads back byte for byte",
      () =>
        Effect.gen(function* () {
          const { store, freshBucket, keepsMetadata = true, uploadKeepsContentType = keepsMetadata } = yield* Fixture
          const bucket = yield* freshBucket
          const object = "backups/ns/orders/backup-20250101T000000Z.sql.gz"
          const total = 20 * MiB
          const chunks = unevenChunks(total)
          const metadata = { database: "orders", schemas: "3" }
          const committed = yield* Effect.scoped(
            Effect.gen(function* () {
              const upload = yield* store.upload(bucket, object, { contentType: "application/gzip", metadata })
              expect(upload).toMatchObject({ bucket, object })
              yield* Stream.fromIterable(chunks).pipe(Stream.run(upload.sink))
              expect(yield* upload.bytesWritten).toBe(total)
              // A backup that is still being written must not look like a finished one.
              expect(yield* store.exists(bucket, object)).toBe(false)
              expect(names(yield* store.list(bucket))).toEqual([])
              expect((yield* Effect.flip(store.stat(bucket, object)))._tag).toBe("ObjectNotFound")
              return yield* upload.commit
            })
          )
          expect(committed).toMatchObject({ bucket, object, size: total })
          const info = yield* store.stat(bucket, object)
          expect(info).toMatchObject({ bucket, object, size: total })
          expect(yield* store.exists(bucket, object)).toBe(true)
          expect(names(yield* store.list(bucket))).toEqual([object])
          const sent = sha256(chunks)
          expect(sha256([yield* store.read(bucket, object)])).toBe(sent)
          const hash = createHash("sha256")
          yield* store
            .readStream(bucket, object)
            .pipe(Stream.runForEach((chunk) => Effect.sync(() => hash.update(chunk))))
          expect(hash.digest("hex")).toBe(sent)
          if (uploadKeepsContentType) expect(info.contentType).toBe("application/gzip")
          if (keepsMetadata) {
            expect(info.metadata).toEqual(metadata)
          } else {
            expect(info.metadata).toEqual({})
          }
        }),
      120_000
    )

    it.effect(
      "streams a multi-GB upload without buffering it",
      () =>
        Effect.gen(function* () {
          const { store, freshBucket, largeBytes: fixtureBytes } = yield* Fixture
          const bucket = yield* freshBucket
          const object = "backups/large.bin"
          const total = fixtureBytes ?? largeBytes()
          const count = Math.ceil(total / MiB)
          const last = total - (count - 1) * MiB
          const startRss = process.memoryUsage().rss
          const peak = yield* peakRss
          const [info, millis] = yield* timed(
            uploadAll(
              store,
              bucket,
              object,
              Stream.range(0, count - 1, 1).pipe(Stream.map((i) => block(i, i === count - 1 ? last : MiB)))
            )
          )
          const growth = (yield* peak) - startRss
          const mbPerSecond = total / 1e6 / (millis / 1000)
          console.log(
            `${name}: uploaded ${(total / MiB).toFixed(0)} MiB in ${(millis / 1000).toFixed(1)} s = ` +
              `${mbPerSecond.toFixed(1)} MB/s; RSS grew at most ${(growth / MiB).toFixed(0)} MiB ` +
              `(from ${(startRss / MiB).toFixed(0)} MiB)`
          )
          expect(info.size).toBe(total)
          expect((yield* store.stat(bucket, object)).size).toBe(total)
          expect(growth).toBeLessThan(256 * MiB)
          // The emulators keep objects in memory or on the test machine's disk.
          yield* store.remove(bucket, object)
        }),
      10 * 60_000
    )

    it.effect(
      "abort, a failed producer and an interruption leave nothing visible",
      () =>
        Effect.gen(function* () {
          const { store, freshBucket } = yield* Fixture
          const bucket = yield* freshBucket

          // An explicit abort after megabytes were sent.
          const aborted = "backups/aborted.sql.gz"
          yield* Effect.scoped(
            Effect.gen(function* () {
              const upload = yield* store.upload(bucket, aborted, { contentType: "application/gzip" })
              yield* blocks(6).pipe(Stream.run(upload.sink))
              yield* upload.abort("test abort")
              yield* upload.abort("again") // idempotent
              const commit = yield* Effect.flip(upload.commit)
              expect(commit._tag).toBe("StorageError")
              expectNoSecrets(commit.message)
              const write = yield* Effect.flip(upload.write(block(0, MiB)))
              expect(write._tag).toBe("StorageError")
              expectNoSecrets(write.message)
            })
          )
          expect(yield* store.exists(bucket, aborted)).toBe(false)
          expect((yield* Effect.flip(store.stat(bucket, aborted)))._tag).toBe("ObjectNotFound")

          // The upload's Scope closes with a failure (pg_dump died) before commit.
          const failed = "backups/failed.sql.gz"
          const exit = yield* Effect.exit(
            uploadAll(store, bucket, failed, blocks(5).pipe(Stream.concat(Stream.fail("pg_dump failed" as const))))
          )
          expect(exit).toEqual(Exit.fail("pg_dump failed"))
          expect(yield* store.exists(bucket, failed)).toBe(false)

          // The fiber is interrupted mid-upload (the Pod is stopped).
          const interrupted = "backups/interrupted.sql.gz"
          const written = yield* Deferred.make<void, StorageError>()
          const fiber = yield* Effect.forkChild(
            Effect.scoped(
              Effect.gen(function* () {
                const upload = yield* store.upload(bucket, interrupted, { contentType: "application/gzip" })
                yield* blocks(4).pipe(Stream.run(upload.sink))
                yield* Deferred.succeed(written, undefined)
                return yield* Effect.never
              })
            ).pipe(Effect.onError((cause) => Deferred.failCause(written, cause)))
          )
          yield* Deferred.await(written)
          yield* Fiber.interrupt(fiber)
          expect(yield* store.exists(bucket, interrupted)).toBe(false)

          expect(yield* store.list(bucket)).toEqual([])
        }),
      120_000
    )

    it.effect("writes small objects (bytes, text, JSON) and overwrites them", () =>
      Effect.gen(function* () {
        const { store, freshBucket, keepsMetadata = true } = yield* Fixture
        const bucket = yield* freshBucket
        const bytes = Uint8Array.of(0, 1, 2, 127, 128, 254, 255)
        expect(yield* store.writeSmall(bucket, "small/bytes.bin", bytes)).toMatchObject({
          bucket,
          object: "small/bytes.bin",
          size: bytes.byteLength
        })
        expect(yield* store.read(bucket, "small/bytes.bin")).toEqual(bytes)

        const text = "héllo, wörld ✓\nline 2\n"
        expect((yield* store.writeSmall(bucket, "small/text.txt", text)).size).toBe(encoder.encode(text).byteLength)
        expect(decoder.decode(yield* store.read(bucket, "small/text.txt"))).toBe(text)

        const manifest = { schemas: ["public", "billing"], sizes: [1, 2.5], ok: true, none: null, nested: { a: "b" } }
        const json = yield* store.writeSmall(bucket, "small/manifest.json", manifest, {
          metadata: { kind: "manifest" }
        })
        expect(json.size).toBe(encoder.encode(JSON.stringify(manifest)).byteLength)
        expect(JSON.parse(decoder.decode(yield* store.read(bucket, "small/manifest.json")))).toEqual(manifest)
        if (keepsMetadata) {
          const info = yield* store.stat(bucket, "small/manifest.json")
          expect(info.contentType).toMatch(/^application\/json/u)
          expect(info.metadata).toEqual({ kind: "manifest" })
        }

        // Overwriting replaces the whole object (a shorter one leaves no tail of the longer).
        yield* store.writeSmall(bucket, "small/text.txt", "a much longer second version of the text")
        const replaced = yield* store.writeSmall(bucket, "small/text.txt", "3")
        expect(replaced.size).toBe(1)
        expect(decoder.decode(yield* store.read(bucket, "small/text.txt"))).toBe("3")
        expect((yield* store.stat(bucket, "small/text.txt")).size).toBe(1)
        expect(names(yield* store.list(bucket))).toEqual(["small/bytes.bin", "small/manifest.json", "small/text.txt"])
      })
    )

    it.effect("a missing object is ObjectNotFound naming its URL", () =>
      Effect.gen(function* () {
        const { store, freshBucket } = yield* Fixture
        const bucket = yield* freshBucket
        const object = "backups/ns/orders/none.sql.gz"
        const url = store.url(bucket, object)
        const stat = yield* Effect.flip(store.stat(bucket, object))
        expect(stat).toMatchObject({ _tag: "ObjectNotFound", bucket, object })
        expect(stat.message).toContain(url)
        const read = yield* Effect.flip(store.read(bucket, object))
        expect(read._tag).toBe("ObjectNotFound")
        expect(read.message).toContain(url)
        expect((yield* Effect.flip(Stream.runCollect(store.readStream(bucket, object))))._tag).toBe("ObjectNotFound")
        expect(yield* store.exists(bucket, object)).toBe(false)
      })
    )

    it.effect("lists by prefix, recursively, with full names, and bounded by limit", () =>
      Effect.gen(function* () {
        const { store, freshBucket } = yield* Fixture
        const bucket = yield* freshBucket
        expect(yield* store.list(bucket)).toEqual([])
        const objects = { "a/1.txt": "1", "a/b/2.txt": "22", "ab.txt": "333", "b/3.txt": "4444" }
        for (const [object, body] of Object.entries(objects)) yield* store.writeSmall(bucket, object, body)

        expect(names(yield* store.list(bucket))).toEqual(Object.keys(objects).sort())
        const under = yield* store.list(bucket, { prefix: "a/" })
        expect(names(under)).toEqual(["a/1.txt", "a/b/2.txt"])
        for (const info of under) {
          expect(info.bucket).toBe(bucket)
          expect(info.size).toBe(objects[info.object as keyof typeof objects].length)
        }
        expect(names(yield* store.list(bucket, { prefix: "a/b/" }))).toEqual(["a/b/2.txt"])
        expect(yield* store.list(bucket, { prefix: "zzz/" })).toEqual([])

        const limited = yield* store.list(bucket, { limit: 2 })
        expect(limited.length).toBeGreaterThanOrEqual(1)
        expect(limited.length).toBeLessThanOrEqual(2)
        for (const info of limited) expect(Object.keys(objects)).toContain(info.object)
        const one = yield* store.list(bucket, { prefix: "a/", limit: 1 })
        expect(one).toHaveLength(1)
        expect(["a/1.txt", "a/b/2.txt"]).toContain(one[0]?.object)
      })
    )

    it.effect("removes objects; removing a missing object succeeds", () =>
      Effect.gen(function* () {
        const { store, freshBucket } = yield* Fixture
        const bucket = yield* freshBucket
        yield* store.writeSmall(bucket, "backups/old.sql.gz", "old")
        yield* store.writeSmall(bucket, "backups/new.sql.gz", "new")
        yield* store.remove(bucket, "backups/old.sql.gz")
        expect(yield* store.exists(bucket, "backups/old.sql.gz")).toBe(false)
        expect((yield* Effect.flip(store.stat(bucket, "backups/old.sql.gz")))._tag).toBe("ObjectNotFound")
        expect(names(yield* store.list(bucket))).toEqual(["backups/new.sql.gz"])
        yield* store.remove(bucket, "backups/old.sql.gz")
        yield* store.remove(bucket, "never/existed.sql.gz")
        expect(decoder.decode(yield* store.read(bucket, "backups/new.sql.gz"))).toBe("new")
      })
    )

    it.effect("every operation on a missing bucket fails with BucketNotFound naming its URL", () =>
      Effect.gen(function* () {
        const { store, missingBucket } = yield* Fixture
        expectStorageError(
          yield* Effect.flip(store.list(missingBucket, { prefix: "backups/" })),
          "BucketNotFound",
          store.url(missingBucket, "")
        )
        expectStorageError(
          yield* Effect.flip(store.list(missingBucket)),
          "BucketNotFound",
          store.url(missingBucket, "")
        )
        expectStorageError(
          yield* Effect.flip(store.writeSmall(missingBucket, "backups/m.json", { ok: true })),
          "BucketNotFound",
          store.url(missingBucket, "backups/m.json")
        )
        expectStorageError(
          yield* Effect.flip(uploadAll(store, missingBucket, "backups/u.sql.gz", blocks(3))),
          "BucketNotFound",
          store.url(missingBucket, "backups/u.sql.gz")
        )
        // A stat cannot always tell a missing bucket from a missing object.
        const stat = yield* Effect.flip(store.stat(missingBucket, "backups/s.sql.gz"))
        expect(stat.message).toContain(store.url(missingBucket, "backups/s.sql.gz"))
        if (stat._tag === "StorageError") expect(stat.reason).toBe("BucketNotFound")
      })
    )

    it.effect("a refused identity gets AccessDenied", (ctx) =>
      Effect.gen(function* () {
        const { store, denied, freshBucket, skipReasons } = yield* Fixture
        if (denied === undefined) {
          return yield* skip(ctx, skipReasons?.denied ?? "no `denied` store: the server checks no credentials")
        }
        const bucket = yield* freshBucket
        expectStorageError(yield* Effect.flip(denied.list(bucket)), "AccessDenied", denied.url(bucket, ""))
        expectStorageError(
          yield* Effect.flip(denied.writeSmall(bucket, "backups/d.json", { ok: true })),
          "AccessDenied",
          denied.url(bucket, "backups/d.json")
        )
        expectStorageError(
          yield* Effect.flip(uploadAll(denied, bucket, "backups/d.sql.gz", blocks(2))),
          "AccessDenied",
          denied.url(bucket, "backups/d.sql.gz")
        )
        expect(yield* store.list(bucket)).toEqual([])
      })
    )

    it.effect(
      "an unreachable store fails fast with Unreachable",
      (ctx) =>
        Effect.gen(function* () {
          const { unreachable, freshBucket, skipReasons } = yield* Fixture
          if (unreachable === undefined) {
            return yield* skip(ctx, skipReasons?.unreachable ?? "no `unreachable` store: the store has no address")
          }
          const bucket = yield* freshBucket
          const [list, listMillis] = yield* timed(Effect.flip(unreachable.list(bucket, { limit: 1 })))
          expectStorageError(list, "Unreachable", unreachable.url(bucket, ""))
          const [write, writeMillis] = yield* timed(Effect.flip(unreachable.writeSmall(bucket, "backups/w.json", {})))
          expectStorageError(write, "Unreachable", unreachable.url(bucket, "backups/w.json"))
          const [upload, uploadMillis] = yield* timed(
            Effect.flip(uploadAll(unreachable, bucket, "backups/w.sql.gz", blocks(2)))
          )
          expectStorageError(upload, "Unreachable", unreachable.url(bucket, "backups/w.sql.gz"))
          console.log(
            `${name}: unreachable store failed after ${listMillis.toFixed(0)} ms (list), ` +
              `${writeMillis.toFixed(0)} ms (writeSmall), ${uploadMillis.toFixed(0)} ms (upload)`
          )
          // A wrong endpoint must surface as such, not after minutes of retries.
          for (const millis of [listMillis, writeMillis, uploadMillis]) expect(millis).toBeLessThan(30_000)
        }),
      120_000
    )
  })
