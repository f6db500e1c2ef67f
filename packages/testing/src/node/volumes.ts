import { randomBytes } from "node:crypto"
import { chmod, mkdir, rename, writeFile } from "node:fs/promises"
import { dirname, join, normalize } from "node:path"
import { ConfigMap, KubeClient, type KubeError, Resource, Secret } from "@db-backup-operator/kube"
import { Duration, Effect, Schedule, Schema, type Scope } from "effect"
import { fieldValue, type PodAddresses } from "./env.ts"
import type { DownwardAPIFile, KeyToPath, NodePod, NodeVolume, VolumeProjection } from "./podSpec.ts"
import { ContainerWaiting, type Mount } from "./runtime.ts"

/** A Pod volume as a host directory. */
export interface PodVolume {
  readonly hostPath: string
  /** Secret, ConfigMap, downward API and projected volumes are always read-only, as the kubelet mounts them. */
  readonly readOnly: boolean
  /** An emptyDir: a missing `subPath` directory in it is created. */
  readonly writable: boolean
}

/** One file of a volume, before it is written. */
interface VolumeFile {
  readonly path: string
  readonly content: Uint8Array
  readonly mode: number
}

/** The kubelet's default file mode of Secret, ConfigMap, downward API and projected volumes (0644). */
const defaultFileMode = 0o644

/** The kubelet's default token lifetime when a projection names none. */
const defaultTokenSeconds = 3600

const waiting = (volume: string, message: string) =>
  new ContainerWaiting({
    reason: "ContainerCreating",
    message: `MountVolume.SetUp failed for volume "${volume}" : ${message}`
  })

const io = <A>(volume: string, what: string, run: () => Promise<A>) =>
  Effect.tryPromise({ try: run, catch: (cause) => waiting(volume, `${what}: ${String(cause)}`) })

/**
 * Writes the files of a volume: each to a temporary name, then renamed, so a
 * reader (a token refresh under a running container) never sees half a file.
 */
const writeFiles = (volume: string, dir: string, files: ReadonlyArray<VolumeFile>) =>
  Effect.forEach(
    files,
    (file) => {
      const target = normalize(join(dir, file.path))
      if (!target.startsWith(`${dir}/`)) return Effect.fail(waiting(volume, `invalid path ${file.path}`))
      return io(volume, `cannot write ${file.path}`, async () => {
        await mkdir(dirname(target), { recursive: true, mode: 0o755 })
        const temporary = `${target}.${randomBytes(6).toString("hex")}.tmp`
        await writeFile(temporary, file.content)
        await chmod(temporary, file.mode)
        await rename(temporary, target)
      })
    },
    { discard: true }
  )

/** The keys of a Secret or ConfigMap as files: all of them, or the `items` (each must exist). */
const keyFiles = (
  volume: string,
  kind: "secret" | "configmap",
  data: Readonly<Record<string, Uint8Array>>,
  items: ReadonlyArray<KeyToPath> | undefined,
  mode: number
): Effect.Effect<ReadonlyArray<VolumeFile>, ContainerWaiting> => {
  if (items === undefined) {
    return Effect.succeed(Object.entries(data).map(([key, content]) => ({ path: key, content, mode })))
  }
  const files: Array<VolumeFile> = []
  for (const item of items) {
    const content = data[item.key]
    if (content === undefined) {
      return Effect.fail(
        waiting(
          volume,
          kind === "secret"
            ? `references non-existent secret key: ${item.key}`
            : `configmap references non-existent config key: ${item.key}`
        )
      )
    }
    files.push({ path: item.path, content, mode: item.mode ?? mode })
  }
  return Effect.succeed(files)
}

/** core/v1 PersistentVolumeClaim: only what the node needs to find its volume. */
const PersistentVolumeClaim = Resource.make({
  group: "",
  version: "v1",
  kind: "PersistentVolumeClaim",
  plural: "persistentvolumeclaims",
  namespaced: true,
  fields: {
    spec: Schema.optionalKey(Schema.Struct({ volumeName: Schema.optionalKey(Schema.String) })),
    status: Schema.optionalKey(Schema.Struct({ phase: Schema.optionalKey(Schema.String) }))
  }
})

/** core/v1 PersistentVolume: the node mounts `hostPath` and `local` volumes (directories of this host). */
const PersistentVolume = Resource.make({
  group: "",
  version: "v1",
  kind: "PersistentVolume",
  plural: "persistentvolumes",
  namespaced: false,
  fields: {
    spec: Schema.optionalKey(
      Schema.Struct({
        hostPath: Schema.optionalKey(Schema.Struct({ path: Schema.String })),
        local: Schema.optionalKey(Schema.Struct({ path: Schema.String }))
      })
    )
  }
})

