import { createHash } from "node:crypto"
import type { Upload } from "@db-backup-operator/storage"
import { Effect, Fiber, Stream } from "effect"
import { blockBytes, defaultConcurrency, makeBlockPool, parallelGzip, parallelZstd } from "./compress.ts"
import { maxReadyBlocks, spawnDump } from "./dumpProcess.ts"
import { encryptStream, type Recipients } from "./encrypt.ts"
import { DumpFailed, UploadFailed } from "./errors.ts"
import { oneLine, reasonFromStderr } from "./oneLine.ts"
import type { ChildEnv } from "./process.ts"
import type { Counters } from "./progress.ts"

/** What was stored. */
export interface StoredDump {
  /** Bytes stored (compressed when compressed). */
  readonly sizeBytes: number
  /** SHA-256 of the stored bytes, hex. */
  readonly sha256: string
}

/** How to run the dump and where its bytes go. */
export interface DumpOptions {
  readonly pgDump: string
  readonly args: ReadonlyArray<string>
  /** libpq's settings; the runner's own `PG*` variables never reach pg_dump. */
  readonly env: ChildEnv
  /**
   * Turns pg_dump's error line into a clearer one when it is a refusal that
   * protected the password (TLS, cleartext); `undefined` keeps it as it is.
   */
  readonly explainFailure?: ((reason: string) => string | undefined) | undefined
  /** How the dump is compressed (gzip at a level 1-9, zstd at a level), or undefined for not at all. */
  readonly compress:
    | { readonly kind: "gzip"; readonly level: number }
    | { readonly kind: "zstd"; readonly level: number }
    | undefined
  /** age recipients to encrypt to, after compression; undefined: stored as compressed. */
  readonly encryptTo?: Recipients | undefined
  readonly upload: Upload
  readonly counters: Counters
}

/**
 * Streams pg_dump's stdout through gzip or zstd (optional), age encryption
 * (optional) and SHA-256 into the upload, with backpressure end to end: pg_dump is only read as fast as the
 * upload accepts, so memory stays bounded and nothing touches the disk.
 *
 * Succeeds only if pg_dump exited 0 after its last byte was handed over; the
 * caller commits the upload after that. On any failure the upload is left
 * uncommitted (its Scope aborts it) and pg_dump is killed with the Scope.
 */
export const dumpInto = (options: DumpOptions) =>
  Effect.gen(function* () {
    const { counters, upload } = options
    // Blocks go round: pg_dump's output is read into them, and a compressed block's buffer takes the next.
    const pool = makeBlockPool(blockBytes, defaultConcurrency + maxReadyBlocks + 2)
    const dump = yield* spawnDump({
      command: options.pgDump,
      args: options.args,
      env: options.env,
      pool,
      forceKillAfter: "10 seconds"
    })
    // stderr is drained concurrently (a full pipe would stall pg_dump); only its tail is kept.
    const stderr = yield* Effect.forkScoped(dump.stderr)

    const hash = createHash("sha256")
    const dumped = dump.output.pipe(
      Stream.tap((block) =>
        Effect.sync(() => {
          counters.dumped += block.byteLength
        })
      )
    )
    const compress = options.compress
    const onError = (e: Error) => new DumpFailed({ message: oneLine(`${compress?.kind ?? ""} failed: ${e.message}`) })
    const compressed =
      compress === undefined
        ? dumped
        : compress.kind === "gzip"
          ? dumped.pipe(parallelGzip({ level: compress.level, onError, pool }))
          : dumped.pipe(parallelZstd({ level: compress.level, onError, pool }))
    // The sha256 and size are of the stored bytes: encrypted, when encrypted.
    const stored =
      options.encryptTo === undefined
        ? compressed
        : compressed.pipe(
            encryptStream(options.encryptTo),
            Stream.mapError((e) =>
              e._tag === "EncryptionFailed" ? new DumpFailed({ message: oneLine(e.message) }) : e
            )
          )
    yield* stored.pipe(
      Stream.tap((chunk) =>
        Effect.sync(() => {
          hash.update(chunk)
          counters.stored += chunk.byteLength
        })
      ),
      Stream.run(upload.sink),
      Effect.catchTag("StorageError", (e) => Effect.fail(new UploadFailed({ message: oneLine(e.message) })))
    )

    const exitCode = yield* dump.exitCode
    if (exitCode !== 0) {
      const reason = reasonFromStderr(yield* Fiber.join(stderr)) ?? "no error output"
      const explained = options.explainFailure?.(reason)
      return yield* new DumpFailed({
        exitCode,
        message: oneLine(`pg_dump failed (exit code ${exitCode}): ${explained ?? reason}`)
      })
    }
    const warnings = (yield* Fiber.join(stderr)).trim()
    if (warnings !== "")
      yield* Effect.logWarning("pg_dump reported").pipe(Effect.annotateLogs({ stderr: oneLine(warnings) }))
    return { sizeBytes: counters.stored, sha256: hash.digest("hex") } satisfies StoredDump
  })
