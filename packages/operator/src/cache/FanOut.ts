import { Effect, PubSub, type Scope, Semaphore, Stream } from "effect"

/**
 * Publishes items (a cache's changes) to any number of subscribers. Each
 * subscriber's stream starts with a replay of the current state, then continues
 * with what is published after it, with no gap and no duplicate in between: an
 * update and its publication are one step for subscribers, so a subscriber's
 * snapshot is taken either wholly before or wholly after each update.
 */
export interface FanOut<A> {
  /**
   * Runs `update` (e.g. applying a watch event to a Store) and publishes the
   * items it returns to every subscriber, as one step; returns the items.
   */
  readonly publish: (update: Effect.Effect<ReadonlyArray<A>>) => Effect.Effect<ReadonlyArray<A>>
  /**
   * A stream per subscriber: with `replay` (the default), the snapshot at the
   * time of subscription, then every item published afterwards. It never fails;
   * it ends when the FanOut's Scope closes. Each subscriber has an unbounded
   * buffer, so a slow one does not hold up `publish`.
   */
  readonly subscribe: (options?: { readonly replay?: boolean }) => Stream.Stream<A>
}

/**
 * A FanOut living in the current Scope. `snapshot` reads the state a new
 * subscriber starts from, e.g. `Added` for every object of a Store.
 *
 * @example
 * ```ts
 * import type { Change } from "./Change.ts"
 * import * as FanOut from "./FanOut.ts"
 * import * as Store from "./Store.ts"
 * import type { ConfigMap } from "@db-backup-operator/kube"
 * import { Effect, Stream } from "effect"
 *
 * const program = Effect.gen(function* () {
 *   const store = yield* Store.make<ConfigMap>()
 *   const fanOut = yield* FanOut.make<Change<ConfigMap>>(
 *     Effect.map(store.list(), (objects) => objects.map((object) => ({ type: "Added" as const, object })))
 *   )
 *   yield* fanOut.subscribe().pipe(Stream.runForEach((change) => Effect.log(change.type)), Effect.forkScoped)
 *   const cm: ConfigMap = { metadata: { name: "settings", namespace: "db", resourceVersion: "1" } }
 *   yield* fanOut.publish(store.apply({ type: "ADDED", object: cm }))
 * }).pipe(Effect.scoped)
 * ```
 */
export const make = <A>(snapshot: Effect.Effect<ReadonlyArray<A>>): Effect.Effect<FanOut<A>, never, Scope.Scope> =>
  Effect.gen(function* () {
    const pubsub = yield* PubSub.unbounded<A>()
    yield* Effect.addFinalizer(() => PubSub.shutdown(pubsub))
    // Serializes "update + publish" against "subscribe + snapshot": without it a
    // subscriber could read a snapshot that already holds an update whose items
    // it then receives live (a duplicate), or subscribe just after an update
    // whose state its snapshot missed (a gap).
    const lock = yield* Semaphore.make(1)

    const publish = (update: Effect.Effect<ReadonlyArray<A>>) =>
      Semaphore.withPermit(
        lock,
        Effect.tap(update, (items) =>
          Effect.sync(() => {
            for (const item of items) PubSub.publishUnsafe(pubsub, item)
          })
        )
      )

    const subscribe = (options?: { readonly replay?: boolean }): Stream.Stream<A> =>
      Stream.unwrap(
        Semaphore.withPermit(
          lock,
          Effect.gen(function* () {
            const subscription = yield* PubSub.subscribe(pubsub)
            const replayed = options?.replay === false ? [] : yield* snapshot
            return Stream.concat(Stream.fromIterable(replayed), Stream.fromSubscription(subscription))
          })
        )
      )

    return { publish, subscribe }
  })
