import { randomBytes } from "node:crypto"
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { Effect, FileSystem, Schema, type Scope } from "effect"
import type { ChildProcessSpawner } from "effect/process"
import { runChecked } from "../process/run.ts"

/**
 * A throwaway PKI for tests: a CA and leaf certificates it signs, made with the
 * `openssl` command (Node's crypto cannot issue certificates). EC P-256 keys,
 * ten years, written with mode 0600. Every call makes an unrelated CA, so a
 * second one is the "wrong CA" of a verification test.
 */

/** openssl failed, or the files could not be written or read. */
export class PkiError extends Schema.TaggedError<PkiError>()("PkiError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

/** A CA: its certificate (PEM, and as a file) and its key file. */
export interface CertificateAuthority {
  readonly certFile: string
  readonly keyFile: string
  readonly certPem: string
}

/** A leaf certificate signed by a {@link CertificateAuthority}. */
export interface IssuedCertificate {
  readonly certFile: string
  readonly keyFile: string
  readonly certPem: string
  readonly keyPem: string
}

const days = "3650"
const ecKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

const io = <A>(what: string, run: () => Promise<A>) =>
  Effect.tryPromise({
    try: run,
    catch: (cause) => new PkiError({ message: `${what}: ${String(cause)}`, cause })
  })

const opensslFailed = (what: string) => (cause: { readonly message: string }) =>
  new PkiError({ message: `${what}: ${cause.message}`, cause })

/**
 * The extensions of a TLS server certificate valid for `subjectAltNames`
 * (`IP:127.0.0.1`, `DNS:localhost`, ...).
 *
 * @example
 * ```ts
 * serverExtensions(["IP:127.0.0.1", "DNS:localhost"])
 * // [..., "extendedKeyUsage=serverAuth", "subjectAltName=IP:127.0.0.1,DNS:localhost"]
 * ```
 */
export const serverExtensions = (subjectAltNames: ReadonlyArray<string>): ReadonlyArray<string> => [
  "basicConstraints=critical,CA:FALSE",
  "keyUsage=critical,digitalSignature,keyEncipherment",
  "extendedKeyUsage=serverAuth",
  ...(subjectAltNames.length === 0 ? [] : [`subjectAltName=${subjectAltNames.join(",")}`])
]

/** The extensions of a TLS client certificate. */
export const clientExtensions: ReadonlyArray<string> = [
  "basicConstraints=critical,CA:FALSE",
  "keyUsage=critical,digitalSignature,keyEncipherment",
  "extendedKeyUsage=clientAuth"
]

/**
 * Creates a self-signed CA as `<dir>/<name>.crt` and `<dir>/<name>.key`
 * (`dir` is created with mode 0700 if missing).
 *
 * @example
 * ```ts
 * const ca = yield* createCertificateAuthority({ dir, commonName: "test-ca" })
 * ca.certFile // `${dir}/ca.crt`
 * ```
 */
export const createCertificateAuthority = (options: {
  readonly dir: string
  readonly commonName: string
  /** Base name of the files (default `ca`). */
  readonly name?: string | undefined
}): Effect.Effect<CertificateAuthority, PkiError, ChildProcessSpawner.ChildProcessSpawner> =>
  Effect.gen(function* () {
    const name = options.name ?? "ca"
    const certFile = join(options.dir, `${name}.crt`)
    const keyFile = join(options.dir, `${name}.key`)
    yield* io(`cannot create ${options.dir}`, () => mkdir(options.dir, { recursive: true, mode: 0o700 }))
    yield* runChecked("openssl", [
      "req",
      "-x509",
      ...ecKey,
      "-keyout",
      keyFile,
      "-out",
      certFile,
      "-days",
      days,
      "-sha256",
      "-subj",
      `/CN=${options.commonName}`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
    ]).pipe(Effect.mapError(opensslFailed("openssl cannot create the CA")))
    yield* io("cannot restrict the CA key", () => chmod(keyFile, 0o600))
    const certPem = yield* io("cannot read the CA certificate", () => readFile(certFile, "utf8"))
    return { certFile, keyFile, certPem }
  })

/**
 * Issues a leaf certificate signed by `ca` as `<dir>/<name>.crt` and
 * `<dir>/<name>.key` (key mode 0600): a CSR, then `openssl x509 -req` with the
 * extensions from a file (works with OpenSSL 1.1.1 and 3.x alike).
 *
 * @example
 * ```ts
 * const server = yield* issueCertificate(ca, {
 *   dir, name: "server", subject: "/CN=localhost", extensions: serverExtensions(["IP:127.0.0.1", "DNS:localhost"])
 * })
 * ```
 */
export const issueCertificate = (
  ca: CertificateAuthority,
  options: {
    readonly dir: string
    /** Base name of the files. */
    readonly name: string
    /** The subject, as openssl writes it: `/O=org/CN=name`. */
    readonly subject: string
    /** `openssl x509 -extfile` lines, e.g. {@link serverExtensions} or {@link clientExtensions}. */
    readonly extensions: ReadonlyArray<string>
  }
): Effect.Effect<IssuedCertificate, PkiError, ChildProcessSpawner.ChildProcessSpawner> =>
  Effect.gen(function* () {
    const keyFile = join(options.dir, `${options.name}.key`)
    const csr = join(options.dir, `${options.name}.csr`)
    const certFile = join(options.dir, `${options.name}.crt`)
    const ext = join(options.dir, `${options.name}.ext`)
    const failed = opensslFailed(`openssl cannot issue the ${options.name} certificate`)
    yield* runChecked("openssl", [
      "req",
      "-new",
      ...ecKey,
      "-keyout",
      keyFile,
      "-subj",
      options.subject,
      "-out",
      csr
    ]).pipe(Effect.mapError(failed))
    yield* io("cannot write the certificate extensions", () => writeFile(ext, `${options.extensions.join("\n")}\n`))
    yield* runChecked("openssl", [
      "x509",
      "-req",
      "-in",
      csr,
      "-CA",
      ca.certFile,
      "-CAkey",
      ca.keyFile,
      "-set_serial",
      `0x01${randomBytes(15).toString("hex")}`,
      "-days",
      days,
      "-sha256",
      "-extfile",
      ext,
      "-out",
      certFile
    ]).pipe(Effect.mapError(failed))
    yield* io(`cannot restrict the ${options.name} key`, () => chmod(keyFile, 0o600))
    const [certPem, keyPem] = yield* io(`cannot read the ${options.name} certificate`, () =>
      Promise.all([readFile(certFile, "utf8"), readFile(keyFile, "utf8")])
    )
    return { certFile, keyFile, certPem, keyPem }
  })

/** The subject alternative names of {@link TestPki.serverCertificate} unless told otherwise. */
export const loopbackNames: ReadonlyArray<string> = ["IP:127.0.0.1", "DNS:localhost"]

/** A CA in its own temporary directory, issuing server certificates. */
export interface TestPki {
  /** The directory holding every file (removed with the scope). */
  readonly dir: string
  readonly ca: CertificateAuthority
  /**
   * A server certificate for `subjectAltNames` (default {@link loopbackNames}),
   * with subject `CN=<commonName>` (default `localhost`), named `name` (default
   * `server`; give each certificate of one PKI its own name).
   */
  readonly serverCertificate: (options?: {
    readonly name?: string | undefined
    readonly commonName?: string | undefined
    readonly subjectAltNames?: ReadonlyArray<string> | undefined
  }) => Effect.Effect<IssuedCertificate, PkiError>
}

/**
 * A fresh test PKI in a temporary directory deleted when the scope closes.
 * Each call is a new, unrelated CA.
 *
 * @example
 * ```ts
 * const pki = yield* makeTestPki({ commonName: "db-ca" })
 * const other = yield* makeTestPki({ commonName: "someone-else" })   // the wrong CA
 * const server = yield* pki.serverCertificate()                       // 127.0.0.1 and localhost
 * ```
 */
export const makeTestPki = (
  options: { readonly commonName?: string | undefined } = {}
): Effect.Effect<TestPki, PkiError, FileSystem.FileSystem | ChildProcessSpawner.ChildProcessSpawner | Scope.Scope> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const dir = yield* fs
      .makeTempDirectoryScoped({ prefix: "db-backup-operator-pki-" })
      .pipe(Effect.mapError((cause) => new PkiError({ message: `cannot create a directory: ${cause.message}`, cause })))
    const ca = yield* createCertificateAuthority({
      dir,
      commonName: options.commonName ?? "db-backup-operator-test-ca"
    })
    const context = yield* Effect.context<ChildProcessSpawner.ChildProcessSpawner>()
    return {
      dir,
      ca,
      serverCertificate: (server = {}) =>
        issueCertificate(ca, {
          dir,
          name: server.name ?? "server",
          subject: `/CN=${server.commonName ?? "localhost"}`,
          extensions: serverExtensions(server.subjectAltNames ?? loopbackNames)
        }).pipe(Effect.provideContext(context))
    }
  })
