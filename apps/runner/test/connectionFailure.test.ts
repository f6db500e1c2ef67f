import { type ConnectionTls, explainConnectionFailure, refusalOf } from "@db-backup-operator/runner"
import { describe, expect, it } from "@effect/vitest"

const at = 'connection to server at "db.example.com" (10.0.0.7), port 5432 failed: '
const noTls = `${at}server does not support SSL, but SSL was required`
const untrusted = `${at}SSL error: certificate verify failed`
const misnamed = `${at}server certificate for "other.example.com" (and 1 other name) does not match host name "db.example.com"`
const cleartext = `${at}authentication method requirement "!password" failed: server requested a cleartext password`
const badPassword = `${at}FATAL: password authentication failed for user "app"`

const tls = (overrides: Partial<ConnectionTls> = {}): ConnectionTls => ({
  sslMode: "verify-full",
  rootCert: "file",
  allowCleartextPassword: false,
  ...overrides
})

describe("refusalOf", () => {
  it.each([
    [noTls, "NoTls"],
    [untrusted, "CertificateNotTrusted"],
    [
      `${at}SSL error: certificate verify failed: self-signed certificate in certificate chain`,
      "CertificateNotTrusted"
    ],
    [misnamed, "HostNameMismatch"],
    [`${at}server certificate for "db" does not match host name "10.0.0.7"`, "HostNameMismatch"],
    [`${at}could not get server's host name from server certificate`, "HostNameMismatch"],
    [cleartext, "CleartextPassword"],
    [badPassword, undefined],
    [`${at}Connection refused Is the server running on that host and accepting TCP/IP connections?`, undefined]
  ])("%s -> %s", (reason, refusal) => {
    expect(refusalOf(reason)).toBe(refusal)
  })
})

describe("explainConnectionFailure", () => {
  it.each<[string, string, ConnectionTls, string]>([
    [
      "a server without TLS under require",
      noTls,
      tls({ sslMode: "require", rootCert: "none" }),
      `the server does not accept TLS, but spec.sslMode require requires it; the password was not sent. Enable TLS on the server, or check that spec.dbHost names your database server (libpq: ${noTls})`
    ],
    [
      "a certificate from another CA",
      untrusted,
      tls(),
      `the server's TLS certificate is not signed by the CA in spec.sslRootCert; the password was not sent. Set spec.sslRootCert to the CA that issued the server's certificate, or check that spec.dbHost names your database server (libpq: ${untrusted})`
    ],
    [
      "a certificate no system CA signed",
      untrusted,
      tls({ rootCert: "system" }),
      `the server's TLS certificate is not signed by any of the system's trusted CAs (spec.sslRootCert is not set); the password was not sent. Set spec.sslRootCert to the CA that issued the server's certificate, or check that spec.dbHost names your database server (libpq: ${untrusted})`
    ],
    [
      "a certificate for another name",
      misnamed,
      tls(),
      `the server's TLS certificate is not issued for the host name in spec.dbHost; the password was not sent. Set spec.dbHost to a name the certificate carries (spec.sslMode verify-ca checks the CA but not the name) (libpq: ${misnamed})`
    ],
    [
      "a cleartext request on a maybe-unencrypted connection",
      cleartext,
      tls({ sslMode: "prefer", rootCert: "none" }),
      `the server asked for the password in cleartext, which the runner refuses; the password was not sent. If the server authenticates with LDAP, PAM, RADIUS or a cloud IAM token, set spec.sslMode to require or stricter (verify-full is best) and start the operator with --allow-cleartext-password; otherwise check that spec.dbHost names your database server (libpq: ${cleartext})`
    ],
    [
      "a cleartext request over TLS without the operator's permission",
      cleartext,
      tls(),
      `the server asked for the password in cleartext, which the runner refuses; the password was not sent. If the server authenticates with LDAP, PAM, RADIUS or a cloud IAM token, set spec.sslMode to require or stricter (verify-full is best) and start the operator with --allow-cleartext-password; otherwise check that spec.dbHost names your database server (libpq: ${cleartext})`
    ],
    [
      "a cleartext request when the operator allows it but the mode is too weak",
      cleartext,
      tls({ sslMode: "prefer", rootCert: "none", allowCleartextPassword: true }),
      `the server asked for the password in cleartext, which the runner refuses on a connection that may be unencrypted; the password was not sent. The operator allows cleartext passwords (--allow-cleartext-password) only on an encrypted connection, and spec.sslMode prefer does not guarantee one: set spec.sslMode to require or stricter (verify-full is best) (libpq: ${cleartext})`
    ]
  ])("explains %s", (_, reason, context, expected) => {
    const explained = explainConnectionFailure(reason, context)
    expect(explained).toBe(expected)
    expect(explained).not.toContain("\n")
  })

  it("leaves other failures to libpq's own words", () => {
    expect(explainConnectionFailure(badPassword, tls())).toBeUndefined()
  })
})
