import { KubeClient, type KubeObject, type Resource } from "@db-backup-operator/kube"
import { Context, type Duration, Effect, Layer, Scope, Semaphore } from "effect"
import * as Reflector from "./Reflector.ts"

/**
 * The watch caches of a Manager: at most one reflector and store per kind and
 * selector (namespace, label selector, field selector), created on first
 * request and shared by every controller that asks for the same thing. All of
 * them live as long as the layer.
 *
 * @example
 * ```ts
 * const program = Effect.gen(function* () {
 *   const caches = yield* Caches
 *   const jobs = yield* caches.get(Job, { namespace: "db", labelSelector: "app=backup" })
 *   const same = yield* caches.get(Job, { namespace: "db", labelSelector: "app=backup" }) // jobs again
 *   const ready = yield* caches.waitForSync({ timeout: "30 seconds" })
 * })
 * program.pipe(Effect.provide(Caches.layer().pipe(Layer.provide(Kube.layer({ _tag: "Default" })))))
 * ```
 */
export interface CachesShape {
  /**
   * The shared reflector for `resource` and `selector`, started on first use.
   * Kinds are told apart by their Resource value (a narrower Schema of the same
   * kind is a separate cache); selectors compare as strings.
   */
  readonly get: <A extends KubeObject, I>(
    resource: Resource.Resource<A, I>,
    selector?: Reflector.Selector
  ) => Effect.Effect<Reflector.Reflector<A>>
  /** Descriptions of the caches started so far, e.g. `Job namespace=db labels=app=backup`. */
  readonly descriptions: Effect.Effect<ReadonlyArray<string>>
  /** Descriptions of the caches whose first list has not completed yet (for a /readyz message). */
  readonly unsynced: Effect.Effect<ReadonlyArray<string>>
  /** True when every cache started so far holds its first full list (for /readyz). */
  readonly isSynced: Effect.Effect<boolean>
  /**
   * Waits until every cache started so far (including any started while
   * waiting) has synced. With a `timeout`, returns `false` if they did not in time.
   */
  readonly waitForSync: (options?: { readonly timeout?: Duration.Input }) => Effect.Effect<boolean>
}

const selectorKey = (selector: Reflector.Selector): string =>
  JSON.stringify([selector.namespace ?? null, selector.labelSelector || null, selector.fieldSelector || null])

const normalize = (selector: Reflector.Selector | undefined): Reflector.Selector => ({
  ...(selector?.namespace === undefined ? {} : { namespace: selector.namespace }),
  ...(selector?.labelSelector ? { labelSelector: selector.labelSelector } : {}),
  ...(selector?.fieldSelector ? { fieldSelector: selector.fieldSelector } : {})
})

/**
 * Builds the caches in the current Scope; reflectors are forked into it.
 * Prefer {@link layer}.
 */
export const make = (timing: Reflector.Timing = {}): Effect.Effect<CachesShape, never, KubeClient | Scope.Scope> =>
  Effect.gen(function* () {
    const kube = yield* KubeClient
    const scope = yield* Effect.scope
    // Resource values are module-level constants, so identity is the right key:
    // two Schemas for one kind decode differently and must not share a store.
    const byResource = new Map<Resource.Resource<KubeObject, unknown>, Map<string, Reflector.Reflector<KubeObject>>>()
    const all: Array<Reflector.Reflector<KubeObject>> = []
    // Creating is quick (the reflector forks its loop), so one lock for all keeps "at most one" simple.
    const lock = yield* Semaphore.make(1)

    const get = <A extends KubeObject, I>(
      resource: Resource.Resource<A, I>,
      selector?: Reflector.Selector
    ): Effect.Effect<Reflector.Reflector<A>> =>
      Semaphore.withPermit(
        lock,
        Effect.gen(function* () {
          const normalized = normalize(selector)
          const key = selectorKey(normalized)
          const bySelector = byResource.get(resource) ?? new Map<string, Reflector.Reflector<KubeObject>>()
          byResource.set(resource, bySelector)
          const existing = bySelector.get(key)
          // Sound: entries under `resource` were created by Reflector.make(resource), so they hold A.
          if (existing !== undefined) return existing as unknown as Reflector.Reflector<A>
          const created = yield* Reflector.make({ ...timing, ...normalized, resource }).pipe(
            Effect.provideService(KubeClient, kube),
            Scope.provide(scope)
          )
          bySelector.set(key, created)
          all.push(created)
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
   * The shared caches as a layer, with optional timing for every reflector.
   *
   * @example
   * ```ts
   * const CachesLive = Caches.layer().pipe(Layer.provide(Kube.layer({ _tag: "File", path: kubeconfig })))
   * ```
   */
  static readonly layer = (timing?: Reflector.Timing): Layer.Layer<Caches, never, KubeClient> =>
    Layer.effect(Caches, make(timing))
}
