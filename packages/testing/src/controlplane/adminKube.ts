import { type Connection, KubeClient, Namespace } from "@db-backup-operator/kube"
import { Effect, Layer, Random } from "effect"
import { ControlPlane } from "./ControlPlane.ts"

/**
 * A KubeClient for the control plane's admin identity (its kubeconfig).
 *
 * @example
 * ```ts
 * const Env = adminKube.pipe(Layer.provideMerge(ControlPlane.layer()))
 * ```
 */
export const adminKube: Layer.Layer<KubeClient, Connection.ConfigError, ControlPlane> = Layer.unwrap(
  ControlPlane.useSync((controlPlane) => KubeClient.layer({ _tag: "File", path: controlPlane.kubeconfigPath }))
)

/**
 * Creates a namespace with a random suffix, so each test has its own.
 *
 * @example
 * ```ts
 * const namespace = yield* freshNamespace("mgr")   // "mgr-1x3f9"
 * ```
 */
export const freshNamespace = (prefix: string) =>
  Effect.gen(function* () {
    const kube = yield* KubeClient
    const name = `${prefix}-${(yield* Random.nextIntBetween(0, 1_000_000)).toString(36)}`
    yield* kube.create(Namespace, { metadata: { name } })
    return name
  })
