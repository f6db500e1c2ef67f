import { type KubeObject, Resource } from "@db-backup-operator/kube"
import { Effect, type Scope, Stream } from "effect"
import type { Cache } from "../cache/Cache.ts"
import { Caches } from "../cache/Caches.ts"
import type { Change } from "../cache/Change.ts"

/** What a Source needs from the controller it feeds. */
export interface SourceContext {
  /** The controller's primary kind (`for`). */
  readonly primary: Resource.Resource<KubeObject, unknown>
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
  keysOf: (object: B) => ReadonlyArray<string>,
  enqueue: (key: string) => Effect.Effect<void>
) =>
  Effect.gen(function* () {
    const caches = yield* Caches
    const cache = yield* caches.get(resource, labelSelector === undefined ? {} : { labelSelector })
    yield* cache.changes().pipe(
      Stream.runForEach((change) =>
        Effect.forEach(new Set(objectsOf(change).flatMap((object) => keysOf(object))), (key) => enqueue(key), {
          discard: true
        })
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
  start: (context) => follow(resource, options?.labelSelector, map, context.enqueue)
})

/** Enqueue key of an object of the primary kind. */
export const keyOf = Resource.keyOf
