import { ConfigMap, KubeClient, type KubeError, Secret } from "@db-backup-operator/kube"
import { Data, Effect } from "effect"
import { expandReferences } from "./command.ts"
import type { NodeContainer, NodePod } from "./podSpec.ts"

/**
 * What the kubelet reports as `CreateContainerConfigError`: an env reference
 * to a Secret, ConfigMap or key that does not exist (and is not `optional`).
 * The container stays waiting and the kubelet retries.
 */
export class ContainerConfigError extends Data.TaggedError("ContainerConfigError")<{ readonly message: string }> {}

/** The kubelet's wording: `secret "x" not found`, as its secret manager reports it. */
const describeLookupError = (kind: "secret" | "configmap", name: string, error: KubeError): string =>
  error._tag === "NotFound" ? `${kind} "${name}" not found` : `cannot read ${kind} "${name}": ${error.message}`

const decodeBase64 = (value: string): string => Buffer.from(value, "base64").toString("utf8")

/** Reads one Secret or ConfigMap per resolution, however many variables use it. */
const makeLookups = (namespace: string) =>
  Effect.gen(function* () {
    const kube = yield* KubeClient
    const secrets = new Map<string, Effect.Effect<Readonly<Record<string, string>> | undefined, ContainerConfigError>>()
    const configMaps = new Map<
      string,
      Effect.Effect<Readonly<Record<string, string>> | undefined, ContainerConfigError>
    >()
    // undefined: the object does not exist (which an optional reference tolerates)
    const load = <A>(
      cache: Map<string, Effect.Effect<Readonly<Record<string, string>> | undefined, ContainerConfigError>>,
      kind: "secret" | "configmap",
      name: string,
      read: Effect.Effect<A, KubeError>,
      dataOf: (object: A) => Readonly<Record<string, string>>
    ) =>
      Effect.gen(function* () {
        const cached = cache.get(name)
        if (cached !== undefined) return yield* cached
        const loaded = yield* Effect.cached(
          read.pipe(
            Effect.map(dataOf),
            Effect.catchTag("NotFound", () => Effect.succeed(undefined)),
            Effect.mapError((error) => new ContainerConfigError({ message: describeLookupError(kind, name, error) }))
          )
        )
        cache.set(name, loaded)
        return yield* loaded
      })
    return {
      secret: (name: string) =>
        load(secrets, "secret", name, kube.get(Secret, name, { namespace }), (secret) => {
          const data: Record<string, string> = {}
          for (const [key, value] of Object.entries(secret.data ?? {})) data[key] = decodeBase64(value)
          return data
        }),
      configMap: (name: string) =>
        load(configMaps, "configmap", name, kube.get(ConfigMap, name, { namespace }), (map) => map.data ?? {})
    }
  })

/** The node's and the Pod's addresses, for `status.hostIP` and `status.podIP`. */
export interface PodAddresses {
  readonly hostIP: string
  /** Default: `hostIP`. */
  readonly podIP?: string | undefined
}

/**
 * The value of a `fieldRef` (the downward API fields a process node can know).
 *
 * @example
 * ```ts
 * fieldValue(pod, "status.podIP", { hostIP: "127.0.0.1", podIP: "127.93.1.1" }) // "127.93.1.1"
 * ```
 */
export const fieldValue = (pod: NodePod, fieldPath: string, addresses: PodAddresses): string | undefined => {
  const annotation = /^metadata\.(labels|annotations)\['(.+)'\]$/u.exec(fieldPath)
  if (annotation !== null) {
    const source = annotation[1] === "labels" ? pod.metadata.labels : pod.metadata.annotations
    return source?.[annotation[2] ?? ""] ?? ""
  }
  switch (fieldPath) {
    case "metadata.name":
      return pod.metadata.name ?? ""
    case "metadata.namespace":
      return pod.metadata.namespace ?? ""
    case "metadata.uid":
      return pod.metadata.uid ?? ""
    case "spec.nodeName":
      return pod.spec.nodeName ?? ""
    case "spec.serviceAccountName":
      return pod.spec.serviceAccountName ?? ""
    case "status.podIP":
    case "status.podIPs":
      return addresses.podIP ?? addresses.hostIP
    case "status.hostIP":
    case "status.hostIPs":
      return addresses.hostIP
    default:
      return undefined
  }
}

