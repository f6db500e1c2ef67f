import { ConfigMap, KubeClient, type KubeError } from "@db-backup-operator/kube"
import {
  Action,
  type Cache,
  Conditions,
  Controller,
  EventRecorder,
  Finalizers,
  Owners,
  Predicates,
  Source,
  Status,
  TerminalError
} from "@db-backup-operator/operator"
import { Effect } from "effect"
import { ConfigMapGenerator } from "./ConfigMapGenerator.ts"

/** Removed only after the generated ConfigMaps are gone. */
export const finalizer = "examples.db-backup-operator.dev/cleanup"
/** Server-side apply field manager, and the value of the managed-by label. */
export const fieldManager = "configmap-generator"
/** Every generated ConfigMap carries it: the controller caches only these, never all ConfigMaps. */
export const childSelector = `app.kubernetes.io/managed-by=${fieldManager}`

/** `<name>-0` .. `<name>-(replicas-1)`. */
export const configMapNames = (generator: ConfigMapGenerator): ReadonlyArray<string> =>
  Array.from({ length: generator.spec.replicas ?? 1 }, (_, i) => `${generator.metadata.name}-${i}`)

const sameData = (a: Readonly<Record<string, string>> | undefined, b: Readonly<Record<string, string>>) => {
  const entries = Object.entries(a ?? {})
  return entries.length === Object.keys(b).length && entries.every(([key, value]) => b[key] === value)
}

/** The generated ConfigMaps: the controller owns them, and caches only these, never all ConfigMaps. */
export const generatedConfigMaps = Source.owns(ConfigMap, { labelSelector: childSelector })

/** The generator's ConfigMaps, as the cache behind {@link generatedConfigMaps} holds them. */
const cachedChildren = (generator: ConfigMapGenerator, configMaps: Cache<ConfigMap>) =>
  configMaps.list(
    (child) => child.metadata.namespace === generator.metadata.namespace && Owners.isControlledBy(child, generator)
  )

/** The API server rejected a ConfigMap (e.g. too large): retrying cannot help, the spec must change. */
const rejected = (generator: ConfigMapGenerator, error: KubeError) =>
  Effect.gen(function* () {
    const events = yield* EventRecorder
    yield* events.warning(generator, { reason: "ConfigMapRejected", action: "Apply", note: error.message })
    const conditions = yield* Conditions.setConditionNow(generator.status?.conditions, {
      type: "Ready",
      status: "False",
      reason: "ConfigMapRejected",
      message: error.message,
      observedGeneration: generator.metadata.generation ?? 0
    })
    yield* Status.patchStatus(ConfigMapGenerator, generator, { ...generator.status, conditions }, { fieldManager })
    return yield* new TerminalError({ reason: "ConfigMapRejected", message: error.message, cause: error })
  })

/** Deletion requested: remove our ConfigMaps (read live, not from the cache); `withFinalizer` then lets the object go. */
const cleanUp = (generator: ConfigMapGenerator) =>
  Effect.gen(function* () {
    const kube = yield* KubeClient
    const namespace = generator.metadata.namespace ?? "default"
    const live = yield* kube.list(ConfigMap, { namespace, labelSelector: childSelector })
    const children = live.items.filter((child) => Owners.isControlledBy(child, generator))
    for (const child of children) {
      yield* kube
        .delete(ConfigMap, child.metadata.name ?? "", { namespace })
        .pipe(Effect.catchTag("NotFound", () => Effect.void))
    }
    const events = yield* EventRecorder
    yield* events.normal(generator, {
      reason: "CleanedUp",
      action: "DeleteConfigMaps",
      note: `deleted ${children.length} ConfigMap(s)`
    })
    return Action.done
  })

/**
 * One level-triggered pass: the finalizer first, then make `<name>-i` hold
 * `spec.data` for every i below `spec.replicas`, delete the others, report
 * Ready; on deletion, {@link cleanUp}. A pass that finds everything in place
 * makes no API request at all.
 */
export const reconcile = (generator: ConfigMapGenerator, configMaps: Cache<ConfigMap>) =>
  Finalizers.withFinalizer(ConfigMapGenerator, generator, finalizer, {
    apply: (current) => sync(current, configMaps),
    cleanup: cleanUp
  })

const sync = (current: ConfigMapGenerator, configMaps: Cache<ConfigMap>) =>
  Effect.gen(function* () {
    const kube = yield* KubeClient
    const events = yield* EventRecorder
    const namespace = current.metadata.namespace ?? "default"
    const owner = yield* Owners.controllerReference(current, ConfigMapGenerator)
    const children = yield* cachedChildren(current, configMaps)
    const desired = configMapNames(current)

    let changed = 0
    for (const name of desired) {
      const existing = children.find((child) => child.metadata.name === name)
      if (existing !== undefined && sameData(existing.data, current.spec.data)) continue
      yield* kube
        .apply(
          ConfigMap,
          name,
          {
            metadata: {
              name,
              namespace,
              labels: { "app.kubernetes.io/managed-by": fieldManager },
              ownerReferences: [owner]
            },
            data: current.spec.data
          },
          { namespace, fieldManager, force: true }
        )
        .pipe(Effect.catchTag("Invalid", (error) => rejected(current, error)))
      changed++
    }
    for (const extra of children.filter((child) => !desired.includes(child.metadata.name ?? ""))) {
      yield* kube
        .delete(ConfigMap, extra.metadata.name ?? "", {
          namespace,
          ...(extra.metadata.uid === undefined ? {} : { preconditions: { uid: extra.metadata.uid } })
        })
        .pipe(Effect.catchTags({ NotFound: () => Effect.void, Conflict: () => Effect.void }))
      changed++
    }
    if (changed > 0) {
      yield* events.normal(current, {
        reason: "ConfigMapsSynced",
        action: "Apply",
        note: `${changed} ConfigMap(s) created, updated or deleted`
      })
    }

    const conditions = yield* Conditions.setConditionNow(current.status?.conditions, {
      type: "Ready",
      status: "True",
      reason: "ConfigMapsReady",
      message: `${desired.length} ConfigMap(s) hold the data`,
      observedGeneration: current.metadata.generation ?? 0
    })
    yield* Status.patchStatus(
      ConfigMapGenerator,
      current,
      { ...current.status, configMaps: desired, conditions },
      { fieldManager }
    )
    return Action.done
  })

/**
 * The ConfigMapGenerator controller: reconciles on spec changes (not on its own
 * status writes) and whenever one of its ConfigMaps changes or disappears.
 *
 * @example
 * ```ts
 * Manager.run([configMapGeneratorController()])
 * ```
 */
export const configMapGeneratorController = () =>
  Controller.make({
    name: "configmapgenerator",
    for: ConfigMapGenerator,
    owns: [generatedConfigMaps],
    predicates: [Predicates.generationChanged],
    reconcile: ({ object, cache }) =>
      object === undefined ? Effect.succeed(Action.done) : reconcile(object, cache(generatedConfigMaps))
  })
