import { type KubeObject, Resource } from "@db-backup-operator/kube"
import { Effect, type Scope, Stream } from "effect"
import { Caches } from "../cache/Caches.ts"
import type { Change } from "../cache/Change.ts"
import type { Selector } from "../cache/Reflector.ts"

/** What a Source needs from the controller it feeds. */
export interface SourceContext {
  /** The controller's primary kind (`for`). */
  readonly primary: Resource.Resource<KubeObject, unknown>
  /** The namespaces the controller watches; undefined for all. */
  readonly namespaces: ReadonlyArray<string> | undefined
  readonly enqueue: (key: string) => Effect.Effect<void>
}

/**
 * A secondary watch that enqueues keys of the primary kind: children found by
 * owner reference ({@link owns}) or by any mapping ({@link watches}).
 */
export interface Source {
  readonly description: string
  readonly start: (context: SourceContext) => Effect.Effect<void, never, Caches | Scope.Scope>
}

const objectsOf = <A>(change: Change<A>): ReadonlyArray<A> =>
  change.type === "Modified" ? [change.old, change.object] : [change.object]

const follow = <B extends KubeObject, I>(
  resource: Resource.Resource<B, I>,
  selectors: ReadonlyArray<Selector>,
  keysOf: (object: B) => ReadonlyArray<string>,
  enqueue: (key: string) => Effect.Effect<void>
) =>
  Effect.gen(function* () {
    const caches = yield* Caches
    for (const selector of selectors) {
      const reflector = yield* caches.get(resource, selector)
      yield* reflector.changes().pipe(
        Stream.runForEach((change) =>
          Effect.forEach(new Set(objectsOf(change).flatMap((object) => keysOf(object))), (key) => enqueue(key), {
            discard: true
          })
        ),
        Effect.forkScoped
      )
    }
  })

const selectorsFor = (namespaces: ReadonlyArray<string> | undefined, labelSelector: string | undefined) =>
  (namespaces ?? [undefined]).map((namespace) => ({
    ...(namespace === undefined ? {} : { namespace }),
    ...(labelSelector === undefined ? {} : { labelSelector })
  }))

/**
 * Watches a child kind and enqueues the owner named by each child's controller
 * owner reference (`controller: true`, same apiVersion and kind as the primary),
 * in the child's namespace. Children are watched in the controller's namespaces.
 *
 * @example
 * ```ts
 * Controller.make({ name: "widgets", for: Widget, owns: [Source.owns(ConfigMap)], reconcile })
 * ```
 */
export const owns = <B extends KubeObject, I>(
  resource: Resource.Resource<B, I>,
  options?: { readonly labelSelector?: string }
): Source => ({
  description: `owns ${resource.kind}`,
  start: (context) =>
    follow(
      resource,
      selectorsFor(context.namespaces, options?.labelSelector),
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
  options?: { readonly namespaces?: ReadonlyArray<string>; readonly labelSelector?: string }
): Source => ({
  description: `watches ${resource.kind}`,
  start: (context) => follow(resource, selectorsFor(options?.namespaces, options?.labelSelector), map, context.enqueue)
})

/** The selectors a controller uses for a kind in its namespaces. */
export const selectors = selectorsFor

/** Enqueue key of an object of the primary kind. */
export const keyOf = Resource.keyOf