/** The kubelet accepts `envFrom` keys that are C identifiers (after the prefix); others are skipped. */
const envVarName = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/u

/**
 * Resolves a container's `env` like the kubelet: first `envFrom` (every key
 * of a Secret or ConfigMap, prefixed), then `env` in order, each literal value
 * expanded against the variables before it; `secretKeyRef` and
 * `configMapKeyRef` read live from the API (Secret data base64-decoded);
 * `fieldRef` from the Pod. A missing object or key that is not `optional`
 * fails with the kubelet's message.
 *
 * @example
 * ```ts
 * const env = yield* resolveEnv(pod, pod.spec.containers[0], { base: { PATH: "/usr/bin" }, hostIP: "127.0.0.1" })
 * ```
 */
export const resolveEnv = (
  pod: NodePod,
  container: NodeContainer,
  options: PodAddresses & { readonly base: Readonly<Record<string, string>> }
): Effect.Effect<Record<string, string>, ContainerConfigError, KubeClient> =>
  Effect.gen(function* () {
    const namespace = pod.metadata.namespace ?? "default"
    const lookups = yield* makeLookups(namespace)
    const env: Record<string, string> = { ...options.base }
    for (const source of container.envFrom ?? []) {
      const ref =
        source.secretRef !== undefined
          ? { ref: source.secretRef, lookup: lookups.secret, noun: "secret" }
          : source.configMapRef !== undefined
            ? { ref: source.configMapRef, lookup: lookups.configMap, noun: "configmap" }
            : undefined
      if (ref === undefined) continue
      const data = yield* ref.lookup(ref.ref.name)
      if (data === undefined) {
        if (ref.ref.optional === true) continue
        return yield* new ContainerConfigError({ message: `${ref.noun} "${ref.ref.name}" not found` })
      }
      for (const [key, value] of Object.entries(data)) {
        const name = `${source.prefix ?? ""}${key}`
        if (envVarName.test(name)) env[name] = value
      }
    }
    for (const variable of container.env ?? []) {
      const from = variable.valueFrom
      if (from === undefined) {
        env[variable.name] = expandReferences(variable.value ?? "", env)
        continue
      }
      const keyRef =
        from.secretKeyRef !== undefined
          ? { ref: from.secretKeyRef, lookup: lookups.secret, kind: "Secret", noun: "secret" }
          : from.configMapKeyRef !== undefined
            ? { ref: from.configMapKeyRef, lookup: lookups.configMap, kind: "ConfigMap", noun: "configmap" }
            : undefined
      if (keyRef !== undefined) {
        const { ref } = keyRef
        const data = yield* keyRef
          .lookup(ref.name)
          .pipe(Effect.catch((error) => (ref.optional === true ? Effect.succeed(undefined) : Effect.fail(error))))
        const value = data?.[ref.key]
        if (value !== undefined) env[variable.name] = value
        else if (ref.optional !== true) {
          // The kubelet's wording, so tests read like a real cluster's events.
          return yield* new ContainerConfigError({
            message:
              data === undefined
                ? `${keyRef.noun} "${ref.name}" not found`
                : `couldn't find key ${ref.key} in ${keyRef.kind} ${namespace}/${ref.name}`
          })
        }
        continue
      }
      if (from.fieldRef !== undefined) {
        const value = fieldValue(pod, from.fieldRef.fieldPath, options)
        if (value === undefined) {
          return yield* new ContainerConfigError({
            message: `unsupported fieldPath "${from.fieldRef.fieldPath}" in env ${variable.name}`
          })
        }
        env[variable.name] = value
        continue
      }
      // A valueFrom this node does not model (resourceFieldRef, fileKeyRef): the API
      // server accepted it, so it is valid; say so instead of running without it.
      return yield* new ContainerConfigError({
        message: `env ${variable.name}: unsupported valueFrom on this process node`
      })
    }
    return env
  })