/**
 * The host directory of a claim's volume, once the claim is bound (as the
 * kubelet, which mounts only a bound claim's volume): a `hostPath` or `local`
 * PersistentVolume.
 */
const claimDirectory = (volume: string, namespace: string, claimName: string) =>
  Effect.gen(function* () {
    const kube = yield* KubeClient
    const failed = (error: KubeError) =>
      waiting(volume, `cannot read persistentvolumeclaim "${claimName}": ${error.message}`)
    const claim = yield* notFoundAsUndefined(kube.get(PersistentVolumeClaim, claimName, { namespace })).pipe(
      Effect.mapError(failed)
    )
    if (claim === undefined) return yield* waiting(volume, `persistentvolumeclaim "${claimName}" not found`)
    const volumeName = claim.spec?.volumeName
    if (claim.status?.phase !== "Bound" || volumeName === undefined) {
      return yield* waiting(volume, `persistentvolumeclaim "${claimName}" is not bound`)
    }
    const bound = yield* notFoundAsUndefined(kube.get(PersistentVolume, volumeName)).pipe(Effect.mapError(failed))
    const path = bound?.spec?.hostPath?.path ?? bound?.spec?.local?.path
    if (path === undefined) {
      return yield* waiting(
        volume,
        `persistentvolume "${volumeName}" is not a hostPath or local volume, which this process node cannot mount`
      )
    }
    return path
  })

const notFoundAsUndefined = <A>(effect: Effect.Effect<A, KubeError>) =>
  effect.pipe(Effect.catchTag("NotFound", () => Effect.succeed(undefined)))

const encoder = new TextEncoder()

/** A Secret's or ConfigMap's keys (undefined: it does not exist), as bytes. */
const objectData = (volume: string, kind: "secret" | "configmap", namespace: string, name: string) =>
  Effect.gen(function* () {
    const kube = yield* KubeClient
    const lookup =
      kind === "secret"
        ? Effect.map(notFoundAsUndefined(kube.get(Secret, name, { namespace })), (secret) =>
            secret === undefined
              ? undefined
              : Object.fromEntries(
                  Object.entries(secret.data ?? {}).map(([key, value]) => [key, Buffer.from(value, "base64")])
                )
          )
        : Effect.map(notFoundAsUndefined(kube.get(ConfigMap, name, { namespace })), (map) =>
            map === undefined
              ? undefined
              : Object.fromEntries(Object.entries(map.data ?? {}).map(([key, value]) => [key, encoder.encode(value)]))
          )
    return yield* lookup.pipe(
      Effect.mapError((error) => waiting(volume, `cannot read ${kind} "${name}": ${error.message}`))
    )
  })

/** Keys of a referenced Secret or ConfigMap as files; an optional object that is missing gives none. */
const objectFiles = (
  volume: string,
  kind: "secret" | "configmap",
  namespace: string,
  source: {
    readonly name?: string | undefined
    readonly items?: ReadonlyArray<KeyToPath>
    readonly optional?: boolean
  },
  mode: number
) =>
  Effect.gen(function* () {
    const name = source.name ?? ""
    const data = yield* objectData(volume, kind, namespace, name)
    if (data === undefined) {
      if (source.optional === true) return []
      return yield* waiting(volume, `${kind} "${name}" not found`)
    }
    return yield* keyFiles(volume, kind, data, source.items, mode)
  })

/** `metadata.labels` and `metadata.annotations` as the kubelet writes them: sorted `key="value"` lines. */
const formatMap = (map: Readonly<Record<string, string>> | undefined): string =>
  Object.keys(map ?? {})
    .sort()
    .map((key) => `${key}=${JSON.stringify(map?.[key] ?? "")}`)
    .join("\n")

const downwardFiles = (
  volume: string,
  pod: NodePod,
  items: ReadonlyArray<DownwardAPIFile>,
  addresses: PodAddresses,
  mode: number
): Effect.Effect<ReadonlyArray<VolumeFile>, ContainerWaiting> => {
  const files: Array<VolumeFile> = []
  for (const item of items) {
    const fieldPath = item.fieldRef?.fieldPath
    const value =
      fieldPath === "metadata.labels"
        ? formatMap(pod.metadata.labels)
        : fieldPath === "metadata.annotations"
          ? formatMap(pod.metadata.annotations)
          : fieldPath === undefined
            ? undefined
            : fieldValue(pod, fieldPath, addresses)
    if (value === undefined) {
      return Effect.fail(waiting(volume, `unsupported downward API item ${item.path} on this process node`))
    }
    files.push({ path: item.path, content: encoder.encode(value), mode: item.mode ?? mode })
  }
  return Effect.succeed(files)
}

const TokenRequestStatus = Schema.Struct({ status: Schema.Struct({ token: Schema.String }) })

