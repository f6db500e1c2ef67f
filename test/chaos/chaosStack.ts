import { ControlPlane, GcsEmulator } from "@db-backup-operator/testing"
import { NodeServices } from "@effect/platform-node"
import { Effect, FileSystem, Layer, Path, type PlatformError } from "effect"
import {
  controlPlaneLayer,
  type OperatorProcessOptions,
  type Stack,
  type StackError,
  stackLayer
} from "../stack/localStack.ts"
import { type FaultProxyError, HttpFaultProxy, TcpFaultProxy } from "./faultProxy.ts"

/**
 * The local stack of `npm run chaos` and its short profile: the usual one
 * (test/stack/localStack.ts) with two fault proxies in the operator's paths,
 * both passing everything through until a scenario turns its fault on:
 *
 * - the {@link HttpFaultProxy} in front of the GCS emulator, given to the
 *   operator as `--gcs-endpoint`, so the runner Jobs it creates upload
 *   through it (storeFaults.ts);
 * - the {@link TcpFaultProxy} in front of the API server, in the operator's
 *   kubeconfig only: the process node, kubectl and the test's own client
 *   talk to the API server directly (silentWatch.ts).
 */

/** Everything the chaos scenarios run against. */
export type ChaosStack = Stack | HttpFaultProxy | TcpFaultProxy

/** The store proxy, to the stack's GCS emulator. */
const storeProxy = Layer.effect(
  HttpFaultProxy,
  Effect.gen(function* () {
    const gcs = yield* GcsEmulator
    return yield* HttpFaultProxy.make({ target: gcs.endpoint })
  })
)

/** The API server proxy, to the control plane's API server. */
const apiServerProxy = Layer.effect(
  TcpFaultProxy,
  Effect.gen(function* () {
    const server = new URL((yield* ControlPlane).server)
    return yield* TcpFaultProxy.make({ host: server.hostname, port: Number(server.port) })
  })
)

/**
 * A copy of the control plane's admin kubeconfig whose server is the API
 * server proxy (same host, 127.0.0.1, so the serving certificate still fits).
 */
const proxiedKubeconfig = Effect.gen(function* () {
  const controlPlane = yield* ControlPlane
  const proxy = yield* TcpFaultProxy
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  const original = yield* fs.readFileString(controlPlane.kubeconfigPath)
  if (!original.includes(`server: ${controlPlane.server}`)) {
    return yield* Effect.die(new Error(`${controlPlane.kubeconfigPath} does not name ${controlPlane.server}`))
  }
  const file = path.join(controlPlane.dir, "kubeconfig-via-fault-proxy")
  const server = new URL(controlPlane.server)
  server.port = String(proxy.port)
  yield* fs.writeFileString(file, original.replaceAll(`server: ${controlPlane.server}`, `server: ${server.origin}`), {
    mode: 0o600
  })
  return file
})

/**
 * {@link stackLayer} with the operator behind the fault proxies (see the
 * module comment). The control plane and the emulator are built first, for
 * the proxies; the stack then reuses them (a layer is built once per build,
 * however often it appears), which is checked.
 *
 * @example
 * ```ts
 * const program = Effect.gen(function* () {
 *   const store = yield* HttpFaultProxy
 *   yield* store.inject({ _tag: "ServerError", status: 503 })
 * }).pipe(Effect.provide(chaosStackLayer({ runnerImage: "db-backup-runner:chaos" })))
 * ```
 */
export const chaosStackLayer = (
  options: OperatorProcessOptions
): Layer.Layer<ChaosStack, StackError | FaultProxyError | PlatformError.PlatformError> =>
  Layer.unwrap(
    Effect.gen(function* () {
      const controlPlane = yield* ControlPlane
      const gcs = yield* GcsEmulator
      const store = yield* HttpFaultProxy
      const kubeconfig = yield* proxiedKubeconfig
      const sameParts = Effect.gen(function* () {
        if ((yield* ControlPlane) !== controlPlane || (yield* GcsEmulator) !== gcs) {
          return yield* Effect.die(new Error("the stack built a control plane or an emulator of its own"))
        }
      })
      return Layer.effectDiscard(sameParts).pipe(
        Layer.provideMerge(stackLayer({ ...options, gcsEndpoint: store.url, kubeconfig }))
      )
    })
  ).pipe(
    Layer.provideMerge(Layer.merge(storeProxy, apiServerProxy)),
    Layer.provideMerge(Layer.merge(controlPlaneLayer, GcsEmulator.layer)),
    Layer.provide(NodeServices.layer)
  )
