import { RunnerContract, StorageLocation } from "@db-backup-operator/backup-api/contract"
import { Effect, type FileSystem, type Path } from "effect"
import type { ChildProcessSpawner } from "effect/process"
import { type BackupOptions, type BackupResult, runBackup } from "./backup.ts"
import { listCatalog } from "./catalog.ts"
import { type InvalidRecipient, parseRecipients, type Recipients } from "./encrypt.ts"
import { InvalidConfiguration } from "./errors.ts"
import { ExitCode, reportFailure } from "./exitCode.ts"
import { applyRetention } from "./retention.ts"
import { storeLayer } from "./store.ts"
import { writeTerminationMessage } from "./terminationMessage.ts"

export { ExitCode } from "./exitCode.ts"

/**
 * The age recipients a run encrypts to: the resource's (`BACKUP_AGE_RECIPIENTS`)
 * and a Secret's (`BACKUP_AGE_RECIPIENTS_SECRET`). The controller names an
 * encrypted dump `….age`: such a run without a single recipient (an empty
 * Secret key, say) fails rather than store the dump in the clear.
 */
const recipientsFromEnv = (
  contract: RunnerContract.Contract,
  env: Readonly<Record<string, string | undefined>>
): Effect.Effect<Recipients | undefined, InvalidRecipient | InvalidConfiguration> => {
  const text = [contract.ageRecipients ?? "", env[RunnerContract.AGE_RECIPIENTS_SECRET_ENV] ?? ""].join("\n")
  const encrypted = contract.object.endsWith(StorageLocation.encryptedSuffix)
  if (encrypted) return parseRecipients(text)
  return text.trim() === ""
    ? Effect.succeed(undefined)
    : Effect.fail(
        new InvalidConfiguration({
          message: `age recipients are given but the dump object ${contract.object} is not named ${StorageLocation.encryptedSuffix}`
        })
      )
}

/** The fields of the success message every successful run has. */
const summaryOf = (backup: BackupResult) =>
  ({
    result: "Success",
    location: backup.location,
    manifest: backup.manifestLocation,
    sizeBytes: backup.manifest.sizeBytes,
    sha256: backup.manifest.sha256
  }) as const

/**
 * The whole program, from the environment to an exit code: reads the
 * contract, runs the backup, logs the outcome and writes the termination
 * message (on success a JSON line with the location, size, sha256, versions,
 * what retention did and the bucket's catalog of backups, see
 * `RunnerContract.encodeSuccessMessage`; on
 * failure one readable line with the reason). Never fails: every failure is an
 * exit code. A stop request (`options.stopRequested`, the first SIGTERM)
 * before the dump is stored aborts the upload and fails the run; after it,
 * the run finishes and reports the backup it stored. An earlier attempt's
 * complete backup of the same run is reported without dumping again. If
 * interrupted outright (a second SIGTERM), the upload is aborted and the
 * termination message says so.
 *
 * @example
 * ```ts
 * const code = yield* runFromEnv(process.env)
 * ```
 */
export const runFromEnv = (
  env: Readonly<Record<string, string | undefined>>,
  options: BackupOptions = {}
): Effect.Effect<number, never, ChildProcessSpawner.ChildProcessSpawner | FileSystem.FileSystem | Path.Path> => {
  const terminationPath =
    env[RunnerContract.EnvVar.terminationMessagePath] || RunnerContract.defaultTerminationMessagePath
  return Effect.gen(function* () {
    const contract = yield* RunnerContract.fromEnv(env)
    const password = yield* RunnerContract.passwordFromEnv(env)
    const sslRootCert = RunnerContract.sslRootCertFromEnv(env)
    const encryptTo = yield* recipientsFromEnv(contract, env)
    return yield* Effect.gen(function* () {
      const backup = yield* runBackup(contract, { password, sslRootCert, encryptTo }, options)
      // Only after a complete, verified backup: a failed run deletes nothing.
      const retention =
        contract.retention === undefined
          ? undefined
          : yield* applyRetention({
              bucket: contract.bucket,
              resource: contract.resource,
              current: contract.manifestObject,
              retention: contract.retention,
              timeZone: contract.timeZone ?? "UTC",
              now: Date.now(),
              // No more than the termination message can list.
              maxBackups: RunnerContract.deletedRunsRoom(summaryOf(backup))
            })
      // After retention: what the bucket holds now, for the controller to rebuild missing records from.
      const catalog = yield* listCatalog({ bucket: contract.bucket, resource: contract.resource })
      return { ...backup, retention, catalog }
    }).pipe(Effect.provide(storeLayer(contract, env)))
  }).pipe(
    Effect.catchTags({
      MissingEnvironmentVariable: (e) => Effect.fail(new InvalidConfiguration({ message: e.message })),
      InvalidEnvironmentVariable: (e) => Effect.fail(new InvalidConfiguration({ message: e.message })),
      InvalidRecipient: (e) => Effect.fail(new InvalidConfiguration({ message: `spec.encryption: ${e.message}` }))
    }),
    Effect.matchCauseEffect({
      onSuccess: (result) =>
        writeTerminationMessage(
          terminationPath,
          RunnerContract.encodeSuccessMessage({
            ...summaryOf(result),
            serverVersion: result.manifest.serverVersion,
            pgDumpVersion: result.manifest.pgDumpVersion,
            ...(result.retention === undefined
              ? {}
              : {
                  retainedBackups: result.retention.retained,
                  deletedBackups: result.retention.deleted,
                  deletedRuns: result.retention.deletedRuns,
                  ...(result.retention.error === undefined ? {} : { retentionError: result.retention.error })
                }),
            ...(result.catalog === undefined
              ? {}
              : { catalog: result.catalog.stamps, catalogSize: result.catalog.stamps.length })
          })
        ).pipe(Effect.as(ExitCode.success)),
      onFailure: (cause) =>
        reportFailure("backup", cause, (message) => writeTerminationMessage(terminationPath, message))
    }),
    Effect.onInterrupt(() =>
      Effect.logError("backup interrupted").pipe(
        Effect.andThen(
          writeTerminationMessage(
            terminationPath,
            "backup failed: interrupted (SIGTERM) before completion; the backup is incomplete"
          )
        )
      )
    )
  )
}
