import { type KubeObject, Resource } from "@db-backup-operator/kube"
import { Effect, type Option, Stream } from "effect"
import type { Change } from "./Change.ts"
import type { Reflector } from "./Reflector.ts"

/**
 * What a reconcile reads: the watch cache of one kind and selector across every
 * namespace its Manager watches. One value per kind and selector, shared by all
 * controllers of the Manager; behind it, one {@link Reflector} per namespace (or
 * one for the whole cluster when the Manager watches all namespaces).
 *
 * @example
 * ```ts
 * declare const Widget: Resource.Resource<ConfigMap, ConfigMap>
 * const reconcile = ({ object, cache }: Controller.Request<ConfigMap>) =>
 *   Effect.gen(function* () {
 *     const children = yield* cache(ConfigMap).list((child) => Owners.isControlledBy(child, object!))
 *     return Action.done
 *   })
 * ```
 */
export interface Cache<A extends KubeObject> {
  /** `ConfigMap namespaces=a,b labels=app=x`: what this cache holds. */
  readonly description: string
  /** The object with key `namespace/name` (`name` for cluster-scoped kinds), if cached. */
  readonly get: (key: string) => Effect.Effect<Option.Option<A>>
  /** Every cached object (that passes `filter`), across all namespaces. */
  readonly list: (filter?: (object: A) => boolean) => Effect.Effect<ReadonlyArray<A>>
  /**
   * The changes applied to the cache, as one stream per subscriber; see
   * {@link Reflector.changes}. With `replay` (the default), it starts with
   * `Added` for every object already cached.
   */
  readonly changes: (options?: { readonly replay?: boolean }) => Stream.Stream<Change<A>>
  /** Completes once every namespace's first full list is in. */
  readonly synced: Effect.Effect<void>
  readonly isSynced: Effect.Effect<boolean>
}

/** One reflector and the namespace it covers (`undefined`: all namespaces, or a cluster-scoped kind). */
export interface Part<A extends KubeObject> {
  readonly namespace: string | undefined
  readonly reflector: Reflector<A>
}

/**
 * Joins per-namespace reflectors into one {@link Cache}. A key is looked up
 * only in its own namespace's reflector (or the cluster-wide one), so a `get`
 * costs one map lookup whatever the number of namespaces.
 */
export const fromParts = <A extends KubeObject>(description: string, parts: ReadonlyArray<Part<A>>): Cache<A> => {
  const byNamespace = new Map(parts.map((part) => [part.namespace, part.reflector]))
  const clusterWide = byNamespace.get(undefined)
  const reflectorFor = (key: string) => clusterWide ?? byNamespace.get(Resource.splitKey(key).namespace)
  const reflectors = parts.map((part) => part.reflector)
  return {
    description,
    get: (key) => {
      const reflector = reflectorFor(key)
      return reflector === undefined ? Effect.succeedNone : reflector.store.get(key)
    },
    list: (filter) =>
      reflectors.length === 1 && reflectors[0] !== undefined
        ? reflectors[0].store.list(filter)
        : Effect.map(
            Effect.forEach(reflectors, (reflector) => reflector.store.list(filter)),
            (lists) => lists.flat()
          ),
    changes: (options) =>
      Stream.mergeAll(
        reflectors.map((reflector) => reflector.changes(options)),
        { concurrency: "unbounded" }
      ),
    synced: Effect.forEach(reflectors, (reflector) => reflector.synced, { discard: true, concurrency: "unbounded" }),
    isSynced: Effect.map(
      Effect.forEach(reflectors, (reflector) => reflector.isSynced),
      (all) => all.every(Boolean)
    )
  }
}
