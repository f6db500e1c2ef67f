import { createRequire } from "node:module"
import { BlobServiceClient, StorageSharedKeyCredential } from "@azure/storage-blob"
import { NodeServices } from "@effect/platform-node"
import { Context, Duration, Effect, FileSystem, Layer, Schema } from "effect"
import { NotReady, waitUntilReady } from "../poll.ts"
import { freePort } from "../ports.ts"
import { startDaemon } from "../process/Daemon.ts"

/** Azurite could not be started, or a request to it failed. */
export class AzuriteError extends Schema.TaggedError<AzuriteError>()("AzuriteError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

/** A running Azurite blob service. */
export interface AzuriteShape {
  /** `http://127.0.0.1:PORT/devstoreaccount1`: the account's blob endpoint (path-style, as Azurite wants). */
  readonly endpoint: string
  /** `devstoreaccount1`, the only account Azurite knows by default. */
  readonly accountName: string
  /** The account's shared key: Azurite's well-known development key, public by design. */
  readonly accountKey: string
  /** `DefaultEndpointsProtocol=http;AccountName=…;AccountKey=…;BlobEndpoint=…;` for `BlobServiceClient.fromConnectionString`. */
  readonly connectionString: string
  /** Creates a container; fails if it exists already. */
  readonly createContainer: (name: string) => Effect.Effect<void, AzuriteError>
}

/** Options of {@link Azurite.layerWith}. */
export interface AzuriteOptions {
  /** Directory for `azurite.log` (default: a temporary directory, deleted on release). */
  readonly logDir?: string | undefined
  /** Containers created once the service answers. */
  readonly containers?: ReadonlyArray<string> | undefined
}

const host = "127.0.0.1"
const accountName = "devstoreaccount1"
// Azurite's documented development key for devstoreaccount1 (the same as the Azure Storage Emulator's).
const accountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

/**
 * Azurite's blob service entry point, resolved from this module so that it is
 * found next to an installed `@db-backup-operator/testing` as well as in the
 * repository.
 */
const blobEntry = (): Effect.Effect<string, AzuriteError> =>
  Effect.try({
    try: () => createRequire(import.meta.url).resolve("azurite/dist/src/blob/main.js"),
    catch: (cause) => new AzuriteError({ message: "the azurite package is not installed", cause })
  })

const failWith = (message: string) => (cause: unknown) =>
  new AzuriteError({
    message: `${message}: ${cause instanceof Error ? (cause.message.split("\n", 1)[0] ?? "") : String(cause)}`,
    cause
  })

const make = (options: AzuriteOptions) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const entry = yield* blobEntry()
    const dir =
      options.logDir ??
      (yield* fs
        .makeTempDirectoryScoped({ prefix: "db-backup-operator-azurite-" })
        .pipe(Effect.mapError((e) => new AzuriteError({ message: e.message, cause: e }))))
    // On disk, not in memory: conformance tests upload gigabytes.
    const dataDir = yield* fs
      .makeTempDirectoryScoped({ prefix: "db-backup-operator-azurite-data-" })
      .pipe(Effect.mapError((e) => new AzuriteError({ message: e.message, cause: e })))
    const port = yield* freePort.pipe(Effect.mapError((e) => new AzuriteError({ message: e.message, cause: e })))
    const endpoint = `http://${host}:${port}/${accountName}`
    const server = yield* startDaemon({
      name: "azurite",
      dir,
      command: process.execPath,
      args: [
        entry,
        "--blobHost",
        host,
        "--blobPort",
        String(port),
        "--location",
        dataDir,
        "--silent",
        // Telemetry would try to reach the Internet; tests have no business there.
        "--disableTelemetry",
        // A newer @azure/storage-blob sends an x-ms-version this Azurite does not know yet.
        "--skipApiVersionCheck"
      ]
    }).pipe(Effect.mapError((e) => new AzuriteError({ message: e.message, cause: e })))

    // One try per call: readiness polls itself, and a test wants a refusal at once.
    const service = new BlobServiceClient(endpoint, new StorageSharedKeyCredential(accountName, accountKey), {
      retryOptions: { maxTries: 1 }
    })
    yield* waitUntilReady(
      server.ensureRunning.pipe(
        Effect.mapError((e) => new AzuriteError({ message: e.message, cause: e })),
        Effect.andThen(
          Effect.tryPromise({
            try: (signal) => service.getProperties({ abortSignal: signal }),
            catch: (e) => new NotReady({ reason: failWith("GetBlobServiceProperties")(e).message })
          }).pipe(
            Effect.timeoutOrElse({
              duration: "2 seconds",
              orElse: () => Effect.fail(new NotReady({ reason: "no answer within 2 seconds" }))
            })
          )
        )
      ),
      {
        timeout: Duration.seconds(30),
        onTimeout: (reason) => new AzuriteError({ message: `Azurite not ready after 30 seconds: ${reason}` })
      }
    )

    const createContainer = (name: string): Effect.Effect<void, AzuriteError> =>
      Effect.tryPromise({
        try: (signal) => service.getContainerClient(name).create({ abortSignal: signal }),
        catch: failWith(`cannot create container ${name}`)
      }).pipe(Effect.asVoid)

    for (const container of options.containers ?? []) yield* createContainer(container)

    return Azurite.of({
      endpoint,
      accountName,
      accountKey,
      connectionString: `DefaultEndpointsProtocol=http;AccountName=${accountName};AccountKey=${accountKey};BlobEndpoint=${endpoint};`,
      createContainer
    })
  })

/**
 * Azurite's blob service (the `azurite` npm package, run by this Node) on
 * 127.0.0.1 at a random port, plain HTTP, storing blobs on disk in a temporary
 * directory. Stopped, and its data deleted, when the layer is released.
 *
 * @example
 * ```ts
 * const program = Effect.gen(function* () {
 *   const azurite = yield* Azurite
 *   yield* azurite.createContainer("backups")
 *   return azurite.endpoint
 * }).pipe(Effect.provide(Azurite.layer))
 * ```
 */
export class Azurite extends Context.Service<Azurite, AzuriteShape>()("@db-backup-operator/testing/Azurite") {
  /** Azurite with its log in a temporary directory. */
  static readonly layer: Layer.Layer<Azurite, AzuriteError> = Layer.effect(Azurite, make({})).pipe(
    Layer.provide(NodeServices.layer)
  )

  /** Azurite with options (where its log goes, containers to create). */
  static readonly layerWith = (options: AzuriteOptions): Layer.Layer<Azurite, AzuriteError> =>
    Layer.effect(Azurite, make(options)).pipe(Layer.provide(NodeServices.layer))
}
