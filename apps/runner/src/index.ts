/**
 * The backup runner as a library: what `db-backup-runner` runs, for tests,
 * benchmarks and embedding.
 *
 * @example
 * ```ts
 * import { NodeServices } from "@effect/platform-node"
 * import { runFromEnv } from "@db-backup-operator/runner"
 * const exitCode = yield* runFromEnv(process.env).pipe(Effect.provide(NodeServices.layer))
 * ```
 */
export { type BackupOptions, type BackupResult, type Credentials, runBackup } from "./backup.ts"
export { ExitCode, runFromEnv } from "./cli.ts"
export { blockBytes, gzipMember, parallelGzip, toBlocks } from "./compress.ts"
export * from "./errors.ts"
export { reasonFromStderr } from "./oneLine.ts"
export { dbnameArg, exactSchemaPattern, pgDumpArgs, serverVersionArgs } from "./postgres/commands.ts"
export {
  type ConnectionTls,
  explainConnectionFailure,
  type Refusal,
  refusalOf
} from "./postgres/connectionFailure.ts"
export {
  imageToolsMajor,
  type LibpqEnv,
  type LibpqSettings,
  libpqEnv,
  oldLibpqWarning,
  refusesCleartextPassword,
  requireAuthSince,
  rootCertSource,
  toolsMajorOf
} from "./postgres/libpq.ts"
export { checkRootCertPem, writeRootCert } from "./postgres/rootCert.ts"
export { choosePgDump, majorKey, majorOf, parseServerVersionNum, parseToolVersion } from "./postgres/version.ts"
export { withoutInheritedLibpqVariables } from "./process.ts"
