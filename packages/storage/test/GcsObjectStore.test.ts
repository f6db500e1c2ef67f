import { createServer, type IncomingMessage } from "node:http"
import type { AddressInfo } from "node:net"
import { GcsObjectStore } from "@db-backup-operator/storage"
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"

// What a runner relies on when its Job is stopped mid-upload (SIGTERM interrupts
// the backup): the upload, held back by backpressure, is aborted by its Scope and
// the resumable session is cancelled, so GCS never finalizes a partial object. The
// real GCS client talks to a minimal stand-in for the resumable-upload endpoints it
// uses here; the rest is covered against fake-gcs-server by the integration tests.

interface SessionServer {
  readonly endpoint: string
  /** `METHOD path` of every request, in order. */
  readonly requests: Array<string>
  /** Resolved once the client has started sending the object's bytes. */
  readonly uploading: Deferred.Deferred<void>
}

/**
 * Creates a session for every POST and accepts the upload's PUT but never reads
 * its body, so the client's buffers fill up as with a slow or stalled network.
 */
const sessionServer = Effect.acquireRelease(
  Effect.gen(function* () {
    const requests: Array<string> = []
    const uploading = yield* Deferred.make<void>()
    const server = createServer((request: IncomingMessage, response) => {
      requests.push(`${request.method} ${request.url?.split("?")[0]}`)
      if (request.method === "POST") {
        request.resume()
        request.on("end", () => {
          const { port } = server.address() as AddressInfo
          response.writeHead(200, { location: `http://127.0.0.1:${port}/session/1` }).end()
        })
      } else if (request.method === "PUT") {
        request.pause()
        Deferred.doneUnsafe(uploading, Effect.void)
      } else {
        request.resume()
        // What GCS answers to a cancelled session.
        response.writeHead(499).end()
      }
    })
    yield* Effect.callback<void>((resume) => {
      server.listen(0, "127.0.0.1", () => resume(Effect.void))
    })
    const { port } = server.address() as AddressInfo
    return { server, endpoint: `http://127.0.0.1:${port}`, requests, uploading }
  }),
  ({ server }) =>
    Effect.sync(() => {
      // The stalled PUT holds its connection open: close it rather than wait for it.
      server.closeAllConnections()
      server.close()
    })
)

describe("GcsObjectStore.upload", () => {
  it.live("interrupting an upload held back by backpressure aborts it and cancels its resumable session", () =>
    Effect.gen(function* () {
      const server: SessionServer = yield* sessionServer
      const store = GcsObjectStore.make({ apiEndpoint: server.endpoint, abortTimeoutMillis: 2_000 })
      let written = 0
      const uploader = yield* Effect.forkChild(
        Effect.scoped(
          Effect.gen(function* () {
            const upload = yield* store.upload("backups", "team/app/backup.sql.gz", { contentType: "application/gzip" })
            const megabyte = Buffer.alloc(1024 * 1024, 7)
            // Like a dump that never ends: only backpressure or interruption stops it.
            while (true) {
              yield* upload.write(megabyte)
              written += 1
            }
          })
        )
      )
      yield* Deferred.await(server.uploading)

      // Writing stops once the client and the socket hold what the server will not read.
      const stalled = Effect.gen(function* () {
        const before = written
        yield* Effect.sleep("200 millis")
        return written === before
      }).pipe(Effect.repeat({ until: (isStalled) => isStalled, times: 10 }))
      expect(yield* stalled, `still writing after ${written} MiB`).toBe(true)
      expect(written).toBeLessThan(64)

      yield* Fiber.interrupt(uploader)
      // Interruption waits for the Scope's finalizer, which aborts the upload.
      expect(server.requests).toEqual(["POST /upload/storage/v1/b/backups/o", "PUT /session/1", "DELETE /session/1"])
    })
  )
})
