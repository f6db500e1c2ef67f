/**
 * Watch caches: {@link Store} (objects of one kind by `namespace/name`, with
 * indexes), {@link Watcher} (list + watch as a stream of events),
 * {@link Reflection} (applying those events to a Store), {@link FanOut}
 * (changes to many subscribers, each starting from a replay), {@link Reflector}
 * (the three composed: a Store kept current, and its changes) and {@link Caches} (one shared reflector per kind and
 * selector for a whole Manager, each a {@link Cache} over the Manager's namespaces).
 *
 * @module
 */
export type { Cache } from "./Cache.ts"
export { Caches, type CachesShape, type Options as CachesOptions, type Selector as CacheSelector } from "./Caches.ts"
export { type Change, diff, eventChanges, type ObjectEvent } from "./Change.ts"
export * as FanOut from "./FanOut.ts"
export * as Reflection from "./Reflection.ts"
export * as Reflector from "./Reflector.ts"
export * as ReflectorMetrics from "./ReflectorMetrics.ts"
export * as Store from "./Store.ts"
export * as Watcher from "./Watcher.ts"
