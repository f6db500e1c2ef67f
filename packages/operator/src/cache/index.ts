/**
 * Watch caches: {@link Store} (objects of one kind by `namespace/name`, with
 * indexes), {@link Reflector} (list + watch keeping a Store current and
 * publishing its changes) and {@link Caches} (one shared reflector per kind and
 * selector for a whole Manager, each a {@link Cache} over the Manager's namespaces).
 *
 * @module
 */
export type { Cache } from "./Cache.ts"
export { Caches, type CachesShape, type Options as CachesOptions, type Selector as CacheSelector } from "./Caches.ts"
export { type Change, diff, eventChanges, type ObjectEvent } from "./Change.ts"
export * as Reconnect from "./Reconnect.ts"
export * as Reflector from "./Reflector.ts"
export * as ReflectorMetrics from "./ReflectorMetrics.ts"
export * as Store from "./Store.ts"
