import { type KubeObject, Resource } from "@db-backup-operator/kube"
import { Effect, type Scope, Stream } from "effect"
import type { Cache } from "../cache/Cache.ts"
import { Caches } from "../cache/Caches.ts"
import type { Change } from "../cache/Change.ts"

/** What a Source needs from the controller it feeds. */
export interface SourceContext {
  /** The controller's primary kind (`for`). */
  readonly primary: Resource.Resource<KubeObject, unknown>
  /** The cache of the primary kind the controller reconciles from. */
  readonly primaryCache: Cache<KubeObject>
  readonly enqueue: (key: string) => Effect.Effect<void>
}

/**
 * A secondary watch that enqueues keys of the primary kind: children found by
 * owner reference ({@link owns}) or by any mapping ({@link watches}). It follows
 * the Manager's shared cache of its kind and selector, in the Manager's
 * namespaces; the controller's reconcile reads that same cache through
 * `request.cache(source)`.
 */
export interface Source<B extends KubeObject = KubeObject> {
  /** `owns Job labels=app=x`, for logs. */
  readonly description: string
  readonly resource: Resource.Resource<B, unknown>
  /** Starts enqueueing the primary keys of every change; returns the cache it follows. */
  readonly start: (context: SourceContext) => Effect.Effect<Cache<B>, never, Caches | Scope.Scope>
}

const objectsOf = <A>(change: Change<A>): ReadonlyArray<A> =>
  change.type === "Modified" ? [change.old, change.object] : [change.object]

const follow = <B extends KubeObject, I>(
  resource: Resource.Resource<B, I>,
  labelSelector: string | undefined,
  keysOf: (object: B) => Effect.Effect<ReadonlyArray<string>>,
  enqueue: (key: string) => Effect.Effect<void>
) =>
  Effect.gen(function* () {
    const caches = yield* Caches
    const cache = yield* caches.get(resource, labelSelector === undefined ? {} : { labelSelector })
    yield* cache.changes().pipe(
      Stream.runForEach((change) =>
        Effect.forEach(objectsOf(change), keysOf).pipe(
          Effect.flatMap((keys) => Effect.forEach(new Set(keys.flat()), enqueue, { discard: true }))
        )
      ),
      Effect.forkScoped
    )
    return cache
  })

const describe = (verb: string, resource: Resource.Resource<KubeObject, unknown>, labelSelector: string | undefined) =>
  `${verb} ${resource.kind}${labelSelector === undefined ? "" : ` labels=${labelSelector}`}`

/**
 * Watches a child kind and enqueues the owner named by each child's controller
 * owner reference (`controller: true`, same apiVersion and kind as the primary),
 * in the child's namespace.
 *
 * @example
 * ```ts
 * declare const reconcile: (request: Controller.Request<Job>) => Effect.Effect<Action.Action>
 * Controller.make({ name: "jobs", for: Job, owns: [Source.owns(Pod)], reconcile })
 * ```
 */
export const owns = <B extends KubeObject, I>(
  resource: Resource.Resource<B, I>,
  options?: { readonly labelSelector?: string }
): Source<B> => ({
  description: describe("owns", resource, options?.labelSelector),
  resource,
  start: (context) =>
    follow(
      resource,
      options?.labelSelector,
      (child) =>
        Effect.succeed(
          (child.metadata.ownerReferences ?? [])
            .filter(
              (ref) =>
                ref.controller === true &&
                ref.kind === context.primary.kind &&
                ref.apiVersion === context.primary.apiVersion
            )
            .map((ref) =>
              context.primary.namespaced && child.metadata.namespace !== undefined
                ? `${child.metadata.namespace}/${ref.name}`
                : ref.name
            )
        ),
      context.enqueue
    )
})

/**
 * Watches any kind and enqueues the primary keys `map` returns for each object
 * (before and after an update): for relations owner references cannot express,
 * such as children in other namespaces found by labels.
 *
 * @example
 * ```ts
 * Source.watches(Job, (job) => [job.metadata.labels?.["example.com/owner"] ?? ""].filter((k) => k !== ""), {
 *   labelSelector: "example.com/owner"
 * })
 * ```
 */
export const watches = <B extends KubeObject, I>(
  resource: Resource.Resource<B, I>,
  map: (object: B) => ReadonlyArray<string>,
  options?: { readonly labelSelector?: string }
): Source<B> => ({
  description: describe("watches", resource, options?.labelSelector),
  resource,
  start: (context) => follow(resource, options?.labelSelector, (object) => Effect.succeed(map(object)), context.enqueue)
})

/**
 * Watches a kind that primary objects refer to by name (a shared
 * configuration, a storage definition), and enqueues every primary object
 * whose `referencesOf` includes the changed object's key (`namespace/name`,
 * or `name` for a cluster-scoped kind): the lookup runs on the primary cache,
 * so an object created after the resources that need it wakes them. The
 * reconcile reads the referenced objects from `request.cache(source)`.
 *
 * @example
 * ```ts
 * declare const Widget: Resource.Resource<Job, Job>
 * // Widgets name a ConfigMap of their namespace in the annotation example.com/settings.
 * Source.references(ConfigMap, (widget: Job) => {
 *   const name = widget.metadata.annotations?.["example.com/settings"]
 *   return name === undefined ? [] : [`${widget.metadata.namespace}/${name}`]
 * })
 * ```
 */
export const references = <B extends KubeObject, I, P extends KubeObject>(
  resource: Resource.Resource<B, I>,
  referencesOf: (primary: P) => ReadonlyArray<string>
): Source<B> => ({
  description: `references ${resource.kind}`,
  resource,
  start: (context) =>
    follow(
      resource,
      undefined,
      (object) => {
        const key = Resource.keyOf(object)
        return context.primaryCache
          .list((primary) => referencesOf(primary as P).includes(key))
          .pipe(Effect.map((primaries) => primaries.map(Resource.keyOf)))
      },
      context.enqueue
    )
})

/** Enqueue key of an object of the primary kind. */
export const keyOf = Resource.keyOf