/**
 * A token for the Pod's service account from the TokenRequest API, bound to
 * the Pod (so it dies with it), as the kubelet requests it for a projection.
 *
 * @example
 * ```ts
 * const token = yield* requestToken(pod, { expirationSeconds: 3607 })
 * ```
 */
export const requestToken = (
  pod: NodePod,
  projection: { readonly audience?: string | undefined; readonly expirationSeconds?: number | undefined }
): Effect.Effect<string, KubeError | Schema.SchemaError, KubeClient> =>
  Effect.gen(function* () {
    const kube = yield* KubeClient
    const namespace = pod.metadata.namespace ?? "default"
    const serviceAccount = pod.spec.serviceAccountName ?? "default"
    const response = yield* kube.request({
      method: "POST",
      path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts/${encodeURIComponent(serviceAccount)}/token`,
      body: {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenRequest",
        spec: {
          // No audience: the API server's own (what in-cluster clients present to it).
          ...(projection.audience === undefined || projection.audience === ""
            ? {}
            : { audiences: [projection.audience] }),
          expirationSeconds: projection.expirationSeconds ?? defaultTokenSeconds,
          boundObjectRef: { apiVersion: "v1", kind: "Pod", name: pod.metadata.name ?? "", uid: pod.metadata.uid ?? "" }
        }
      }
    })
    const decoded = yield* Schema.decodeUnknownEffect(TokenRequestStatus)(response)
    return decoded.status.token
  })

type TokenSource = NonNullable<VolumeProjection["serviceAccountToken"]>

/** The files of one projected source. */
const projectionFiles = (
  volume: string,
  pod: NodePod,
  source: VolumeProjection,
  addresses: PodAddresses,
  mode: number
): Effect.Effect<ReadonlyArray<VolumeFile>, ContainerWaiting, KubeClient> => {
  const namespace = pod.metadata.namespace ?? "default"
  if (source.secret !== undefined) return objectFiles(volume, "secret", namespace, source.secret, mode)
  if (source.configMap !== undefined) return objectFiles(volume, "configmap", namespace, source.configMap, mode)
  if (source.downwardAPI !== undefined)
    return downwardFiles(volume, pod, source.downwardAPI.items ?? [], addresses, mode)
  const token = source.serviceAccountToken
  if (token !== undefined) {
    return requestToken(pod, token).pipe(
      Effect.mapError((error) => waiting(volume, `failed to fetch token: ${error.message}`)),
      Effect.map((value) => [{ path: token.path, content: encoder.encode(value), mode }])
    )
  }
  return Effect.fail(waiting(volume, "unsupported projected volume source on this process node"))
}

/**
 * Keeps a projected token fresh as the kubelet does: a new one once 80% of
 * the lifetime has passed, retried every 10 seconds while that fails.
 */
const refreshToken = (volume: string, dir: string, pod: NodePod, token: TokenSource, mode: number) => {
  const lifetime = Duration.seconds(token.expirationSeconds ?? defaultTokenSeconds)
  const renew = requestToken(pod, token).pipe(
    Effect.mapError((error) => waiting(volume, `failed to refresh token: ${error.message}`)),
    Effect.flatMap((value) => writeFiles(volume, dir, [{ path: token.path, content: encoder.encode(value), mode }])),
    Effect.tapError((error) => Effect.logWarning(`process node: ${error.message}`)),
    Effect.retry(Schedule.spaced("10 seconds"))
  )
  return Effect.sleep(Duration.times(lifetime, 0.8)).pipe(Effect.andThen(renew), Effect.forever)
}

/** One volume's directory, filled; token refreshes are forked into the scope. */
const prepareVolume = (
  pod: NodePod,
  volume: NodeVolume,
  dir: string,
  addresses: PodAddresses
): Effect.Effect<PodVolume, ContainerWaiting, KubeClient | Scope.Scope> =>
  Effect.gen(function* () {
    const namespace = pod.metadata.namespace ?? "default"
    const name = volume.name
    if (volume.persistentVolumeClaim !== undefined) {
      // The volume's own directory; a missing subPath in it is created, writable, as fsGroup would make it.
      const hostPath = yield* claimDirectory(name, namespace, volume.persistentVolumeClaim.claimName)
      return { hostPath, readOnly: volume.persistentVolumeClaim.readOnly === true, writable: true }
    }
    yield* io(name, "cannot create the volume directory", () => mkdir(dir, { recursive: true, mode: 0o755 }))
    if (volume.emptyDir !== undefined) {
      // Writable by whichever user the containers run as, as the kubelet makes it.
      yield* io(name, "cannot open up the emptyDir", () => chmod(dir, 0o777))
      return { hostPath: dir, readOnly: false, writable: true }
    }
    const files: Array<VolumeFile> = []
    if (volume.secret !== undefined) {
      const source = volume.secret
      const mode = source.defaultMode ?? defaultFileMode
      files.push(
        ...(yield* objectFiles(
          name,
          "secret",
          namespace,
          {
            name: source.secretName,
            ...(source.items === undefined ? {} : { items: source.items }),
            ...(source.optional === undefined ? {} : { optional: source.optional })
          },
          mode
        ))
      )
    } else if (volume.configMap !== undefined) {
      files.push(
        ...(yield* objectFiles(
          name,
          "configmap",
          namespace,
          volume.configMap,
          volume.configMap.defaultMode ?? defaultFileMode
        ))
      )
    } else if (volume.downwardAPI !== undefined) {
      const mode = volume.downwardAPI.defaultMode ?? defaultFileMode
      files.push(...(yield* downwardFiles(name, pod, volume.downwardAPI.items ?? [], addresses, mode)))
    } else if (volume.projected !== undefined) {
      const mode = volume.projected.defaultMode ?? defaultFileMode
      for (const source of volume.projected.sources ?? []) {
        files.push(...(yield* projectionFiles(name, pod, source, addresses, mode)))
      }
      yield* writeFiles(name, dir, files)
      for (const source of volume.projected.sources ?? []) {
        const token = source.serviceAccountToken
        if (token !== undefined) yield* Effect.forkScoped(refreshToken(name, dir, pod, token, mode))
      }
      return { hostPath: dir, readOnly: true, writable: false }
    } else {
      return yield* waiting(name, "unsupported volume type on this process node")
    }
    yield* writeFiles(name, dir, files)
    return { hostPath: dir, readOnly: true, writable: false }
  })

/**
 * Sets up a Pod's volumes as host directories under `<podDir>/volumes/`, as
 * the kubelet does before it creates containers: emptyDir (world-writable),
 * Secret, ConfigMap, downward API and projected volumes, bound
 * PersistentVolumeClaims of hostPath or local PersistentVolumes (their own
 * directory), the latter including
 * the service-account token the ServiceAccount admission plugin injects
 * (`kube-api-access-*`: a bound token, `kube-root-ca.crt`'s `ca.crt`, the
 * namespace). A missing object fails with the kubelet's FailedMount message,
 * for the worker to retry. Token refreshes live in the scope.
 *
 * @example
 * ```ts
 * const volumes = yield* preparePodVolumes(pod, { podDir, addresses: { hostIP, podIP } })
 * ```
 */
export const preparePodVolumes = (
  pod: NodePod,
  options: { readonly podDir: string; readonly addresses: PodAddresses }
): Effect.Effect<ReadonlyMap<string, PodVolume>, ContainerWaiting, KubeClient | Scope.Scope> =>
  Effect.gen(function* () {
    const volumes = new Map<string, PodVolume>()
    for (const volume of pod.spec.volumes ?? []) {
      const dir = join(options.podDir, "volumes", volume.name)
      volumes.set(volume.name, yield* prepareVolume(pod, volume, dir, options.addresses))
    }
    return volumes
  })

/**
 * The mounts of one container: each `volumeMount` as its volume's directory
 * (or a `subPath` in it; one missing in an emptyDir is created).
 *
 * @example
 * ```ts
 * const mounts = yield* containerMounts(container, volumes)
 * ```
 */
export const containerMounts = (
  container: { readonly volumeMounts?: NodePod["spec"]["containers"][number]["volumeMounts"] },
  volumes: ReadonlyMap<string, PodVolume>
): Effect.Effect<ReadonlyArray<Mount>, ContainerWaiting> =>
  Effect.forEach(container.volumeMounts ?? [], (mount) =>
    Effect.gen(function* () {
      const volume = volumes.get(mount.name)
      if (volume === undefined) {
        return yield* new ContainerWaiting({
          reason: "CreateContainerConfigError",
          message: `cannot find volume "${mount.name}" to mount into container`
        })
      }
      let hostPath = volume.hostPath
      if (mount.subPath !== undefined && mount.subPath !== "") {
        hostPath = normalize(join(volume.hostPath, mount.subPath))
        if (!hostPath.startsWith(`${volume.hostPath}/`)) {
          return yield* new ContainerWaiting({
            reason: "CreateContainerConfigError",
            message: `invalid subPath ${mount.subPath}`
          })
        }
        if (volume.writable) {
          const dir = hostPath
          yield* Effect.tryPromise({
            try: async () => {
              await mkdir(dir, { recursive: true })
              await chmod(dir, 0o777)
            },
            catch: (cause) =>
              new ContainerWaiting({ reason: "CreateContainerConfigError", message: `subPath: ${String(cause)}` })
          })
        }
      }
      return { hostPath, containerPath: mount.mountPath, readOnly: volume.readOnly || mount.readOnly === true }
    })
  )
