import { X509Certificate } from "node:crypto"
import { RunnerContract } from "@db-backup-operator/backup-api/contract"
import { Effect, FileSystem, Path, Result, type Scope } from "effect"
import { InvalidConfiguration, TemporaryFileError } from "../errors.ts"
import { oneLine } from "../oneLine.ts"

/**
 * The CA that the database server's certificate must chain to arrives as PEM
 * text in `DB_SSL_ROOT_CERT` (from the ConfigMap or Secret key named in
 * `spec.sslRootCert`); libpq reads it from a file.
 */

// What OpenSSL's PEM reader accepts as a certificate for sslrootcert.
const block = /-----BEGIN ((?:TRUSTED |X509 )?CERTIFICATE)-----([\s\S]*?)-----END \1-----/gu

const invalid = (why: string) =>
  new InvalidConfiguration({
    message: `${RunnerContract.SSL_ROOT_CERT_ENV} (from spec.sslRootCert) ${why}: it must hold the PEM certificate of the CA that issued the database server's certificate ("-----BEGIN CERTIFICATE-----" ...)`
  })

/**
 * Checks that `pem` is one or more PEM certificates (a CA bundle) that parse,
 * and nothing else but whitespace. Errors never quote the content: whatever a
 * user put in the ConfigMap or Secret by mistake (a private key, say) stays
 * out of logs and status.
 *
 * @example
 * ```ts
 * declare const caPem: string
 * checkRootCertPem(caPem) // Success(1): one certificate
 * checkRootCertPem("not a cert") // Failure(InvalidConfiguration: "DB_SSL_ROOT_CERT (from spec.sslRootCert) has no PEM certificate: ...")
 * ```
 */
export const checkRootCertPem = (pem: string): Result.Result<number, InvalidConfiguration> => {
  const blocks = [...pem.matchAll(block)]
  if (blocks.length === 0) return Result.fail(invalid("has no PEM certificate"))
  if (pem.replace(block, "").trim() !== "") {
    return Result.fail(invalid("holds something besides PEM certificates"))
  }
  for (const [index, match] of blocks.entries()) {
    // X509Certificate reads the DER inside; relabelled, since it only knows "CERTIFICATE".
    const body = (match[2] ?? "").replace(/\s+/gu, "")
    try {
      new X509Certificate(`-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`)
    } catch {
      return Result.fail(invalid(`has a certificate that cannot be read (number ${index + 1} of ${blocks.length})`))
    }
  }
  return Result.succeed(blocks.length)
}

/**
 * Writes the CA (after {@link checkRootCertPem}) to `root.crt`, mode 0600, in
 * a temporary directory of its own (the container's root filesystem is
 * read-only; the temporary directory is a writable emptyDir), removed when the
 * scope closes. Returns the file's path for `PGSSLROOTCERT`.
 *
 * @example
 * ```ts
 * const rootCertFile = yield* writeRootCert(caPem) // "/tmp/db-backup-runner-Xy12ab/root.crt"
 * ```
 */
export const writeRootCert = (
  pem: string
): Effect.Effect<string, InvalidConfiguration | TemporaryFileError, FileSystem.FileSystem | Path.Path | Scope.Scope> =>
  Effect.gen(function* () {
    yield* Effect.fromResult(checkRootCertPem(pem))
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const cannotWrite = (e: { readonly message: string }) =>
      new TemporaryFileError({ message: oneLine(`cannot write the CA from spec.sslRootCert to a file: ${e.message}`) })
    const dir = yield* fs.makeTempDirectoryScoped({ prefix: "db-backup-runner-" }).pipe(Effect.mapError(cannotWrite))
    const file = path.join(dir, "root.crt")
    yield* fs
      .writeFileString(file, pem.endsWith("\n") ? pem : `${pem}\n`, { mode: 0o600 })
      .pipe(Effect.mapError(cannotWrite))
    return file
  })
