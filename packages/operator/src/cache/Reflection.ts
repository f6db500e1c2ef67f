import type { KubeObject } from "@db-backup-operator/kube"
import { Effect } from "effect"
import type { Change } from "./Change.ts"
import type * as Store from "./Store.ts"
import type * as Watcher from "./Watcher.ts"

/**
 * Applies one watcher event to a Store and returns the changes it caused: a
 * full list replaces the content (`Deleted`, final state unknown, for keys that
 * vanished; see {@link Store.Writer.replace}), a watch event is applied to its
 * key, a malformed object changes nothing.
 *
 * @example
 * ```ts
 * import * as Reflection from "./Reflection.ts"
 * import * as Store from "./Store.ts"
 * import type { ConfigMap } from "@db-backup-operator/kube"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const store = yield* Store.make<ConfigMap>()
 *   const a: ConfigMap = { metadata: { name: "a", namespace: "db", resourceVersion: "1" } }
 *   yield* Reflection.apply(store, { _tag: "Listed", reason: "initial", objects: [a], resourceVersion: "1" })
 *   // [{ type: "Added", object: a }]
 * })
 * ```
 */
export const apply = <A extends KubeObject>(
  store: Store.Writer<A>,
  event: Watcher.Event<A>
): Effect.Effect<ReadonlyArray<Change<A>>> => {
  switch (event._tag) {
    case "Listed":
      return store.replace(event.objects)
    case "Watched":
      return store.apply(event.event)
    case "Malformed":
      return Effect.succeed([])
  }
}
