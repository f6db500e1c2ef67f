import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { Writable } from "node:stream"
import { assert, describe, expect, it } from "@effect/vitest"
import type { CreateWriteStreamOptions, File, FileMetadata } from "@google-cloud/storage"
import { Effect, Exit, Fiber, Ref } from "effect"
import { startUpload, type UploadSettings } from "../src/GcsUpload.ts"

// startUpload's own logic (buffering, backpressure, commit/abort states, errors,
// cancelling the session) over a stand-in for the GCS client's write stream. The
// real client against a GCS emulator is covered by GcsObjectStore.integration.test.ts.

const bucket = "backups"
const object = "team/app/backup.sql.gz"

/**
 * What `File.createWriteStream` returns, reduced to what matters here: writes
 * complete at once unless `holdWrites`; `final` is where the client's last
 * request makes the object exist, so `stored` is set only if it ran.
 */
const fakeFile = (
  options: {
    readonly highWaterMark?: number
    readonly holdWrites?: boolean
    /** Fails the Nth write (1-based), as the client does when a request fails. */
    readonly failWrite?: { readonly at: number; readonly error: Error }
    readonly failFinal?: Error
  } = {}
) => {
  const received: Array<Buffer> = []
  const held: Array<() => void> = []
  const created: Array<CreateWriteStreamOptions | undefined> = []
  let stored: Buffer | undefined
  let stream: Writable | undefined
  const file = {
    metadata: {} as FileMetadata,
    createWriteStream: (createOptions?: CreateWriteStreamOptions): Writable => {
      created.push(createOptions)
      stream = new Writable({
        highWaterMark: options.highWaterMark ?? 1024,
        write(chunk: Buffer, _encoding, callback) {
          received.push(chunk)
          if (options.failWrite?.at === received.length) {
            // Asynchronously, as the client reports a failed request.
            const error = options.failWrite.error
            setImmediate(() => callback(error))
          } else if (options.holdWrites === true) held.push(() => callback())
          else callback()
        },
        final(callback) {
          if (options.failFinal !== undefined) return callback(options.failFinal)
          stored = Buffer.concat(received)
          // The client stores the object resource GCS answered with on the File.
          file.metadata = { size: String(stored.byteLength), generation: "1700000000000001", contentType: "x/y" }
          callback()
        }
      })
      return stream
    }
  }
  return {
    // startUpload only calls createWriteStream and reads metadata: the rest of File is not needed.
    file: file as unknown as File,
    received,
    created,
    stored: () => stored,
    stream: () => stream ?? assert.fail("no write stream was created"),
    releaseWrites: () => {
      for (let release = held.shift(); release !== undefined; release = held.shift()) release()
    }
  }
}

const settings = (overrides: Partial<UploadSettings> = {}): UploadSettings => ({
  abortTimeoutMillis: 2_000,
  validation: false,
  writeBufferBytes: 8,
  maxQueuedBytes: 0,
  ...overrides
})

const writeOptions = { contentType: "application/gzip", metadata: { "backup-resource": "team/app" } }

const bytes = (n: number, fill: number) => Buffer.alloc(n, fill)

/** Lets Node deliver the stream events queued on nextTick and the current loop turn. */
const settle = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve))).pipe(
  Effect.repeat({ times: 2 })
)

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  if (Exit.isSuccess(exit)) return assert.fail("expected a failure, got a success")
  const reason = exit.cause.reasons[0]
  if (reason?._tag !== "Fail") return assert.fail(`expected a failure, got ${reason?._tag}`)
  return reason.error
}

/** A local HTTP server standing in for the resumable session URI; records requests. */
const sessionServer = Effect.acquireRelease(
  Effect.callback<{ readonly url: string; readonly requests: Array<string>; readonly close: () => void }>((resume) => {
    const requests: Array<string> = []
    const server = createServer((request, response) => {
      requests.push(`${request.method} ${request.url}`)
      // What GCS answers to a cancelled session.
      response.writeHead(499).end()
    })
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      resume(Effect.succeed({ url: `http://127.0.0.1:${port}`, requests, close: () => server.close() }))
    })
  }),
  (server) => Effect.sync(server.close)
)

