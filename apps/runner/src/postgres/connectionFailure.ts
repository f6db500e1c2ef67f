import { Tls } from "@db-backup-operator/backup-api/contract"

/**
 * libpq's refusals that protect the password, turned into one line that says
 * what happened, that the password was not sent, and which field of the
 * BackupDatabaseSchema to change. libpq's own text is kept at the end.
 */

/** The TLS side of a connection attempt, as far as the explanations need it. */
export interface ConnectionTls {
  readonly sslMode: Tls.SslMode
  /** Where the trusted CA came from (see `rootCertSource`). */
  readonly rootCert: "file" | "system" | "none"
  readonly allowCleartextPassword: boolean
}

/** Which protection stopped the connection. */
export type Refusal = "NoTls" | "CertificateNotTrusted" | "HostNameMismatch" | "CleartextPassword"

/**
 * Recognizes libpq's refusal in a tool's error line (libpq 15 to 17 wording).
 *
 * @example
 * ```ts
 * refusalOf('connection to server at "db" (10.0.0.1), port 5432 failed: server does not support SSL, but SSL was required') // "NoTls"
 * refusalOf('... failed: password authentication failed for user "u"') // undefined
 * ```
 */
export const refusalOf = (reason: string): Refusal | undefined => {
  if (/server does not support SSL, but SSL was required/u.test(reason)) return "NoTls"
  if (/certificate verify failed/u.test(reason)) return "CertificateNotTrusted"
  if (
    /server certificate for .* does not match host name|could not get server's host name from server certificate/u.test(
      reason
    )
  ) {
    return "HostNameMismatch"
  }
  if (/authentication method requirement "!password" failed|server requested a cleartext password/u.test(reason)) {
    return "CleartextPassword"
  }
  return undefined
}

const notSent = "the password was not sent"

const cleartextAdvice = (tls: ConnectionTls): string =>
  tls.allowCleartextPassword
    ? `The operator allows cleartext passwords (--allow-cleartext-password) only on an encrypted connection, and spec.sslMode ${tls.sslMode} does not guarantee one: set spec.sslMode to require or stricter (verify-full is best)`
    : "If the server authenticates with LDAP, PAM, RADIUS or a cloud IAM token, set spec.sslMode to require or stricter (verify-full is best) and start the operator with --allow-cleartext-password; otherwise check that spec.dbHost names your database server"

/**
 * The explanation of a refused connection, or `undefined` when `reason` is no
 * such refusal (then the caller keeps libpq's reason as it is).
 *
 * @example
 * ```ts
 * explainConnectionFailure('... failed: SSL error: certificate verify failed', { sslMode: "verify-full", rootCert: "file", allowCleartextPassword: false })
 * // "the server's TLS certificate is not signed by the CA in spec.sslRootCert; the password was not sent. Set spec.sslRootCert to the CA
 * //  that issued the server's certificate, or check that spec.dbHost names your database server (libpq: ... certificate verify failed)"
 * ```
 */
export const explainConnectionFailure = (reason: string, tls: ConnectionTls): string | undefined => {
  const libpq = `(libpq: ${reason})`
  switch (refusalOf(reason)) {
    case "NoTls":
      return `the server does not accept TLS, but spec.sslMode ${tls.sslMode} requires it; ${notSent}. Enable TLS on the server, or check that spec.dbHost names your database server ${libpq}`
    case "CertificateNotTrusted": {
      const trusted =
        tls.rootCert === "file"
          ? "the CA in spec.sslRootCert"
          : tls.rootCert === "system"
            ? "any of the system's trusted CAs (spec.sslRootCert is not set)"
            : "a trusted CA"
      return `the server's TLS certificate is not signed by ${trusted}; ${notSent}. Set spec.sslRootCert to the CA that issued the server's certificate, or check that spec.dbHost names your database server ${libpq}`
    }
    case "HostNameMismatch":
      return `the server's TLS certificate is not issued for the host name in spec.dbHost; ${notSent}. Set spec.dbHost to a name the certificate carries${
        tls.sslMode === "verify-full" ? " (spec.sslMode verify-ca checks the CA but not the name)" : ""
      } ${libpq}`
    case "CleartextPassword":
      return `the server asked for the password in cleartext, which the runner refuses${
        tls.allowCleartextPassword && !Tls.guaranteesEncryption(tls.sslMode)
          ? " on a connection that may be unencrypted"
          : ""
      }; ${notSent}. ${cleartextAdvice(tls)} ${libpq}`
    case undefined:
      return undefined
  }
}
