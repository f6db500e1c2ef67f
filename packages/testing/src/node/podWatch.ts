import { KubeClient, type KubeError } from "@db-backup-operator/kube"
import { Effect, Ref, Schedule, Stream } from "effect"
import { NodePod } from "./podSpec.ts"

/** What the pod informer tells the node. */
export type PodChange =
  /** A full list: every Pod that exists now (after a start or a relist). */
  | { readonly _tag: "Listed"; readonly pods: ReadonlyArray<NodePod> }
  | { readonly _tag: "Changed"; readonly pod: NodePod }
  | { readonly _tag: "Deleted"; readonly pod: NodePod }

/**
 * Lists then watches all Pods, forever: a watch that ends (server timeout) is
 * resumed from the last resourceVersion (bookmarks keep it fresh), a `410
 * Gone` or any other failure relists after a back-off. A Pod the kubelet may
 * have to bind is not yet on any node, so no field selector can narrow this.
 *
 * @example
 * ```ts
 * yield* watchPods((change) => Effect.log(change._tag)).pipe(Effect.forkScoped)
 * ```
 */
export const watchPods = <R>(handle: (change: PodChange) => Effect.Effect<void, never, R>) =>
  Effect.gen(function* () {
    const kube = yield* KubeClient
    const resourceVersion = yield* Ref.make("")

    const watchOnce = Effect.gen(function* () {
      const from = yield* Ref.get(resourceVersion)
      yield* kube.watch(NodePod, { resourceVersion: from, timeoutSeconds: 240, allowWatchBookmarks: true }).pipe(
        Stream.runForEach((event) =>
          Effect.gen(function* () {
            switch (event.type) {
              case "BOOKMARK":
                return yield* Ref.set(resourceVersion, event.resourceVersion)
              case "MALFORMED":
                if (event.resourceVersion !== undefined) yield* Ref.set(resourceVersion, event.resourceVersion)
                return yield* Effect.logWarning(`process node: ${event.error.message}`)
              default: {
                const version = event.object.metadata.resourceVersion
                if (version !== undefined) yield* Ref.set(resourceVersion, version)
                yield* handle(
                  event.type === "DELETED"
                    ? { _tag: "Deleted", pod: event.object }
                    : { _tag: "Changed", pod: event.object }
                )
              }
            }
          })
        ),
        // A watch that stays silent past the server's own timeout is stuck: start another.
        Effect.timeoutOption("300 seconds")
      )
    })

    const listAndWatch: Effect.Effect<never, KubeError, R> = Effect.gen(function* () {
      const listed = yield* kube.list(NodePod)
      yield* Ref.set(resourceVersion, listed.resourceVersion)
      yield* handle({ _tag: "Listed", pods: listed.items })
      return yield* Effect.forever(watchOnce)
    })

    return yield* listAndWatch.pipe(
      Effect.tapError((error) =>
        error._tag === "Gone" ? Effect.void : Effect.logWarning(`process node: pod watch: ${error.message}`)
      ),
      Effect.retry(Schedule.min([Schedule.exponential("250 millis"), Schedule.spaced("5 seconds")]))
    )
  })
