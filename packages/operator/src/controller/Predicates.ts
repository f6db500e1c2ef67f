import type { KubeObject } from "@db-backup-operator/kube"
import type { Change } from "../cache/Change.ts"

/**
 * Decides whether a change to a watched object should enqueue a reconcile.
 * Additions and deletions always pass the built-in predicates: they filter
 * updates only, as controller-runtime's.
 *
 * @example
 * ```ts
 * declare const reconcile: (request: Controller.Request<ConfigMap>) => Effect.Effect<Action.Action>
 * Controller.make({
 *   name: "settings",
 *   for: ConfigMap,
 *   predicates: [Predicates.or(Predicates.generationChanged, Predicates.labelsChanged)],
 *   reconcile
 * })
 * ```
 */
export type Predicate<A> = (change: Change<A>) => boolean

const onUpdate =
  <A extends KubeObject>(changed: (old: A, next: A) => boolean): Predicate<A> =>
  (change) =>
    change.type !== "Modified" || changed(change.old, change.object)

const sameRecord = (
  a: Readonly<Record<string, string>> | undefined,
  b: Readonly<Record<string, string>> | undefined
) => {
  const left = Object.entries(a ?? {})
  const right = b ?? {}
  return left.length === Object.keys(right).length && left.every(([key, value]) => right[key] === value)
}

const sameList = (a: ReadonlyArray<string> | undefined, b: ReadonlyArray<string> | undefined) => {
  const left = a ?? []
  const right = b ?? []
  return left.length === right.length && left.every((value, i) => right[i] === value)
}

/**
 * Spec changes (metadata.generation), deletion requests, and finalizer changes;
 * not status-only updates. For custom kinds the API server bumps the generation
 * on every change outside metadata and status, so a controller that writes its
 * own status does not wake itself up.
 */
export const generationChanged: Predicate<KubeObject> = onUpdate(
  (old, next) =>
    old.metadata.generation !== next.metadata.generation ||
    old.metadata.deletionTimestamp !== next.metadata.deletionTimestamp ||
    !sameList(old.metadata.finalizers, next.metadata.finalizers)
)

/** Label changes. */
export const labelsChanged: Predicate<KubeObject> = onUpdate(
  (old, next) => !sameRecord(old.metadata.labels, next.metadata.labels)
)

/** Annotation changes. */
export const annotationsChanged: Predicate<KubeObject> = onUpdate(
  (old, next) => !sameRecord(old.metadata.annotations, next.metadata.annotations)
)

/** Passes when any of `predicates` passes. */
export const or =
  <A>(...predicates: ReadonlyArray<Predicate<A>>): Predicate<A> =>
  (change) =>
    predicates.some((predicate) => predicate(change))

/** Passes when all of `predicates` pass. */
export const and =
  <A>(...predicates: ReadonlyArray<Predicate<A>>): Predicate<A> =>
  (change) =>
    predicates.every((predicate) => predicate(change))

/**
 * Only objects in one of `namespaces` (every change type). For a controller
 * that serves fewer namespaces than its Manager watches, e.g. one whose
 * children also live in namespaces it does not serve.
 *
 * @example
 * ```ts
 * declare const reconcile: (request: Controller.Request<ConfigMap>) => Effect.Effect<Action.Action>
 * Controller.make({ name: "settings", for: ConfigMap, predicates: [Predicates.inNamespaces(["team-a"])], reconcile })
 * ```
 */
export const inNamespaces = (namespaces: ReadonlyArray<string>): Predicate<KubeObject> => {
  const served = new Set(namespaces)
  return (change) => change.object.metadata.namespace !== undefined && served.has(change.object.metadata.namespace)
}
