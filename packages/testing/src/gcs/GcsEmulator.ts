import { NodeHttpClient, NodeServices } from "@effect/platform-node"
import { Context, Duration, Effect, FileSystem, Layer, Schema } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"
import { resolveBinaries } from "../binaries/resolve.ts"
import { probeOk } from "../http.ts"
import { waitUntilReady } from "../poll.ts"
import { freePort } from "../ports.ts"
import { startDaemon } from "../process/Daemon.ts"

/** The GCS emulator could not be started, or a request to it failed. */
export class GcsEmulatorError extends Schema.TaggedError<GcsEmulatorError>()("GcsEmulatorError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

/** A running fake-gcs-server. */
export interface GcsEmulatorShape {
  /** `http://127.0.0.1:PORT`: pass as `apiEndpoint` to `@google-cloud/storage`. */
  readonly endpoint: string
  /** Creates a bucket through the JSON API (`POST /storage/v1/b`). */
  readonly createBucket: (name: string) => Effect.Effect<void, GcsEmulatorError>
}

/** Options of {@link GcsEmulator.layerWith}. */
export interface GcsEmulatorOptions {
  /** Directory for `fake-gcs-server.log` (default: a temporary directory, deleted on release). */
  readonly logDir?: string | undefined
  /**
   * Buckets that exist from the start. Unlike {@link GcsEmulatorShape.createBucket}, whose
   * names the emulator validates like GCS (3-63 characters), these are preloaded, so short
   * names such as `b` work too.
   */
  readonly buckets?: ReadonlyArray<string> | undefined
}

// Preloaded buckets are directories: allow nothing that could leave the data directory.
const preloadableBucket = /^[a-z0-9][a-z0-9._-]{0,221}$/u

const host = "127.0.0.1"

const make = (options: GcsEmulatorOptions) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const { fakeGcsServer } = yield* resolveBinaries(["fakeGcsServer"]).pipe(
      Effect.mapError((e) => new GcsEmulatorError({ message: e.message, cause: e }))
    )
    const dir =
      options.logDir ??
      (yield* fs
        .makeTempDirectoryScoped({ prefix: "db-backup-operator-gcs-" })
        .pipe(Effect.mapError((e) => new GcsEmulatorError({ message: e.message, cause: e }))))
    const port = yield* freePort.pipe(Effect.mapError((e) => new GcsEmulatorError({ message: e.message, cause: e })))
    const buckets = options.buckets ?? []
    const invalid = buckets.find((bucket) => !preloadableBucket.test(bucket))
    if (invalid !== undefined) return yield* new GcsEmulatorError({ message: `invalid bucket name: ${invalid}` })
    const dataDir = yield* fs
      .makeTempDirectoryScoped({ prefix: "db-backup-operator-gcs-data-" })
      .pipe(Effect.mapError((e) => new GcsEmulatorError({ message: e.message, cause: e })))
    for (const bucket of buckets) {
      yield* fs
        .makeDirectory(`${dataDir}/${bucket}`)
        .pipe(Effect.mapError((e) => new GcsEmulatorError({ message: e.message, cause: e })))
    }
    const endpoint = `http://${host}:${port}`
    const server = yield* startDaemon({
      name: "fake-gcs-server",
      dir,
      command: fakeGcsServer,
      args: [
        "-scheme",
        "http",
        "-host",
        host,
        "-port",
        String(port),
        "-backend",
        "memory",
        "-data",
        dataDir,
        // Resumable uploads continue at the Location the server returns: make it this address.
        "-external-url",
        endpoint,
        "-public-host",
        `${host}:${port}`
      ]
    }).pipe(Effect.mapError((e) => new GcsEmulatorError({ message: e.message, cause: e })))

    const client = (yield* HttpClient.HttpClient).pipe(HttpClient.filterStatusOk)
    // Scoped requests: a response is aborted with its scope, never left half-read.
    const scopedClient = HttpClient.withScope(client)
    yield* waitUntilReady(
      server.ensureRunning.pipe(
        Effect.mapError((e) => new GcsEmulatorError({ message: e.message, cause: e })),
        Effect.andThen(probeOk(client, `${endpoint}/storage/v1/b`))
      ),
      {
        timeout: Duration.seconds(30),
        onTimeout: (reason) =>
          new GcsEmulatorError({ message: `fake-gcs-server not ready after 30 seconds: ${reason}` })
      }
    )

    const createBucket = (name: string): Effect.Effect<void, GcsEmulatorError> =>
      scopedClient
        .execute(
          HttpClientRequest.post(`${endpoint}/storage/v1/b`).pipe(
            HttpClientRequest.setUrlParam("project", "test"),
            HttpClientRequest.bodyJsonUnsafe({ name })
          )
        )
        .pipe(
          Effect.asVoid,
          Effect.mapError(
            (e) => new GcsEmulatorError({ message: `cannot create bucket ${name}: ${e.message}`, cause: e })
          ),
          Effect.scoped
        )

    return GcsEmulator.of({ endpoint, createBucket })
  })

/**
 * fake-gcs-server (built and cached on first use) on 127.0.0.1 at a random
 * port, plain HTTP, in-memory storage. Stopped when the layer is released.
 *
 * @example
 * ```ts
 * const program = Effect.gen(function* () {
 *   const gcs = yield* GcsEmulator
 *   yield* gcs.createBucket("backups")
 *   const storage = new Storage({ apiEndpoint: gcs.endpoint, projectId: "test" })
 *   // ...
 * }).pipe(Effect.provide(GcsEmulator.layer))
 * ```
 */
export class GcsEmulator extends Context.Service<GcsEmulator, GcsEmulatorShape>()(
  "@db-backup-operator/testing/GcsEmulator"
) {
  /** The emulator with its log in a temporary directory. */
  static readonly layer: Layer.Layer<GcsEmulator, GcsEmulatorError> = Layer.effect(GcsEmulator, make({})).pipe(
    Layer.provide([NodeServices.layer, NodeHttpClient.layerUndici])
  )

  /** The emulator with options (e.g. where its log goes). */
  static readonly layerWith = (options: GcsEmulatorOptions): Layer.Layer<GcsEmulator, GcsEmulatorError> =>
    Layer.effect(GcsEmulator, make(options)).pipe(Layer.provide([NodeServices.layer, NodeHttpClient.layerUndici]))
}
