import {
  type BackupManifest,
  contentTypeOf,
  decodeManifest,
  encodeManifest,
  type RunnerContract,
  StorageLocation,
  Tls
} from "@db-backup-operator/backup-api/contract"
import { ObjectStore } from "@db-backup-operator/storage"
import { type Duration, Effect, type FileSystem, Option, type Path, type Redacted } from "effect"
import type { ChildProcessSpawner } from "effect/process"
import { defaultZstdLevel } from "./compress.ts"
import { encryptionMetadata, type Recipients } from "./encrypt.ts"
import { type BackupError, Stopped, ToolUnavailable, UploadFailed, VerificationFailed } from "./errors.ts"
import { oneLine } from "./oneLine.ts"
import { dumpInto } from "./pipeline.ts"
import { pgDumpArgs } from "./postgres/commands.ts"
import { type ConnectionTls, explainConnectionFailure } from "./postgres/connectionFailure.ts"
import { libpqEnv, oldLibpqWarning, requireAuthSince, rootCertSource, toolsMajorOf } from "./postgres/libpq.ts"
import { writeRootCert } from "./postgres/rootCert.ts"
import { exportSnapshot } from "./postgres/snapshot.ts"
import { discoverPgDumps, psqlBeside, selectPgDump, serverVersionNum } from "./postgres/tools.ts"
import { majorOf, type PgDumpCandidate } from "./postgres/version.ts"
import { makeCounters, progressFields, reportProgress } from "./progress.ts"

/** Knobs for tests and benchmarks; production uses the defaults. */
export interface BackupOptions {
  /** Where to look for `<major>/bin/pg_dump` (default `/usr/lib/postgresql`). */
  readonly toolRoots?: ReadonlyArray<string>
  /** How often progress is logged (default 5 seconds). */
  readonly progressInterval?: Duration.Input
  /**
   * Completes when the run is asked to stop (the runner's SIGTERM: its Pod
   * deleted or evicted). Before the dump is stored, the run stops and fails
   * with `Stopped`; after, it writes and verifies the manifest first, so a
   * stored dump never stays without its manifest. Default: never.
   */
  readonly stopRequested?: Effect.Effect<void> | undefined
}

/**
 * What the Job hands the runner through `valueFrom` rather than the contract:
 * the password (`PGPASSWORD`, from a Secret) and the CA that the server's
 * certificate must chain to (`DB_SSL_ROOT_CERT`, from `spec.sslRootCert`).
 */
export interface Credentials {
  readonly password: Redacted.Redacted<string>
  /** The CA's PEM, or `undefined` when the resource names none. */
  readonly sslRootCert?: string | undefined
  /** Public keys the dump is encrypted to (age), or `undefined` to store it unencrypted. */
  readonly encryptTo?: Recipients | undefined
}

/** A completed backup: both objects exist and the manifest describes the dump. */
export interface BackupResult {
  readonly location: string
  readonly manifestLocation: string
  readonly manifest: BackupManifest
}

/** Whether a manifest found at this run's manifest object describes this run's dump. */
const describesRun = (manifest: BackupManifest, contract: RunnerContract.Contract) =>
  manifest.resource.namespace === contract.resource.namespace &&
  manifest.resource.name === contract.resource.name &&
  manifest.bucket === contract.bucket &&
  manifest.object === contract.object &&
  (manifest.format ?? "plain") === contract.format &&
  manifest.compression === contract.compression &&
  manifest.host === contract.host &&
  manifest.port === contract.port &&
  manifest.database === contract.database &&
  manifest.schema === contract.schema &&
  (manifest.store ?? "gcs") === contract.store

/**
 * This run's backup, when an earlier attempt of its Job already stored it: the
 * run's manifest describes this run and its dump has the size the manifest
 * records. A Job starts a new Pod when one is lost (deleted, evicted, its node
 * gone), which may happen after the manifest was written. Dumping again would
 * replace a complete backup for nothing, and a second loss midway would leave
 * a dump its manifest does not describe. Anything else (no manifest, another
 * run's, a read that fails) means: dump.
 */
const storedEarlier = (
  store: ObjectStore["Service"],
  contract: RunnerContract.Contract
): Effect.Effect<Option.Option<BackupManifest>> =>
  Effect.gen(function* () {
    const text = Buffer.from(yield* store.read(contract.bucket, contract.manifestObject)).toString("utf8")
    const manifest = yield* decodeManifest(text)
    if (!describesRun(manifest, contract)) return Option.none()
    const dump = yield* store.stat(contract.bucket, contract.object)
    return dump.size === manifest.sizeBytes ? Option.some(manifest) : Option.none()
  }).pipe(
    Effect.catchTag("ObjectNotFound", () => Effect.succeedNone),
    Effect.catch((e) =>
      Effect.logInfo("cannot tell whether an earlier attempt stored this run's backup; dumping").pipe(
        Effect.annotateLogs({ error: oneLine(e.message) }),
        Effect.as(Option.none())
      )
    )
  )