describe("startUpload", () => {
  it.effect("opens a resumable session with the content type and user metadata", () =>
    Effect.gen(function* () {
      const fake = fakeFile()
      yield* startUpload(fake.file, bucket, object, writeOptions, settings({ validation: "md5" }))
      expect(fake.created).toEqual([
        expect.objectContaining({
          resumable: true,
          gzip: false,
          validation: "md5",
          contentType: "application/gzip",
          metadata: { contentType: "application/gzip", metadata: { "backup-resource": "team/app" } }
        })
      ])
    })
  )

  it.effect(
    "gathers small writes into writeBufferBytes buffers, and commit sends the rest and returns the object",
    () =>
      Effect.gen(function* () {
        const fake = fakeFile()
        const { upload, state } = yield* startUpload(fake.file, bucket, object, writeOptions, settings())
        const chunks = [1, 2, 3, 4, 5].map((i) => bytes(3, i))
        for (const chunk of chunks) yield* upload.write(chunk)
        // 9 bytes reached the 8-byte buffer after three writes; the last 6 wait for commit.
        expect(fake.received.map((b) => b.byteLength)).toEqual([9])
        expect(yield* upload.bytesWritten).toBe(15)
        expect(fake.stored()).toBeUndefined()

        const info = yield* upload.commit
        expect(fake.received.map((b) => b.byteLength)).toEqual([9, 6])
        expect(fake.stored()).toEqual(Buffer.concat(chunks))
        expect(info).toEqual({
          bucket,
          object,
          size: 15,
          generation: "1700000000000001",
          contentType: "x/y",
          metadata: {}
        })
        expect(yield* Ref.get(state)).toBe("committed")
      })
  )

  it.effect("makes a write wait while the stream holds maxQueuedBytes or more (backpressure)", () =>
    Effect.gen(function* () {
      const fake = fakeFile({ highWaterMark: 4, holdWrites: true })
      const { upload } = yield* startUpload(fake.file, bucket, object, writeOptions, settings({ maxQueuedBytes: 16 }))
      // The first buffer leaves 8 bytes waiting in the client, under maxQueuedBytes; the
      // second makes 16, so that write waits until the client has sent what it holds.
      const first = yield* Effect.forkChild(upload.write(bytes(8, 1)), { startImmediately: true })
      yield* settle
      expect(first.pollUnsafe(), "the first write waited").toEqual(Exit.void)
      const second = yield* Effect.forkChild(upload.write(bytes(8, 2)), { startImmediately: true })
      yield* settle
      expect(second.pollUnsafe()).toBeUndefined()

      fake.releaseWrites()
      yield* Fiber.join(second)
      expect(Buffer.concat(fake.received)).toEqual(Buffer.concat([bytes(8, 1), bytes(8, 2)]))
    })
  )

  it.effect("abort destroys the stream so the object is never finalized; later writes and commit fail", () =>
    Effect.gen(function* () {
      const fake = fakeFile()
      const { upload, state } = yield* startUpload(fake.file, bucket, object, writeOptions, settings())
      yield* upload.write(bytes(10, 1))
      yield* upload.abort("pg_dump failed")
      yield* settle

      expect(fake.stream().destroyed).toBe(true)
      expect(fake.stored()).toBeUndefined()
      expect(yield* Ref.get(state)).toBe("aborted")
      expect(failureOf(yield* Effect.exit(upload.write(bytes(1, 2))))).toMatchObject({
        _tag: "StorageError",
        operation: "upload",
        message: `upload gs://${bucket}/${object} failed: upload aborted: pg_dump failed`
      })
      expect(failureOf(yield* Effect.exit(upload.commit))).toMatchObject({
        message: `upload gs://${bucket}/${object} failed: the upload is already aborted`
      })
      // Idempotent.
      yield* upload.abort("again")
      expect(fake.stored()).toBeUndefined()
    })
  )

  it.effect("a second commit fails, and an abort after commit changes nothing", () =>
    Effect.gen(function* () {
      const fake = fakeFile()
      const { upload, state } = yield* startUpload(fake.file, bucket, object, writeOptions, settings())
      yield* upload.write(bytes(3, 1))
      yield* upload.commit
      expect(failureOf(yield* Effect.exit(upload.commit))).toMatchObject({
        message: `upload gs://${bucket}/${object} failed: the upload is already committed`
      })
      yield* upload.abort("the upload's scope closed")
      expect(yield* Ref.get(state)).toBe("committed")
      expect(fake.stored()).toEqual(bytes(3, 1))
    })
  )

  it.live("abort cancels the resumable session (DELETE on its URI); an abort after commit does not", () =>
    Effect.gen(function* () {
      const server = yield* sessionServer
      const aborted = fakeFile()
      const first = yield* startUpload(aborted.file, bucket, object, writeOptions, settings())
      yield* first.upload.write(bytes(10, 1))
      // The client announces the session once it has created it.
      aborted.stream().emit("uri", `${server.url}/upload/session-1`)
      yield* first.upload.abort("interrupted")
      expect(server.requests).toEqual(["DELETE /upload/session-1"])

      const committed = fakeFile()
      const second = yield* startUpload(committed.file, bucket, object, writeOptions, settings())
      yield* second.upload.write(bytes(10, 1))
      committed.stream().emit("uri", `${server.url}/upload/session-2`)
      yield* second.upload.commit
      yield* second.upload.abort("the upload's scope closed")
      expect(server.requests).toEqual(["DELETE /upload/session-1"])
    })
  )

  it.effect(
    "a stream error between writes fails the next write and commit with a StorageError, and is not thrown",
    () =>
      Effect.gen(function* () {
        const rejected = Object.assign(new Error("Forbidden: storage.objects.create"), { code: 403 })
        const fake = fakeFile({ failWrite: { at: 1, error: rejected } })
        const { upload, state } = yield* startUpload(fake.file, bucket, object, writeOptions, settings())
        // The client accepts the buffer, then its request fails while nobody waits on the stream.
        yield* upload.write(bytes(8, 1))
        yield* settle
        expect(fake.stream().errored).toBe(rejected)

        const expected = {
          _tag: "StorageError",
          operation: "upload",
          bucket,
          object,
          status: 403,
          message: `upload gs://${bucket}/${object} failed (HTTP 403): Forbidden: storage.objects.create`
        }
        expect(failureOf(yield* Effect.exit(upload.write(bytes(1, 2))))).toMatchObject(expected)
        expect(failureOf(yield* Effect.exit(upload.commit))).toMatchObject(expected)
        // Not committed: the store's Scope finalizer will abort it.
        expect(yield* Ref.get(state)).toBe("open")
        expect(fake.stored()).toBeUndefined()
      })
  )

  it.effect("a commit the store rejects fails and leaves the upload open, so it is aborted after", () =>
    Effect.gen(function* () {
      const fake = fakeFile({ failFinal: new Error("md5 mismatch") })
      const { upload, state } = yield* startUpload(fake.file, bucket, object, writeOptions, settings())
      yield* upload.write(bytes(3, 1))
      expect(failureOf(yield* Effect.exit(upload.commit))).toMatchObject({
        _tag: "StorageError",
        message: `upload gs://${bucket}/${object} failed: md5 mismatch`
      })
      expect(yield* Ref.get(state)).toBe("open")
      yield* upload.abort("commit failed")
      expect(yield* Ref.get(state)).toBe("aborted")
      expect(fake.stream().destroyed).toBe(true)
    })
  )
})
