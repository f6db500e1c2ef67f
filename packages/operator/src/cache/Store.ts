import { type KubeObject, Resource } from "@db-backup-operator/kube"
import { Effect, Option } from "effect"
import { type Change, diff, eventChanges, type ObjectEvent } from "./Change.ts"

/**
 * Computes the index values of an object, e.g. its owner uids or one label's
 * value. An object appears under each value returned; `[]` leaves it out. An
 * indexer must not throw: if it does, the object is left out of that index.
 */
export type Indexer<A> = (object: A) => ReadonlyArray<string>

/**
 * The read side of a cache of one kind, keyed by `namespace/name`
 * ({@link Resource.keyOf}). Every read is a cheap synchronous Effect over memory;
 * objects are shared, never copy them to mutate (they are decoded API objects,
 * treat them as immutable).
 *
 * @example
 * ```ts
 * declare const reflector: Reflector.Reflector<Job>
 * declare const owner: ConfigMap
 * const jobs = reflector.store
 * yield* jobs.addIndex("owner", (job: Job) => (job.metadata.ownerReferences ?? []).map((ref) => ref.uid))
 * const mine = yield* jobs.byIndex("owner", owner.metadata.uid ?? "")
 * const job = yield* jobs.get("db/backup-1")           // Option<Job>
 * const failed = yield* jobs.list((job) => (job.status?.failed ?? 0) > 0)
 * ```
 */
export interface Store<A extends KubeObject> {
  readonly get: (key: string) => Effect.Effect<Option.Option<A>>
  /** All objects (in insertion order), optionally only those matching `filter`. */
  readonly list: (filter?: (object: A) => boolean) => Effect.Effect<ReadonlyArray<A>>
  readonly keys: Effect.Effect<ReadonlyArray<string>>
  readonly size: Effect.Effect<number>
  /**
   * Adds (or replaces) the index `name`, built at once from the objects already
   * cached and kept up to date afterwards.
   */
  readonly addIndex: (name: string, indexer: Indexer<A>) => Effect.Effect<void>
  /** Objects whose index `name` contains `value`. Dies if no index `name` was added (a programming error). */
  readonly byIndex: (name: string, value: string) => Effect.Effect<ReadonlyArray<A>>
  /** The values index `name` currently holds, e.g. every owner uid seen. Dies on an unknown index. */
  readonly indexValues: (name: string) => Effect.Effect<ReadonlyArray<string>>
}

/**
 * A Store plus the operations its reflector uses to keep it current. Hand out
 * `reader` to consumers so only the reflector writes.
 */
export interface Writer<A extends KubeObject> extends Store<A> {
  readonly reader: Store<A>
  /** Applies one watch event and returns the notifications it causes. */
  readonly apply: (event: ObjectEvent<A>) => Effect.Effect<ReadonlyArray<Change<A>>>
  /** Replaces the whole content with a fresh list and returns the notifications ({@link diff}). */
  readonly replace: (objects: ReadonlyArray<A>) => Effect.Effect<ReadonlyArray<Change<A>>>
}

interface Index<A> {
  readonly indexer: Indexer<A>
  /** value -> keys */
  readonly values: Map<string, Set<string>>
  /** key -> the values it is filed under, to unfile it on update or delete */
  readonly filed: Map<string, ReadonlyArray<string>>
}

const safeValues = <A>(indexer: Indexer<A>, object: A): ReadonlyArray<string> => {
  try {
    return indexer(object)
  } catch {
    return []
  }
}

class UnknownIndexError extends Error {
  constructor(name: string) {
    super(`the store has no index "${name}": call addIndex("${name}", ...) first`)
  }
}

/**
 * An empty store. Plain mutable maps behind `Effect.sync`: JavaScript runs each
 * block to completion, so readers never see a half-applied change.
 *
 * @example
 * ```ts
 * declare const cm: ConfigMap
 * const store = yield* Store.make<ConfigMap>()
 * yield* store.apply({ type: "ADDED", object: cm })
 * yield* store.reader.get("ns/settings") // Option.some(cm)
 * ```
 */
export const make = <A extends KubeObject>(): Effect.Effect<Writer<A>> =>
  Effect.sync(() => {
    const objects = new Map<string, A>()
    const indexes = new Map<string, Index<A>>()

    const file = (index: Index<A>, key: string, object: A) => {
      const values = safeValues(index.indexer, object)
      index.filed.set(key, values)
      for (const value of values) {
        const keys = index.values.get(value)
        if (keys === undefined) index.values.set(value, new Set([key]))
        else keys.add(key)
      }
    }

    const unfile = (index: Index<A>, key: string) => {
      for (const value of index.filed.get(key) ?? []) {
        const keys = index.values.get(value)
        keys?.delete(key)
        if (keys?.size === 0) index.values.delete(value)
      }
      index.filed.delete(key)
    }

    const put = (object: A) => {
      const key = Resource.keyOf(object)
      for (const index of indexes.values()) unfile(index, key)
      objects.set(key, object)
      for (const index of indexes.values()) file(index, key, object)
    }

    const remove = (key: string) => {
      for (const index of indexes.values()) unfile(index, key)
      objects.delete(key)
    }

    const commit = (changes: ReadonlyArray<Change<A>>) => {
      for (const change of changes) {
        if (change.type === "Deleted") remove(Resource.keyOf(change.object))
        else put(change.object)
      }
      return changes
    }

    const indexNamed = (name: string): Effect.Effect<Index<A>> =>
      Effect.suspend(() => {
        const index = indexes.get(name)
        return index === undefined ? Effect.die(new UnknownIndexError(name)) : Effect.succeed(index)
      })

    const reader: Store<A> = {
      get: (key) => Effect.sync(() => Option.fromUndefinedOr(objects.get(key))),
      list: (filter) =>
        Effect.sync(() => {
          const all = [...objects.values()]
          return filter === undefined ? all : all.filter(filter)
        }),
      keys: Effect.sync(() => [...objects.keys()]),
      size: Effect.sync(() => objects.size),
      addIndex: (name, indexer) =>
        Effect.sync(() => {
          const index: Index<A> = { indexer, values: new Map(), filed: new Map() }
          for (const [key, object] of objects) file(index, key, object)
          indexes.set(name, index)
        }),
      byIndex: (name, value) =>
        Effect.map(indexNamed(name), (index) => {
          const found: Array<A> = []
          for (const key of index.values.get(value) ?? []) {
            const object = objects.get(key)
            if (object !== undefined) found.push(object)
          }
          return found
        }),
      indexValues: (name) => Effect.map(indexNamed(name), (index) => [...index.values.keys()])
    }

    const writer: Writer<A> = {
      ...reader,
      reader,
      apply: (event) => Effect.sync(() => commit(eventChanges(objects.get(Resource.keyOf(event.object)), event))),
      replace: (fresh) => Effect.sync(() => commit(diff(objects, fresh)))
    }
    return writer
  })
