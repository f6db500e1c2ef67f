import { Duration, Effect, type FileSystem, type Path, type Scope } from "effect"
import { HttpClient } from "effect/http"
import type { ChildProcessSpawner } from "effect/process"
import { probeOk } from "../http.ts"
import { waitUntilReady } from "../poll.ts"
import { freePort } from "../ports.ts"
import { type Daemon, startDaemon } from "../process/Daemon.ts"
import { ControlPlaneError, controlPlaneError } from "./ControlPlaneError.ts"
import type { Certificates } from "./certs.ts"

/**
 * The controllers tests need: Jobs, PersistentVolumeClaims bound to static
 * PersistentVolumes, Deployments (through ReplicaSets), garbage
 * collection, namespaces, service accounts and the `kube-root-ca.crt`
 * ConfigMap every namespace gets (the `ca.crt` of projected service-account
 * tokens). Pod GC and node lifecycle stay off: they would delete or evict the
 * process node's Pods.
 */
export const testControllers = [
  "job-controller",
  "persistentvolume-binder-controller",
  "deployment-controller",
  "replicaset-controller",
  "garbage-collector-controller",
  "namespace-controller",
  "serviceaccount-controller",
  "serviceaccount-token-controller",
  "root-ca-certificate-publisher-controller"
] as const

/**
 * Starts kube-controller-manager against the API server (admin kubeconfig),
 * serving its own `/healthz` on a random port with our serving certificate,
 * and waits until that answers.
 *
 * @example
 * ```ts
 * import type { Certificates } from "./certs.ts"
 * declare const binary: string, dir: string, kubeconfigPath: string, certs: Certificates
 * yield* startControllerManager({ binary, dir, kubeconfigPath, certs })
 * ```
 */
export const startControllerManager = (config: {
  readonly binary: string
  readonly dir: string
  readonly kubeconfigPath: string
  readonly certs: Certificates
  /** Further flags, appended after ours (so they win), e.g. `--kube-api-qps=100` for a load test. */
  readonly extraArgs?: ReadonlyArray<string> | undefined
}): Effect.Effect<
  Daemon,
  ControlPlaneError,
  Scope.Scope | ChildProcessSpawner.ChildProcessSpawner | FileSystem.FileSystem | Path.Path | HttpClient.HttpClient
> =>
  Effect.gen(function* () {
    const port = yield* freePort.pipe(Effect.mapError(controlPlaneError("no free port for kube-controller-manager")))
    const daemon = yield* startDaemon({
      name: "kube-controller-manager",
      dir: config.dir,
      command: config.binary,
      args: [
        `--kubeconfig=${config.kubeconfigPath}`,
        `--authentication-kubeconfig=${config.kubeconfigPath}`,
        `--authorization-kubeconfig=${config.kubeconfigPath}`,
        `--controllers=${testControllers.join(",")}`,
        "--leader-elect=false",
        "--use-service-account-credentials=false",
        `--service-account-private-key-file=${config.certs.serviceAccountKeyFile}`,
        `--root-ca-file=${config.certs.caCertFile}`,
        "--bind-address=127.0.0.1",
        `--secure-port=${port}`,
        `--tls-cert-file=${config.certs.servingCertFile}`,
        `--tls-private-key-file=${config.certs.servingKeyFile}`,
        ...(config.extraArgs ?? [])
      ]
    }).pipe(Effect.mapError(controlPlaneError("cannot start kube-controller-manager")))
    const client = yield* HttpClient.HttpClient
    yield* waitUntilReady(
      daemon.ensureRunning.pipe(
        Effect.mapError(controlPlaneError("kube-controller-manager stopped")),
        Effect.andThen(probeOk(client, `https://127.0.0.1:${port}/healthz`))
      ),
      {
        interval: Duration.millis(100),
        timeout: Duration.seconds(60),
        onTimeout: (reason) =>
          new ControlPlaneError({ message: `kube-controller-manager not healthy after 60 seconds: ${reason}` })
      }
    )
    return daemon
  })
