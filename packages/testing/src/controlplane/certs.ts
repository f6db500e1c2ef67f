import { generateKeyPair } from "node:crypto"
import { mkdir, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { Effect } from "effect"
import type { ChildProcessSpawner } from "effect/process"
import { clientExtensions, createCertificateAuthority, issueCertificate, serverExtensions } from "../tls/pki.ts"
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

const io = <A>(what: string, run: () => Promise<A>) =>
  Effect.tryPromise({
    try: run,
    catch: (cause) => new ControlPlaneError({ message: `${what}: ${String(cause)}`, cause })
  })

/**
 * Generates a CA, a serving certificate, an admin client certificate
 * (`O=system:masters`), kube-apiserver's kubelet client certificate and a
 * service-account RSA key pair into `dir`, using the test PKI (`openssl`) for
 * certificates and `node:crypto` for the RSA key. Keys are written with mode 0600.
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
    const ca = yield* createCertificateAuthority({ dir, commonName: "kube-testenv-ca" }).pipe(
      Effect.mapError(controlPlaneError("openssl cannot create the CA"))
    )

    const [serving, client, kubeletClient, serviceAccount] = yield* Effect.all(
      [
        issueCertificate(ca, {
          dir,
          name: "serving",
          subject: "/CN=kube-apiserver",
          extensions: serverExtensions([
            "IP:127.0.0.1",
            "IP:10.0.0.1",
            "DNS:localhost",
            "DNS:kubernetes",
            "DNS:kubernetes.default",
            "DNS:kubernetes.default.svc",
            "DNS:kubernetes.default.svc.cluster.local"
          ])
        }),
        issueCertificate(ca, {
          dir,
          name: "admin",
          subject: "/O=system:masters/CN=kube-testenv-admin",
          extensions: clientExtensions
        }),
        issueCertificate(ca, {
          dir,
          name: "kubelet-client",
          subject: "/CN=kube-apiserver-kubelet-client",
          extensions: clientExtensions
        }),
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
    })
    return {
      caCertFile: ca.certFile,
      caKeyFile: ca.keyFile,
      servingCertFile: serving.certFile,
      servingKeyFile: serving.keyFile,
      clientCertFile: client.certFile,
      clientKeyFile: client.keyFile,
      kubeletClientCertFile: kubeletClient.certFile,
      kubeletClientKeyFile: kubeletClient.keyFile,
      serviceAccountKeyFile,
      serviceAccountPublicKeyFile,
      caPem: ca.certPem,
      clientCertPem: client.certPem,
      clientKeyPem: client.keyPem
    }
  })
