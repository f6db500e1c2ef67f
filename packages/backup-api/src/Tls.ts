import { Schema } from "effect"

/**
 * libpq's `sslmode`, from weakest to strictest. What each one stops:
 *
 * - `disable`, `allow`, `prefer`: nothing is guaranteed; a server (or anyone on the
 *   path) may decline TLS. The runner still refuses to send the password in
 *   cleartext on such a connection (libpq `require_auth=!password`).
 * - `require`: the connection is encrypted, so nobody on the path reads it; the
 *   server is not authenticated.
 * - `verify-ca`: the server's certificate is signed by the trusted CA.
 * - `verify-full`: and its name matches `dbHost`: the password reaches only that server.
 */
export const SslMode = Schema.Literals(["disable", "allow", "prefer", "require", "verify-ca", "verify-full"])
export type SslMode = typeof SslMode.Type

/** The mode of a resource that sets none: libpq's own default. */
export const defaultSslMode: SslMode = "prefer"

const rank: Readonly<Record<SslMode, number>> = {
  disable: 0,
  allow: 1,
  prefer: 2,
  require: 3,
  "verify-ca": 4,
  "verify-full": 5
}

/**
 * Whether `mode` is at least as strict as `minimum`.
 *
 * @example
 * ```ts
 * isAtLeast("verify-ca", "require") // true
 * isAtLeast("prefer", "require") // false
 * ```
 */
export const isAtLeast = (mode: SslMode, minimum: SslMode): boolean => rank[mode] >= rank[minimum]

/**
 * The stricter of two modes.
 *
 * @example
 * ```ts
 * strictest("prefer", "verify-full") // "verify-full"
 * ```
 */
export const strictest = (a: SslMode, b: SslMode): SslMode => (rank[a] >= rank[b] ? a : b)

/**
 * Whether every connection in this mode is encrypted (`require` and stricter).
 *
 * @example
 * ```ts
 * guaranteesEncryption("prefer") // false
 * ```
 */
export const guaranteesEncryption = (mode: SslMode): boolean => rank[mode] >= rank.require

/**
 * Whether this mode checks the server's certificate (and so needs a trusted CA).
 *
 * @example
 * ```ts
 * verifiesServer("verify-ca") // true
 * ```
 */
export const verifiesServer = (mode: SslMode): boolean => rank[mode] >= rank["verify-ca"]
