import { generateKeyPair, randomBytes } from "node:crypto"
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { Effect } from "effect"
import type { ChildProcessSpawner } from "effect/process"
import { runChecked } from "../process/run.ts"
import { ControlPlaneError, controlPlaneError } from "./ControlPlaneError.ts"

/** Files (and the PEMs clients need) of a throwaway control plane PKI. */
export interface Certificates {
  readonly caCertFile: string
  readonly caKeyFile: string
  /** kube-apiserver (and kube-controller-manager) serving cert: 127.0.0.1, localhost, kubernetes.default.svc, 10.0.0.1. */
  readonly servingCertFile: string
  readonly servingKeyFile: string
  /** Admin client cert: CN=kube-testenv-admin, O=system:masters. */
  readonly clientCertFile: string
  readonly clientKeyFile: string
  /** kube-apiserver's client cert towards kubelets (`kubectl logs`): CN=kube-apiserver-kubelet-client. */
  readonly kubeletClientCertFile: string
  readonly kubeletClientKeyFile: string
  /** Service account token signing key (RSA) and its public key. */
  readonly serviceAccountKeyFile: string
  readonly serviceAccountPublicKeyFile: string
  readonly caPem: string
  readonly clientCertPem: string
  readonly clientKeyPem: string
}

const days = "3650"
const ecKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

const io = <A>(what: string, run: () => Promise<A>) =>
  Effect.tryPromise({
    try: run,
    catch: (cause) => new ControlPlaneError({ message: `${what}: ${String(cause)}`, cause })
  })

// One leaf certificate signed by the CA: a CSR, then `x509 -req` with the extensions from a file
// (works with OpenSSL 1.1.1 and 3.x alike).
const signLeaf = (
  dir: string,
  name: string,
  subject: string,
  extensions: ReadonlyArray<string>,
  ca: { readonly cert: string; readonly key: string }
) =>
  Effect.gen(function* () {
    const key = join(dir, `${name}.key`)
    const csr = join(dir, `${name}.csr`)
    const cert = join(dir, `${name}.crt`)
    const ext = join(dir, `${name}.ext`)
    yield* runChecked("openssl", ["req", "-new", ...ecKey, "-keyout", key, "-subj", subject, "-out", csr])
    yield* io("write extensions", () => writeFile(ext, `${extensions.join("\n")}\n`))
    yield* runChecked("openssl", [
      "x509",
      "-req",
      "-in",
      csr,
      "-CA",
      ca.cert,
      "-CAkey",
      ca.key,
      "-set_serial",
      `0x01${randomBytes(15).toString("hex")}`,
      "-days",
      days,
      "-sha256",
      "-extfile",
      ext,
      "-out",
      cert
    ])
    return { cert, key }
  })

/**
 * Generates a CA, a serving certificate, an admin client certificate
 * (`O=system:masters`), kube-apiserver's kubelet client certificate and a
 * service-account RSA key pair into `dir`, using the
 * `openssl` command for certificates (Node's crypto cannot issue them) and
 * `node:crypto` for the RSA key. Keys are written with mode 0600.
 *
 * @example
 * ```ts
 * const certs = yield* generateCertificates(join(dir, "pki"))
 * ```
 */
export const generateCertificates = (
  dir: string
): Effect.Effect<Certificates, ControlPlaneError, ChildProcessSpawner.ChildProcessSpawner> =>
  Effect.gen(function* () {
    yield* io(`cannot create ${dir}`, () => mkdir(dir, { recursive: true, mode: 0o700 }))
    const ca = { cert: join(dir, "ca.crt"), key: join(dir, "ca.key") }
    yield* runChecked("openssl", [
      "req",
      "-x509",
      ...ecKey,
      "-keyout",
      ca.key,
      "-out",
      ca.cert,
      "-days",
      days,
      "-sha256",
      "-subj",
      "/CN=kube-testenv-ca",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
    ]).pipe(Effect.mapError(controlPlaneError("openssl cannot create the CA")))

    const [serving, client, kubeletClient, serviceAccount] = yield* Effect.all(
      [
        signLeaf(
          dir,
          "serving",
          "/CN=kube-apiserver",
          [
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            "extendedKeyUsage=serverAuth",
            "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
          ],
          ca
        ),
        signLeaf(
          dir,
          "admin",
          "/O=system:masters/CN=kube-testenv-admin",
          [
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            "extendedKeyUsage=clientAuth"
          ],
          ca
        ),
        signLeaf(
          dir,
          "kubelet-client",
          "/CN=kube-apiserver-kubelet-client",
          [
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            "extendedKeyUsage=clientAuth"
          ],
          ca
        ),
        Effect.callback<{ readonly privateKey: string; readonly publicKey: string }, ControlPlaneError>((resume) => {
          generateKeyPair(
            "rsa",
            {
              modulusLength: 2048,
              publicKeyEncoding: { type: "spki", format: "pem" },
              privateKeyEncoding: { type: "pkcs8", format: "pem" }
            },
            (error, publicKey, privateKey) =>
              resume(
                error === null
                  ? Effect.succeed({ privateKey, publicKey })
                  : Effect.fail(
                      new ControlPlaneError({ message: `cannot generate the service account key: ${error.message}` })
                    )
              )
          )
        })
      ],
      { concurrency: "unbounded" }
    ).pipe(Effect.mapError(controlPlaneError("cannot create certificates")))

    const serviceAccountKeyFile = join(dir, "service-account.key")
    const serviceAccountPublicKeyFile = join(dir, "service-account.pub")
    yield* io("write the service account key", async () => {
      await writeFile(serviceAccountKeyFile, serviceAccount.privateKey, { mode: 0o600 })
      await writeFile(serviceAccountPublicKeyFile, serviceAccount.publicKey)
      for (const key of [ca.key, serving.key, client.key, kubeletClient.key]) await chmod(key, 0o600)
    })
    const [caPem, clientCertPem, clientKeyPem] = yield* io("read certificates", () =>
      Promise.all([readFile(ca.cert, "utf8"), readFile(client.cert, "utf8"), readFile(client.key, "utf8")])
    )
    return {
      caCertFile: ca.cert,
      caKeyFile: ca.key,
      servingCertFile: serving.cert,
      servingKeyFile: serving.key,
      clientCertFile: client.cert,
      clientKeyFile: client.key,
      kubeletClientCertFile: kubeletClient.cert,
      kubeletClientKeyFile: kubeletClient.key,
      serviceAccountKeyFile,
      serviceAccountPublicKeyFile,
      caPem,
      clientCertPem,
      clientKeyPem
    }
  })