const uploadFailed = (what: string) => (e: { readonly message: string }) =>
  new UploadFailed({ message: oneLine(`${what}: ${e.message}`) })

/**
 * One backup run: checks the server against the installed pg_dump, streams
 * the dump (a SQL script or a custom-format archive, as `contract.format`
 * says; gzip, sha256) into the dump object, then writes the manifest and
 * confirms both objects. On any failure nothing that looks complete is left:
 * an unfinished upload is aborted, and a dump whose manifest could not be
 * written is deleted.
 *
 * psql and pg_dump connect as `contract.sslMode` says, trusting the CA in
 * `credentials.sslRootCert` (written to a private temporary file for the
 * run), and never send the password in cleartext unless the operator allows
 * it and the connection is always encrypted (see `libpqEnv`).
 *
 * @example
 * ```ts
 * const contract = yield* RunnerContract.fromEnv(process.env)
 * const password = yield* RunnerContract.passwordFromEnv(process.env)
 * const sslRootCert = RunnerContract.sslRootCertFromEnv(process.env)
 * const result = yield* runBackup(contract, { password, sslRootCert }).pipe(Effect.provide(GcsObjectStore.layer()))
 * result.location // "gs://bucket/backups/ns/name/backup-20250304-050607.sql.gz"
 * ```
 */
