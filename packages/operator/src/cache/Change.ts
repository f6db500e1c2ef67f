import { type KubeObject, Resource } from "@db-backup-operator/kube"

/**
 * A change to a cached object, as controllers consume it.
 *
 * - `Added`: the key is new to the cache.
 * - `Modified`: the object changed (a new resourceVersion); `old` is the cached
 *   state it replaced.
 * - `Deleted`: the object is gone. `object` is its final state as the watch
 *   reported it, or, when the deletion was only inferred from a relist
 *   (`finalStateUnknown: true`), the last state the cache saw.
 *
 * @example
 * ```ts
 * const keyOf = (change: Change<ConfigMap>) => Resource.keyOf(change.object)
 * ```
 */
export type Change<A> =
  | { readonly type: "Added"; readonly object: A }
  | { readonly type: "Modified"; readonly object: A; readonly old: A }
  | { readonly type: "Deleted"; readonly object: A; readonly finalStateUnknown?: boolean }

/** A watch event that changes an object (bookmarks and malformed events change nothing). */
export interface ObjectEvent<A> {
  readonly type: "ADDED" | "MODIFIED" | "DELETED"
  readonly object: A
}

// resourceVersions are opaque: only equality is meaningful, never order.
const sameVersion = (a: KubeObject, b: KubeObject): boolean =>
  a === b || (a.metadata.resourceVersion !== undefined && a.metadata.resourceVersion === b.metadata.resourceVersion)

// Same name but another uid: the object was deleted and recreated while we were not looking.
const recreated = (old: KubeObject, next: KubeObject): boolean =>
  old.metadata.uid !== undefined && next.metadata.uid !== undefined && old.metadata.uid !== next.metadata.uid

const upsertChanges = <A extends KubeObject>(old: A | undefined, next: A): ReadonlyArray<Change<A>> => {
  if (old === undefined) return [{ type: "Added", object: next }]
  if (recreated(old, next)) {
    return [
      { type: "Deleted", object: old, finalStateUnknown: true },
      { type: "Added", object: next }
    ]
  }
  if (sameVersion(old, next)) return []
  return [{ type: "Modified", object: next, old }]
}

/**
 * The notifications one watch event causes, given the cached object of its key
 * (if any). ADDED and MODIFIED are treated alike (an upsert), since after a
 * reconnect the server may replay either; an event carrying the version already
 * cached causes nothing. A DELETED event always notifies, with the final state
 * the server sent.
 *
 * @example
 * ```ts
 * declare const cm: ConfigMap
 * eventChanges(undefined, { type: "MODIFIED", object: cm }) // [{ type: "Added", object: cm }]
 * ```
 */
export const eventChanges = <A extends KubeObject>(
  cached: A | undefined,
  event: ObjectEvent<A>
): ReadonlyArray<Change<A>> =>
  event.type === "DELETED" ? [{ type: "Deleted", object: event.object }] : upsertChanges(cached, event.object)

/**
 * The notifications that turn the cache `current` into the fresh list `next`
 * (a relist after `410 Gone`, or the initial list): `Deleted` (final state
 * unknown) for every cached key the list no longer has, then `Added` for new
 * keys and `Modified` for changed ones, in list order. Unchanged objects (same
 * resourceVersion) produce nothing. A key whose uid changed yields `Deleted`
 * then `Added`, so owner-uid based consumers see the old object go.
 *
 * Pure: the Store applies the result; tests check it directly.
 *
 * @example
 * ```ts
 * declare const a1: ConfigMap, a2: ConfigMap, b1: ConfigMap // a1 and a2 are ns/a, b1 is ns/b
 * const changes = diff(new Map([["ns/a", a1]]), [a2, b1])
 * // [{ type: "Modified", object: a2, old: a1 }, { type: "Added", object: b1 }]
 * ```
 */
export const diff = <A extends KubeObject>(
  current: ReadonlyMap<string, A>,
  next: Iterable<A>
): ReadonlyArray<Change<A>> => {
  const fresh = new Map<string, A>()
  for (const object of next) fresh.set(Resource.keyOf(object), object)
  const changes: Array<Change<A>> = []
  for (const [key, old] of current) {
    if (!fresh.has(key)) changes.push({ type: "Deleted", object: old, finalStateUnknown: true })
  }
  for (const [key, object] of fresh) changes.push(...upsertChanges(current.get(key), object))
  return changes
}
