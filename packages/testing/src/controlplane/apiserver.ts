import { join } from "node:path"
import { Duration, Effect, type FileSystem, type Path, type Scope } from "effect"
import { HttpClient } from "effect/http"
import type { ChildProcessSpawner } from "effect/process"
import { probeOk } from "../http.ts"
import { type NotReady, waitUntilReady } from "../poll.ts"
import { type Daemon, startDaemon } from "../process/Daemon.ts"
import { ControlPlaneError, controlPlaneError } from "./ControlPlaneError.ts"
import type { Certificates } from "./certs.ts"

/** How kube-apiserver is started. */
export interface ApiServerConfig {
  readonly binary: string
  /** Working directory (log, pid, `apiserver-certs/`). */
  readonly dir: string
  readonly port: number
  readonly etcdEndpoint: string
  readonly certs: Certificates
  /** Appended last, so they override ours. */
  readonly extraArgs: ReadonlyArray<string>
}

/**
 * kube-apiserver flags in the manner of envtest: loopback only, RBAC,
 * client-certificate admin, our serving certificate, service-account tokens
 * signed with our key, privileged pods allowed (the process node runs anything),
 * and kubelets (the process node's log endpoint) reached at their InternalIP
 * with a client certificate. Without `--kubelet-certificate-authority` the
 * API server does not verify kubelet serving certificates, so a node's
 * self-signed one is enough.
 */
export const apiServerArgs = (config: ApiServerConfig): ReadonlyArray<string> => [
  `--etcd-servers=${config.etcdEndpoint}`,
  `--cert-dir=${join(config.dir, "apiserver-certs")}`,
  `--tls-cert-file=${config.certs.servingCertFile}`,
  `--tls-private-key-file=${config.certs.servingKeyFile}`,
  `--client-ca-file=${config.certs.caCertFile}`,
  `--secure-port=${config.port}`,
  "--bind-address=127.0.0.1",
  "--advertise-address=127.0.0.1",
  // The endpoint reconciler refuses a loopback advertise address; nothing here routes 10.0.0.1 anyway.
  "--endpoint-reconciler-type=none",
  "--service-cluster-ip-range=10.0.0.0/24",
  "--authorization-mode=RBAC",
  "--service-account-issuer=https://kubernetes.default.svc",
  `--service-account-key-file=${config.certs.serviceAccountPublicKeyFile}`,
  `--service-account-signing-key-file=${config.certs.serviceAccountKeyFile}`,
  "--allow-privileged=true",
  // A process node's Hostname resolves nowhere; its InternalIP is 127.0.0.1.
  "--kubelet-preferred-address-types=InternalIP,Hostname",
  `--kubelet-client-certificate=${config.certs.kubeletClientCertFile}`,
  `--kubelet-client-key=${config.certs.kubeletClientKeyFile}`,
  ...config.extraArgs
]

/**
 * Starts kube-apiserver and waits until it is ready: `/readyz` polled every
 * 100 ms, then namespace `default` exists (the bootstrap controller made it).
 *
 * @example
 * ```ts
 * const daemon = yield* startApiServer({ binary, dir, port, etcdEndpoint, certs, extraArgs: [] })
 * ```
 */
export const startApiServer = (
  config: ApiServerConfig
): Effect.Effect<
  Daemon,
  ControlPlaneError,
  Scope.Scope | ChildProcessSpawner.ChildProcessSpawner | FileSystem.FileSystem | Path.Path | HttpClient.HttpClient
> =>
  Effect.gen(function* () {
    const server = `https://127.0.0.1:${config.port}`
    const daemon = yield* startDaemon({
      name: "kube-apiserver",
      dir: config.dir,
      command: config.binary,
      args: apiServerArgs(config)
    }).pipe(Effect.mapError(controlPlaneError("cannot start kube-apiserver")))
    const client = yield* HttpClient.HttpClient
    const whileRunning = <A>(probe: Effect.Effect<A, NotReady>) =>
      daemon.ensureRunning.pipe(Effect.mapError(controlPlaneError("kube-apiserver stopped")), Effect.andThen(probe))
    yield* waitUntilReady(whileRunning(probeOk(client, `${server}/readyz`)), {
      interval: Duration.millis(100),
      timeout: Duration.seconds(90),
      onTimeout: (reason) => new ControlPlaneError({ message: `kube-apiserver not ready after 90 seconds: ${reason}` })
    })
    yield* waitUntilReady(whileRunning(probeOk(client, `${server}/api/v1/namespaces/default`)), {
      interval: Duration.millis(100),
      timeout: Duration.seconds(30),
      onTimeout: (reason) => new ControlPlaneError({ message: `namespace default did not appear: ${reason}` })
    })
    return daemon
  })
