import { Schema } from "effect"

/**
 * Why a backup run failed. Every error's `message` is one readable line: it is
 * what lands in the container's termination message, so `kubectl describe pod`
 * and the controller show it as is.
 */

/** The contract (env vars) is unusable; carries the contract error's message. */
export class InvalidConfiguration extends Schema.TaggedError<InvalidConfiguration>()("InvalidConfiguration", {
  message: Schema.String
}) {}

/** The server could not be asked for its version (unreachable, wrong password, ...). */
export class ServerUnreachable extends Schema.TaggedError<ServerUnreachable>()("ServerUnreachable", {
  message: Schema.String
}) {}

/**
 * The server failed a check that protects the password: it offers no TLS
 * although `sslMode` requires it, its certificate is not signed by the trusted
 * CA or not issued for `dbHost`, or it asked for the password in cleartext.
 * In each case libpq stopped before sending the password.
 */
export class ServerNotTrusted extends Schema.TaggedError<ServerNotTrusted>()("ServerNotTrusted", {
  message: Schema.String
}) {}

/** A file the tools need (the CA for libpq) could not be written to the temporary directory. */
export class TemporaryFileError extends Schema.TaggedError<TemporaryFileError>()("TemporaryFileError", {
  message: Schema.String
}) {}

/** No installed pg_dump is at least as new as the server. */
export class PgDumpTooOld extends Schema.TaggedError<PgDumpTooOld>()("PgDumpTooOld", {
  serverVersion: Schema.String,
  available: Schema.Array(Schema.String),
  message: Schema.String
}) {}

/** pg_dump (or psql) is not installed or could not be started. */
export class ToolUnavailable extends Schema.TaggedError<ToolUnavailable>()("ToolUnavailable", {
  message: Schema.String
}) {}

/** pg_dump exited non-zero or was killed. */
export class DumpFailed extends Schema.TaggedError<DumpFailed>()("DumpFailed", {
  exitCode: Schema.optionalKey(Schema.Number),
  message: Schema.String
}) {}

/** Writing the dump or the manifest to the bucket failed. */
export class UploadFailed extends Schema.TaggedError<UploadFailed>()("UploadFailed", {
  message: Schema.String
}) {}

/** The objects written could not be confirmed in the bucket afterwards. */
export class VerificationFailed extends Schema.TaggedError<VerificationFailed>()("VerificationFailed", {
  message: Schema.String
}) {}

/** The run was asked to stop (SIGTERM: its Pod deleted or evicted) before its dump was stored. */
export class Stopped extends Schema.TaggedError<Stopped>()("Stopped", {
  message: Schema.String
}) {}

/** Any reason a backup run fails. */
/** The backup to restore is not there (no manifest, or no dump object). */
export class BackupNotFound extends Schema.TaggedError<BackupNotFound>()("BackupNotFound", {
  message: Schema.String
}) {}

/** The target already has the schema, and the restore was not told to replace it. */
export class SchemaExists extends Schema.TaggedError<SchemaExists>()("SchemaExists", {
  message: Schema.String
}) {}

/** Restoring failed (a statement, psql, the dump's bytes); nothing was committed. */
export class RestoreFailed extends Schema.TaggedError<RestoreFailed>()("RestoreFailed", {
  message: Schema.String
}) {}

export type BackupError =
  | InvalidConfiguration
  | ServerUnreachable
  | ServerNotTrusted
  | TemporaryFileError
  | PgDumpTooOld
  | ToolUnavailable
  | DumpFailed
  | UploadFailed
  | VerificationFailed
  | Stopped
