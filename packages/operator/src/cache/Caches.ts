import { KubeClient, type KubeObject, type Resource } from "@db-backup-operator/kube"
import { Context, type Duration, Effect, Layer, Scope, Semaphore } from "effect"
import * as Cache from "./Cache.ts"
import * as Reflector from "./Reflector.ts"

/** Which objects of a kind a cache holds, within the Manager's namespaces. */
export interface Selector {
  /** A label selector, e.g. `app.kubernetes.io/managed-by=db-backup-operator`. */
  readonly labelSelector?: string
  /** A field selector, e.g. `status.phase=Running`. */
  readonly fieldSelector?: string
}

/** How the caches of a Manager are built. */
export interface Options {
  /**
   * The namespaces every cache of a namespaced kind covers: one watch per
   * namespace. Default: all namespaces, one cluster-wide watch per kind and
   * selector. Cluster-scoped kinds are always watched cluster-wide.
   */
  readonly namespaces?: ReadonlyArray<string> | undefined
  /** Reflector timing (tests shrink it). */
  readonly timing?: Reflector.Timing
}

/**
 * The watch caches of a Manager: at most one {@link Cache} per kind and
 * selector, created on first request and shared by every controller that asks
 * for the same thing, each covering exactly the Manager's namespaces. All of
 * them live as long as the layer.
 *
 * @example
 * ```ts
 * const program = Effect.gen(function* () {
 *   const caches = yield* Caches
 *   const jobs = yield* caches.get(Job, { labelSelector: "app=backup" })
 *   const same = yield* caches.get(Job, { labelSelector: "app=backup" }) // jobs again
 *   const ready = yield* caches.waitForSync({ timeout: "30 seconds" })
 * })
 * program.pipe(
 *   Effect.provide(Caches.layer({ namespaces: ["db"] }).pipe(Layer.provide(KubeClient.layer({ _tag: "Default" }))))
 * )
 * ```
 */
export interface CachesShape {
  /** The namespaces the caches cover; `undefined` for all. */
  readonly namespaces: ReadonlyArray<string> | undefined
  /**
   * The shared cache for `resource` and `selector`, started on first use.
   * Kinds are told apart by their Resource value (a narrower Schema of the same
   * kind is a separate cache); selectors compare as strings.
   */
  readonly get: <A extends KubeObject, I>(
    resource: Resource.Resource<A, I>,
    selector?: Selector
  ) => Effect.Effect<Cache.Cache<A>>
  /** Descriptions of the watches started so far, e.g. `Job namespace=db labels=app=backup`. */
  readonly descriptions: Effect.Effect<ReadonlyArray<string>>
  /** Descriptions of the watches whose first list has not completed yet (for a /readyz message). */
  readonly unsynced: Effect.Effect<ReadonlyArray<string>>
  /** True when every cache started so far holds its first full list (for /readyz). */
  readonly isSynced: Effect.Effect<boolean>
  /**
   * Waits until every cache started so far (including any started while
   * waiting) has synced. With a `timeout`, returns `false` if they did not in time.
   */
  readonly waitForSync: (options?: { readonly timeout?: Duration.Input }) => Effect.Effect<boolean>
}

const selectorKey = (selector: Selector | undefined): string =>
  JSON.stringify([selector?.labelSelector || null, selector?.fieldSelector || null])

const describeCache = (kind: string, covered: ReadonlyArray<string | undefined>, selector: Selector | undefined) => {
  const namespaces = covered.filter((namespace) => namespace !== undefined)
  return Reflector.describeScope(
    kind,
    namespaces.length === 0 ? "all-namespaces" : `namespaces=${namespaces.join(",")}`,
    selector ?? {}
  )
}

/**
 * Builds the caches in the current Scope; reflectors are forked into it.
 * Prefer {@link layer}.
 */
