import { Tls } from "@db-backup-operator/backup-api/contract"
import { type Redacted, Result } from "effect"
import { InvalidConfiguration } from "../errors.ts"

/**
 * How the PostgreSQL client tools connect: everything libpq needs goes in
 * through its environment variables (never arguments), decided here by one
 * pure function so every combination can be tested without a server.
 */

/**
 * The first libpq major that knows `require_auth` (`PGREQUIREAUTH`) and
 * `sslrootcert=system`. Older ones ignore `PGREQUIREAUTH` silently.
 */
export const requireAuthSince = 16

/** The PostgreSQL major whose client tools the runner image ships. */
export const imageToolsMajor = 17

/** What decides a client tool's libpq environment. */
export interface LibpqSettings {
  /** The database password (sent by libpq, never in arguments). */
  readonly password: Redacted.Redacted<string>
  readonly sslMode: Tls.SslMode
  /** The file holding the CA from `DB_SSL_ROOT_CERT`, if the Job has one. */
  readonly rootCertFile: string | undefined
  /** The operator's `--allow-cleartext-password`: only honoured on an encrypted connection. */
  readonly allowCleartextPassword: boolean
  /** Major version of the client tool, hence of its libpq (Debian links each to the newest libpq5 installed, never an older one). */
  readonly toolsMajor: number
}

/**
 * The variables a client tool gets. The runner's own `PG*` variables never
 * reach the tool (see `process.ts`), so these are all of libpq's settings.
 */
export type LibpqEnv = {
  readonly PGPASSWORD: Redacted.Redacted<string>
  readonly PGCONNECT_TIMEOUT: string
  readonly PGAPPNAME: string
  readonly PGSSLMODE: Tls.SslMode
  readonly PGSSLROOTCERT?: string
  readonly PGREQUIREAUTH?: string
}

/**
 * The major of a tool's version number.
 *
 * @example
 * ```ts
 * toolsMajorOf(170004) // 17
 * toolsMajorOf(90624) // 9
 * ```
 */
export const toolsMajorOf = (versionNum: number): number => Math.floor(versionNum / 10_000)

/**
 * Whether libpq must refuse a server's request for the password in cleartext
 * (`require_auth=!password`). A server asks for it for LDAP, PAM, RADIUS or
 * cloud IAM tokens, and so does a fake server phishing for it; it is allowed
 * only when the operator allows it and the connection is always encrypted.
 *
 * @example
 * ```ts
 * refusesCleartextPassword({ sslMode: "prefer", allowCleartextPassword: true }) // true
 * refusesCleartextPassword({ sslMode: "verify-full", allowCleartextPassword: true }) // false
 * ```
 */
export const refusesCleartextPassword = (settings: {
  readonly sslMode: Tls.SslMode
  readonly allowCleartextPassword: boolean
}): boolean => !(settings.allowCleartextPassword && Tls.guaranteesEncryption(settings.sslMode))

/** Where libpq takes the trusted CA from: the Job's CA file, the system's CAs, or nowhere (no verification). */
export const rootCertSource = (settings: {
  readonly sslMode: Tls.SslMode
  readonly rootCertFile: string | undefined
}): "file" | "system" | "none" =>
  settings.rootCertFile !== undefined ? "file" : Tls.verifiesServer(settings.sslMode) ? "system" : "none"

/**
 * The libpq environment of one client tool: the password, a connect timeout,
 * our application name, `PGSSLMODE`, the CA (`PGSSLROOTCERT`: the Job's CA
 * file, or `system` for a verifying mode without one), and `PGREQUIREAUTH=!password`
 * unless cleartext passwords are allowed on an always-encrypted connection.
 *
 * Fails when the server cannot be verified as asked: `verify-ca` without a CA
 * (libpq accepts the system's CAs only with `verify-full`, since any publicly
 * certified server would pass), or `verify-full` without a CA on tools older
 * than 16 (which cannot read the system's CAs).
 *
 * @example
 * ```ts
 * declare const password: Redacted.Redacted<string>
 * libpqEnv({ password, sslMode: "verify-full", rootCertFile: "/tmp/x/root.crt", allowCleartextPassword: false, toolsMajor: 17 })
 * // Success({ PGPASSWORD: <redacted>, PGCONNECT_TIMEOUT: "30", PGAPPNAME: "db-backup-runner",
 * //           PGSSLMODE: "verify-full", PGSSLROOTCERT: "/tmp/x/root.crt", PGREQUIREAUTH: "!password" })
 * ```
 */
export const libpqEnv = (settings: LibpqSettings): Result.Result<LibpqEnv, InvalidConfiguration> => {
  const source = rootCertSource(settings)
  if (source === "system" && settings.sslMode === "verify-ca") {
    return Result.fail(
      new InvalidConfiguration({
        message:
          "spec.sslMode is verify-ca but spec.sslRootCert is not set: verify-ca needs the CA that issued the server's certificate; set spec.sslRootCert, or use sslMode verify-full to check the server against the system's trusted CAs"
      })
    )
  }
  if (source === "system" && settings.toolsMajor < requireAuthSince) {
    return Result.fail(
      new InvalidConfiguration({
        message: `spec.sslMode is ${settings.sslMode} but spec.sslRootCert is not set, and the PostgreSQL ${settings.toolsMajor} client tools here cannot use the system's trusted CAs (libpq ${requireAuthSince} or newer can; the runner image ships ${imageToolsMajor}): set spec.sslRootCert to the CA that issued the server's certificate`
      })
    )
  }
  return Result.succeed({
    PGPASSWORD: settings.password,
    PGCONNECT_TIMEOUT: "30",
    PGAPPNAME: "db-backup-runner",
    PGSSLMODE: settings.sslMode,
    ...(source === "file" ? { PGSSLROOTCERT: settings.rootCertFile ?? "" } : {}),
    ...(source === "system" ? { PGSSLROOTCERT: "system" } : {}),
    ...(refusesCleartextPassword(settings) ? { PGREQUIREAUTH: "!password" } : {})
  })
}

/**
 * The warning for tools whose libpq ignores `PGREQUIREAUTH`, or `undefined`
 * when there is nothing to warn about (a new enough libpq, or cleartext
 * passwords allowed anyway).
 *
 * @example
 * ```ts
 * oldLibpqWarning({ sslMode: "prefer", allowCleartextPassword: false, toolsMajor: 15, toolVersion: "pg_dump (PostgreSQL) 15.18" })
 * // "the client tools here (pg_dump (PostgreSQL) 15.18) use libpq 15, which cannot refuse ..."
 * ```
 */
export const oldLibpqWarning = (settings: {
  readonly sslMode: Tls.SslMode
  readonly allowCleartextPassword: boolean
  readonly toolsMajor: number
  readonly toolVersion: string
}): string | undefined =>
  settings.toolsMajor >= requireAuthSince || !refusesCleartextPassword(settings)
    ? undefined
    : `the client tools here (${settings.toolVersion}) use libpq ${settings.toolsMajor}, which cannot refuse to send the password in cleartext (require_auth needs libpq ${requireAuthSince}): a server could obtain the password in cleartext unless spec.sslMode is require or stricter (it is ${settings.sslMode}); the runner image ships PostgreSQL ${imageToolsMajor} client tools`
