import { randomBytes } from "node:crypto"
import { CreateBucketCommand, ListBucketsCommand, S3Client } from "@aws-sdk/client-s3"
import { NodeServices } from "@effect/platform-node"
import { Context, Duration, Effect, FileSystem, Layer, Schema } from "effect"
import { resolveBinaries } from "../binaries/resolve.ts"
import { NotReady, waitUntilReady } from "../poll.ts"
import { freePort } from "../ports.ts"
import { startDaemon } from "../process/Daemon.ts"

/** The S3 server could not be started, or a request to it failed. */
export class S3ServerError extends Schema.TaggedError<S3ServerError>()("S3ServerError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

/** A running S3 server (versitygw), and the credentials it accepts. */
export interface S3ServerShape {
  /** `http://127.0.0.1:PORT`: the S3 endpoint (use path-style addressing). */
  readonly endpoint: string
  /** The region the server signs for: `us-east-1`. */
  readonly region: string
  /** Access key id of the server's root account. */
  readonly accessKeyId: string
  /** Secret key of the server's root account (random for each server). */
  readonly secretAccessKey: string
  /** Creates a bucket through the S3 API (`CreateBucket`); fails if it exists. */
  readonly createBucket: (name: string) => Effect.Effect<void, S3ServerError>
}

/** Options of {@link S3Server.layerWith}. */
export interface S3ServerOptions {
  /** Directory for `versitygw.log` (default: a temporary directory, deleted on release). */
  readonly logDir?: string | undefined
  /** Buckets created before the layer is ready (S3 names: 3-63 characters). */
  readonly buckets?: ReadonlyArray<string> | undefined
}

const host = "127.0.0.1"
const region = "us-east-1"

const errorText = (error: unknown): string =>
  error instanceof Error ? `${error.name}: ${error.message}` : String(error)

const make = (options: S3ServerOptions) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const failed = (e: { readonly message: string }) => new S3ServerError({ message: e.message, cause: e })
    const { versitygw } = yield* resolveBinaries(["versitygw"]).pipe(Effect.mapError(failed))
    const dir =
      options.logDir ??
      (yield* fs.makeTempDirectoryScoped({ prefix: "db-backup-operator-s3-" }).pipe(Effect.mapError(failed)))
    // The posix backend keeps buckets as directories, objects as files and their metadata in
    // extended attributes (the temporary directory's filesystem must support user xattrs).
    const dataDir = yield* fs
      .makeTempDirectoryScoped({ prefix: "db-backup-operator-s3-data-" })
      .pipe(Effect.mapError(failed))
    const port = yield* freePort.pipe(Effect.mapError(failed))
    const endpoint = `http://${host}:${port}`
    const accessKeyId = `AK${randomBytes(9).toString("hex").toUpperCase()}`
    const secretAccessKey = randomBytes(30).toString("base64url")

    const server = yield* startDaemon({
      name: "versitygw",
      dir,
      command: versitygw,
      // The root credentials go through the environment: arguments are visible in `ps`.
      args: ["--port", `${host}:${port}`, "--region", region, "posix", dataDir],
      env: { ROOT_ACCESS_KEY_ID: accessKeyId, ROOT_SECRET_ACCESS_KEY: secretAccessKey }
    }).pipe(Effect.mapError(failed))

    const client = yield* Effect.acquireRelease(
      Effect.sync(
        () =>
          new S3Client({
            endpoint,
            region,
            forcePathStyle: true,
            credentials: { accessKeyId, secretAccessKey },
            // Readiness probes and test setup: no retries, an unanswered connection fails fast.
            maxAttempts: 1,
            requestHandler: { connectionTimeout: 2_000, requestTimeout: 10_000 }
          })
      ),
      (client) => Effect.sync(() => client.destroy())
    )

    // Ready once a signed request is answered: the server listens and takes these credentials.
    yield* waitUntilReady(
      server.ensureRunning.pipe(
        Effect.mapError(failed),
        Effect.andThen(
          Effect.tryPromise({
            try: (signal) => client.send(new ListBucketsCommand({}), { abortSignal: signal }),
            catch: (error) => new NotReady({ reason: `ListBuckets: ${errorText(error)}` })
          })
        )
      ),
      {
        timeout: Duration.seconds(30),
        onTimeout: (reason) => new S3ServerError({ message: `versitygw not ready after 30 seconds: ${reason}` })
      }
    )

    const createBucket = (name: string): Effect.Effect<void, S3ServerError> =>
      Effect.tryPromise({
        try: (signal) => client.send(new CreateBucketCommand({ Bucket: name }), { abortSignal: signal }),
        catch: (error) =>
          new S3ServerError({ message: `cannot create bucket ${name}: ${errorText(error)}`, cause: error })
      }).pipe(Effect.asVoid)

    for (const bucket of options.buckets ?? []) yield* createBucket(bucket)

    return S3Server.of({ endpoint, region, accessKeyId, secretAccessKey, createBucket })
  })

/**
 * An S3 server: versitygw (built and cached on first use) with its posix
 * backend on a temporary directory, on 127.0.0.1 at a random port, plain HTTP,
 * path-style addressing, one root account with random credentials. Stopped and
 * its data deleted when the layer is released.
 *
 * @example
 * ```ts
 * const program = Effect.gen(function* () {
 *   const s3 = yield* S3Server
 *   yield* s3.createBucket("backups")
 *   // new S3Client({ endpoint: s3.endpoint, region: s3.region, forcePathStyle: true,
 *   //   credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } })
 * }).pipe(Effect.provide(S3Server.layer))
 * ```
 */
export class S3Server extends Context.Service<S3Server, S3ServerShape>()("@db-backup-operator/testing/S3Server") {
  /** The server with its log in a temporary directory. */
  static readonly layer: Layer.Layer<S3Server, S3ServerError> = Layer.effect(S3Server, make({})).pipe(
    Layer.provide(NodeServices.layer)
  )

  /** The server with options (where its log goes, buckets to create). */
  static readonly layerWith = (options: S3ServerOptions): Layer.Layer<S3Server, S3ServerError> =>
    Layer.effect(S3Server, make(options)).pipe(Layer.provide(NodeServices.layer))
}
