import {
  type BackupManifest,
  contentTypeOf,
  encodeManifest,
  type RunnerContract,
  StorageLocation
} from "@db-backup-operator/backup-api/contract"
import { ObjectStore } from "@db-backup-operator/storage"
import { type Duration, Effect, type FileSystem, type Path, type Redacted } from "effect"
import type { ChildProcessSpawner } from "effect/process"
import { type BackupError, UploadFailed, VerificationFailed } from "./errors.ts"
import { oneLine } from "./oneLine.ts"
import { dumpInto } from "./pipeline.ts"
import { pgDumpArgs } from "./postgres/commands.ts"
import { discoverPgDumps, libpqEnv, psqlBeside, selectPgDump, serverVersionNum } from "./postgres/tools.ts"
import { majorOf } from "./postgres/version.ts"
import { makeCounters, progressFields, reportProgress } from "./progress.ts"

/** Knobs for tests and benchmarks; production uses the defaults. */
export interface BackupOptions {
  /** Where to look for `<major>/bin/pg_dump` (default `/usr/lib/postgresql`). */
  readonly toolRoots?: ReadonlyArray<string>
  /** How often progress is logged (default 5 seconds). */
  readonly progressInterval?: Duration.Input
}

/** A completed backup: both objects exist and the manifest describes the dump. */
export interface BackupResult {
  readonly location: string
  readonly manifestLocation: string
  readonly manifest: BackupManifest
}

const uploadFailed = (what: string) => (e: { readonly message: string }) =>
  new UploadFailed({ message: oneLine(`${what}: ${e.message}`) })

/**
 * One backup run: checks the server against the installed pg_dump, streams
 * the dump (gzip, sha256) into the dump object, then writes the manifest and
 * confirms both objects. On any failure nothing that looks complete is left:
 * an unfinished upload is aborted, and a dump whose manifest could not be
 * written is deleted.
 *
 * @example
 * ```ts
 * const contract = yield* RunnerContract.fromEnv(process.env)
 * const password = yield* RunnerContract.passwordFromEnv(process.env)
 * const result = yield* runBackup(contract, password).pipe(Effect.provide(GcsObjectStore.layer()))
 * result.location // "gs://bucket/backups/ns/name/backup-20250304-050607.sql.gz"
 * ```
 */
export const runBackup = (
  contract: RunnerContract.Contract,
  password: Redacted.Redacted<string>,
  options: BackupOptions = {}
): Effect.Effect<
  BackupResult,
  BackupError,
  ObjectStore | ChildProcessSpawner.ChildProcessSpawner | FileSystem.FileSystem | Path.Path