export const make = (options: Options = {}): Effect.Effect<CachesShape, never, KubeClient | Scope.Scope> =>
  Effect.gen(function* () {
    const kube = yield* KubeClient
    const scope = yield* Effect.scope
    // One watch per namespace; a set, so a namespace listed twice is watched once.
    const namespaces = options.namespaces === undefined ? undefined : [...new Set(options.namespaces)].sort()
    // Resource values are module-level constants, so identity is the right key:
    // two Schemas for one kind decode differently and must not share a store.
    const byResource = new Map<Resource.Resource<KubeObject, unknown>, Map<string, Cache.Cache<KubeObject>>>()
    const all: Array<Reflector.Reflector<KubeObject>> = []
    // Creating is quick (each reflector forks its loop), so one lock for all keeps "at most one" simple.
    const lock = yield* Semaphore.make(1)

    const get = <A extends KubeObject, I>(
      resource: Resource.Resource<A, I>,
      selector?: Selector
    ): Effect.Effect<Cache.Cache<A>> =>
      Semaphore.withPermit(
        lock,
        Effect.gen(function* () {
          const key = selectorKey(selector)
          const bySelector = byResource.get(resource) ?? new Map<string, Cache.Cache<KubeObject>>()
          byResource.set(resource, bySelector)
          const existing = bySelector.get(key)
          // Sound: entries under `resource` were built from Reflector.make(resource), so they hold A.
          if (existing !== undefined) return existing as unknown as Cache.Cache<A>
          const covered: ReadonlyArray<string | undefined> =
            resource.namespaced && namespaces !== undefined ? namespaces : [undefined]
          const parts = yield* Effect.forEach(covered, (namespace) =>
            Reflector.make({
              ...options.timing,
              ...(namespace === undefined ? {} : { namespace }),
              ...(selector?.labelSelector ? { labelSelector: selector.labelSelector } : {}),
              ...(selector?.fieldSelector ? { fieldSelector: selector.fieldSelector } : {}),
              resource
            }).pipe(
              Effect.provideService(KubeClient, kube),
              Scope.provide(scope),
              Effect.map((reflector) => ({ namespace, reflector }))
            )
          )
          for (const part of parts) all.push(part.reflector as unknown as Reflector.Reflector<KubeObject>)
          const created = Cache.fromParts(describeCache(resource.kind, covered, selector), parts)
          bySelector.set(key, created as unknown as Cache.Cache<KubeObject>)
          yield* Effect.logDebug(`started cache ${created.description}`)
          return created
        })
      )

    const unsynced = Effect.filter(all, (reflector) => Effect.map(reflector.isSynced, (synced) => !synced)).pipe(
      Effect.map((pending) => pending.map((reflector) => reflector.description))
    )

    // Re-checks after each round so caches started while waiting are waited for too.
    const awaitAll: Effect.Effect<void> = Effect.gen(function* () {
      let waitedFor = -1
      while (waitedFor !== all.length) {
        waitedFor = all.length
        yield* Effect.forEach([...all], (reflector) => reflector.synced, { discard: true, concurrency: "unbounded" })
      }
    })

    const shape: CachesShape = {
      namespaces,
      get,
      descriptions: Effect.sync(() => all.map((reflector) => reflector.description)),
      unsynced: Effect.suspend(() => unsynced),
      isSynced: Effect.map(
        Effect.suspend(() => unsynced),
        (pending) => pending.length === 0
      ),
      waitForSync: (options) =>
        options?.timeout === undefined
          ? Effect.as(awaitAll, true)
          : awaitAll.pipe(
              Effect.timeoutOption(options.timeout),
              Effect.map((done) => done._tag === "Some")
            )
    }
    return shape
  })

/** The shared caches service; see {@link CachesShape}. */
export class Caches extends Context.Service<Caches, CachesShape>()("@db-backup-operator/operator/Caches") {
  /** Builds the caches in the current Scope (reflectors are forked into it); prefer {@link Caches.layer}. */
  static readonly make = make

  /**
   * The shared caches as a layer: the namespaces they cover (default all) and
   * optional timing for every reflector.
   *
   * @example
   * ```ts
   * const CachesLive = Caches.layer({ namespaces: ["db"] }).pipe(Layer.provide(KubeClient.layer({ _tag: "File", path: kubeconfig })))
   * ```
   */
  static readonly layer = (options?: Options): Layer.Layer<Caches, never, KubeClient> =>
    Layer.effect(Caches, make(options))
}