export const runBackup = (
  contract: RunnerContract.Contract,
  credentials: Credentials,
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
    const store = yield* ObjectStore
    const location = store.url(contract.bucket, contract.object)
    const manifestLocation = store.url(contract.bucket, contract.manifestObject)
    // The CA file lives as long as this run (the scope around the whole backup).
    const rootCertFile =
      credentials.sslRootCert === undefined ? undefined : yield* writeRootCert(credentials.sslRootCert)
    const tls: ConnectionTls = {
      sslMode: contract.sslMode,
      rootCert: rootCertSource({ sslMode: contract.sslMode, rootCertFile }),
      allowCleartextPassword: contract.allowCleartextPassword
    }
    yield* Effect.logInfo("backup starting").pipe(
      Effect.annotateLogs({
        host: contract.host,
        port: contract.port,
        user: contract.user,
        database: contract.database,
        schema: contract.schema,
        location,
        format: contract.format,
        compression: contract.compression,
        encryptedTo: credentials.encryptTo === undefined ? "none" : credentials.encryptTo.join(","),
        sslMode: contract.sslMode,
        sslRootCert: tls.rootCert === "file" ? "spec.sslRootCert" : tls.rootCert,
        allowCleartextPassword: contract.allowCleartextPassword
      })
    )
    const earlier = yield* storedEarlier(store, contract)
    if (Option.isSome(earlier)) {
      yield* Effect.logInfo("backup already complete: an earlier attempt of this run stored it").pipe(
        Effect.annotateLogs({ location, manifest: manifestLocation, sha256: earlier.value.sha256 })
      )
      return { location, manifestLocation, manifest: earlier.value }
    }
    if (contract.allowCleartextPassword && !Tls.guaranteesEncryption(contract.sslMode)) {
      yield* Effect.logWarning(
        `cleartext passwords are allowed (--allow-cleartext-password) only on an encrypted connection, and spec.sslMode ${contract.sslMode} does not guarantee one: the runner still refuses to send the password in cleartext; set spec.sslMode to require or stricter`
      )
    }

    // Until the dump's upload commits, a stop request (SIGTERM) ends the run: the upload is aborted
    // and pg_dump ended, so nothing that looks complete is left. From the commit on, the run finishes
    // (manifest, verification) whatever comes: a stored dump without its manifest, or a complete
    // backup reported as failed, would be worse.
    const untilStopped = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.raceFirst(
        effect,
        Effect.andThen(
          options.stopRequested ?? Effect.never,
          Effect.fail(
            new Stopped({
              message:
                "stopped (SIGTERM) before the dump was stored: the upload was aborted, nothing of this run was kept"
            })
          )
        )
      )
    const envFor = (tool: PgDumpCandidate) =>
      Effect.fromResult(
        libpqEnv({
          password: credentials.password,
          sslMode: contract.sslMode,
          rootCertFile,
          allowCleartextPassword: contract.allowCleartextPassword,
          toolsMajor: toolsMajorOf(tool.versionNum)
        })
      )
    const warnIfOldLibpq = (tool: PgDumpCandidate) => {
      const warning = oldLibpqWarning({
        sslMode: contract.sslMode,
        allowCleartextPassword: contract.allowCleartextPassword,
        toolsMajor: toolsMajorOf(tool.versionNum),
        toolVersion: tool.versionText
      })
      return warning === undefined ? Effect.void : Effect.logWarning(warning)
    }

    const { serverVersion, tool, dumpEnv, newest } = yield* untilStopped(
      Effect.gen(function* () {
        const candidates = yield* discoverPgDumps(options.toolRoots)
        const newest = [...candidates].sort((a, b) => b.versionNum - a.versionNum)[0]
        if (newest === undefined) {
          return yield* new ToolUnavailable({
            message: "pg_dump is not installed (not on PATH, not under /usr/lib/postgresql)"
          })
        }
        // psql (the newest tools) connects first: warn before it does. pg_dump may be older (the server's
        // major); it warns only if psql did not already.
        yield* warnIfOldLibpq(newest)
        const serverVersion = yield* serverVersionNum(psqlBeside(newest.pgDump), connection, yield* envFor(newest), tls)
        const tool = yield* selectPgDump(candidates, serverVersion)
        if (toolsMajorOf(newest.versionNum) >= requireAuthSince) yield* warnIfOldLibpq(tool)
        const dumpEnv = yield* envFor(tool)
        yield* Effect.logInfo("pg_dump selected").pipe(
          Effect.annotateLogs({
            serverVersionNum: serverVersion,
            serverMajor: majorOf(serverVersion),
            pgDump: tool.pgDump,
            pgDumpVersion: tool.versionText
          })
        )

        // Before dumping (the server is known to answer): a location that does not exist, or that this
        // identity may not write to, fails the run now, not after the whole dump. Removing the check
        // object may be denied where writing is not (a create-only role): it is then left, and reused.
        const writeCheck = StorageLocation.writeCheckObject(contract.resource)
        yield* store.writeSmall(contract.bucket, writeCheck, new Uint8Array(0), { contentType: "text/plain" }).pipe(
          Effect.mapError(
            (e) =>
              new UploadFailed({
                message: oneLine(
                  `${store.url(contract.bucket, "").replace(/\/$/u, "")} cannot be written (checked before the dump): ${e.message}`
                )
              })
          )
        )
        yield* store
          .remove(contract.bucket, writeCheck)
          .pipe(
            Effect.catch((e) =>
              Effect.logInfo("the write check object stays (cannot remove it)").pipe(
                Effect.annotateLogs({ object: writeCheck, error: oneLine(e.message) })
              )
            )
          )
        return { serverVersion, tool, dumpEnv, newest }
      })
    )

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
          .upload(contract.bucket, contract.object, {
            contentType:
              credentials.encryptTo === undefined
                ? contentTypeOf(contract.compression, contract.format)
                : "application/octet-stream",
            metadata
          })
          .pipe(Effect.mapError(uploadFailed(`cannot start the upload of ${location}`)))
        yield* Effect.forkScoped(reportProgress(counters, options.progressInterval ?? "5 seconds"))
        // The dump and the row counts read one snapshot, so they agree even under concurrent writes.
        // Without one (a pooler in transaction mode, say) the dump goes on, without counts.
        const snapshot = yield* exportSnapshot({
          psql: psqlBeside(newest.pgDump),
          connection,
          env: yield* envFor(newest),
          schema: contract.schema
        }).pipe(
          Effect.catchTag("SnapshotUnavailable", (e) =>
            Effect.logWarning("the dump goes on without row counts").pipe(
              Effect.annotateLogs({ reason: e.message }),
              Effect.as(undefined)
            )
          )
        )
        const dump = yield* untilStopped(
          dumpInto({
            pgDump: tool.pgDump,
            args: pgDumpArgs(connection, contract.schema, { snapshot: snapshot?.id, format: contract.format }),
            env: dumpEnv,
            explainFailure: (reason) =>
              /no matching schemas were found/u.test(reason)
                ? `schema "${contract.schema}" (spec.dbSchema) does not exist in database "${contract.database}" (pg_dump: ${reason})`
                : explainConnectionFailure(reason, tls),
            compress:
              contract.compression === "gzip"
                ? { kind: "gzip", level: contract.gzipLevel }
                : contract.compression === "zstd"
                  ? { kind: "zstd", level: defaultZstdLevel }
                  : undefined,
            encryptTo: credentials.encryptTo,
            upload,
            counters
          })
        )
        // Committed: from here on the run finishes (see untilStopped).
        yield* upload.commit.pipe(Effect.mapError(uploadFailed(`cannot complete the upload of ${location}`)))
        const tables =
          snapshot === undefined
            ? undefined
            : yield* snapshot.tables.pipe(
                Effect.catchTag("SnapshotUnavailable", (e) =>
                  Effect.logWarning("the manifest records no row counts").pipe(
                    Effect.annotateLogs({ reason: e.message }),
                    Effect.as(undefined)
                  )
                )
              )
        return { ...dump, tables }
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
      format: contract.format,
      compression: contract.compression,
      host: contract.host,
      port: contract.port,
      database: contract.database,
      schema: contract.schema,
      store: contract.store,
      ...(credentials.encryptTo === undefined ? {} : { encryption: encryptionMetadata(credentials.encryptTo) }),
      ...(stored.tables === undefined ? {} : { tables: stored.tables }),
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
  }).pipe(Effect.scoped)