> =>
  Effect.gen(function* () {
    const startedAt = new Date()
    const connection = {
      host: contract.host,
      port: contract.port,
      user: contract.user,
      database: contract.database
    }
    const location = StorageLocation.gsUrl(contract.bucket, contract.object)
    const manifestLocation = StorageLocation.gsUrl(contract.bucket, contract.manifestObject)
    yield* Effect.logInfo("backup starting").pipe(
      Effect.annotateLogs({
        host: contract.host,
        port: contract.port,
        user: contract.user,
        database: contract.database,
        schema: contract.schema,
        location,
        compression: contract.compression
      })
    )

    const candidates = yield* discoverPgDumps(options.toolRoots)
    const newest = [...candidates].sort((a, b) => b.versionNum - a.versionNum)[0]
    const serverVersion = yield* serverVersionNum(psqlBeside(newest?.pgDump ?? "pg_dump"), connection, password)
    const tool = yield* selectPgDump(candidates, serverVersion)
    yield* Effect.logInfo("pg_dump selected").pipe(
      Effect.annotateLogs({
        serverVersionNum: serverVersion,
        serverMajor: majorOf(serverVersion),
        pgDump: tool.pgDump,
        pgDumpVersion: tool.versionText
      })
    )

    const store = yield* ObjectStore
    const metadata = {
      "backup-resource": `${contract.resource.namespace}/${contract.resource.name}`,
      "backup-database": contract.database,
      "backup-schema": contract.schema,
      "backup-manifest": contract.manifestObject
    }
    const counters = makeCounters()
    const dumpStarted = Date.now()
    const stored = yield* Effect.scoped(
      Effect.gen(function* () {
        const upload = yield* store
          .upload(contract.bucket, contract.object, { contentType: contentTypeOf(contract.compression), metadata })
          .pipe(Effect.mapError(uploadFailed(`cannot start the upload of ${location}`)))
        yield* Effect.forkScoped(reportProgress(counters, options.progressInterval ?? "5 seconds"))
        const dump = yield* dumpInto({
          pgDump: tool.pgDump,
          args: pgDumpArgs(connection, contract.schema),
          env: libpqEnv(password),
          gzipLevel: contract.compression === "gzip" ? contract.gzipLevel : undefined,
          upload,
          counters
        })
        yield* upload.commit.pipe(Effect.mapError(uploadFailed(`cannot complete the upload of ${location}`)))
        return dump
      })
    )
    const finishedAt = new Date()
    yield* Effect.logInfo("dump stored").pipe(
      Effect.annotateLogs({ ...progressFields(counters, Date.now() - dumpStarted), location, sha256: stored.sha256 })
    )

    const manifest: BackupManifest = {
      manifestVersion: 1,
      resource: contract.resource,
      bucket: contract.bucket,
      object: contract.object,
      sizeBytes: stored.sizeBytes,
      sha256: stored.sha256,
      compression: contract.compression,
      host: contract.host,
      port: contract.port,
      database: contract.database,
      schema: contract.schema,
      serverVersion: String(serverVersion),
      pgDumpVersion: tool.versionText,
      startedAt: startedAt.toISOString(),
      finishedAt: finishedAt.toISOString()
    }
    // A dump without its manifest is incomplete: if the manifest cannot be written, the dump goes too.
    const deleteDump = (why: string) =>
      store.remove(contract.bucket, contract.object).pipe(
        Effect.tap(() => Effect.logWarning(`deleted the dump object: ${why}`).pipe(Effect.annotateLogs({ location }))),
        Effect.catch((e) =>
          Effect.logError("cannot delete the incomplete dump object").pipe(
            Effect.annotateLogs({ location, error: oneLine(e.message) })
          )
        )
      )
    yield* store
      .writeSmall(contract.bucket, contract.manifestObject, encodeManifest(manifest), {
        contentType: "application/json",
        metadata
      })
      .pipe(
        Effect.mapError(uploadFailed(`cannot write the manifest ${manifestLocation}`)),
        Effect.tapError(() => deleteDump("its manifest could not be written"))
      )

    // Exit 0 only when both objects are really there, and the dump has the size we sent.
    const verify = Effect.gen(function* () {
      const dumpInfo = yield* store.stat(contract.bucket, contract.object)
      yield* store.stat(contract.bucket, contract.manifestObject)
      if (dumpInfo.size !== stored.sizeBytes) {
        return yield* new VerificationFailed({
          message: `${location} has ${dumpInfo.size} bytes but ${stored.sizeBytes} were uploaded`
        })
      }
    }).pipe(
      Effect.catchTags({
        ObjectNotFound: (e) => Effect.fail(new VerificationFailed({ message: oneLine(`after upload, ${e.message}`) })),
        StorageError: (e) =>
          Effect.fail(new VerificationFailed({ message: oneLine(`cannot verify the backup: ${e.message}`) }))
      })
    )
    yield* verify
    yield* Effect.logInfo("backup complete").pipe(
      Effect.annotateLogs({
        location,
        manifest: manifestLocation,
        sizeBytes: stored.sizeBytes,
        dumpedBytes: counters.dumped,
        sha256: stored.sha256,
        seconds: (finishedAt.getTime() - startedAt.getTime()) / 1000
      })
    )
    return { location, manifestLocation, manifest }
  })
