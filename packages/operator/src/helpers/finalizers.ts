import {
  type JsonPatchOperation,
  KubeClient,
  type KubeError,
  KubeErrors,
  type KubeObject,
  type Resource
} from "@db-backup-operator/kube"
import { Effect } from "effect"
import * as Action from "../Action.ts"
import { targetOf } from "./target.ts"

/**
 * Finalizers without losing anyone else's: every write is a JSON patch whose first
 * operation `test`s the part of the object it was computed from. If another
 * controller changed the finalizers in between, the API server rejects the whole
 * patch and the caller gets a `Conflict`; the reconcile then fails, is retried with
 * backoff and reads fresh data. Nothing is ever replaced blindly.
 */

/** Whether `object` carries `finalizer`. */
export const hasFinalizer = (object: KubeObject, finalizer: string): boolean =>
  object.metadata.finalizers?.includes(finalizer) ?? false

// The API server reports a JSON patch that does not apply (a failed `test`, an index
// that is gone) as a bare 422: "the server rejected our request due to an error in our
// request", with no causes (field validation errors always name theirs). Our patches
// are well-formed, so that means "the object changed under you": a Conflict to callers.
const asConflict = (error: KubeError): KubeError => {
  const patchDidNotApply =
    (error._tag === "Invalid" && error.causes.length === 0) ||
    ((error._tag === "Invalid" || error._tag === "BadRequest") && /test(ing value .*)? failed/iu.test(error.message))
  return patchDidNotApply
    ? new KubeErrors.Conflict({
        message: `the object changed since it was read: ${error.message}`,
        request: error.request
      })
    : error
}

const patch = <A extends KubeObject, I>(
  resource: Resource.Resource<A, I>,
  object: A,
  verb: string,
  operations: ReadonlyArray<JsonPatchOperation>
) =>
  Effect.gen(function* () {
    const target = yield* targetOf(resource, object, verb)
    const kube = yield* KubeClient
    return yield* kube
      .jsonPatch(
        resource,
        target.name,
        operations,
        target.namespace === undefined ? {} : { namespace: target.namespace }
      )
      .pipe(Effect.mapError(asConflict))
  })

/**
 * Adds `finalizer` to `object` unless it is already there, and returns the object
 * as stored. The patch tests that `metadata.finalizers` still equals what `object`
 * holds (or, when `object` has no finalizers at all, that its resourceVersion is
 * unchanged, since a JSON patch cannot test for an absent path), so concurrent
 * writers never overwrite each other: the loser gets `Conflict` and retries.
 *
 * @example
 * ```ts
 * const reconcile = (backup: Backup) => Effect.gen(function* () {
 *   const current = yield* Finalizers.ensureFinalizer(BackupResource, backup, "backup.example.com/cleanup")
 *   // ... create children; they are cleaned up before the finalizer is removed
 * })
 * ```
 */
export const ensureFinalizer = <A extends KubeObject, I>(
  resource: Resource.Resource<A, I>,
  object: A,
  finalizer: string
): Effect.Effect<A, KubeError, KubeClient> =>
  Effect.gen(function* () {
    if (hasFinalizer(object, finalizer)) return object
    const current = object.metadata.finalizers
    if (current !== undefined) {
      return yield* patch(resource, object, "add finalizer to", [
        { op: "test", path: "/metadata/finalizers", value: current },
        { op: "add", path: "/metadata/finalizers/-", value: finalizer }
      ])
    }
    const resourceVersion = object.metadata.resourceVersion
    if (resourceVersion === undefined) {
      // Not read from the API server (built by hand): read it so the patch has something to test.
      const target = yield* targetOf(resource, object, "add finalizer to")
      const kube = yield* KubeClient
      const live = yield* kube.get(
        resource,
        target.name,
        target.namespace === undefined ? {} : { namespace: target.namespace }
      )
      if (live.metadata.resourceVersion === undefined) {
        return yield* new KubeErrors.BadRequest({
          message: `${resource.kind} ${target.name} has no resourceVersion`,
          request: `GET ${resource.plural}`,
          status: 400
        })
      }
      return yield* ensureFinalizer(resource, live, finalizer)
    }
    return yield* patch(resource, object, "add finalizer to", [
      { op: "test", path: "/metadata/resourceVersion", value: resourceVersion },
      { op: "add", path: "/metadata/finalizers", value: [finalizer] }
    ])
  })

/**
 * Removes every occurrence of `finalizer` from `object` and returns the object as
 * stored (when it was the last finalizer of a deleted object, the API server
 * deletes it and the response is its final state). Each removed index is first
 * tested to still hold `finalizer`, so a concurrent change to the list fails the
 * patch with `Conflict` instead of removing someone else's entry.
 *
 * @example
 * ```ts
 * if (backup.metadata.deletionTimestamp !== undefined) {
 *   yield* cleanUp(backup)
 *   yield* Finalizers.removeFinalizer(BackupResource, backup, "backup.example.com/cleanup")
 * }
 * ```
 */
export const removeFinalizer = <A extends KubeObject, I>(
  resource: Resource.Resource<A, I>,
  object: A,
  finalizer: string
): Effect.Effect<A, KubeError, KubeClient> =>
  Effect.gen(function* () {
    const current = object.metadata.finalizers ?? []
    const indexes = current.flatMap((value, index) => (value === finalizer ? [index] : [])).reverse()
    if (indexes.length === 0) return object
    // Highest index first, so earlier removals do not shift the later ones.
    const operations = indexes.flatMap(
      (index): Array<JsonPatchOperation> => [
        { op: "test", path: `/metadata/finalizers/${index}`, value: finalizer },
        { op: "remove", path: `/metadata/finalizers/${index}` }
      ]
    )
    return yield* patch(resource, object, "remove finalizer from", operations)
  })

/** The two halves of a reconcile guarded by a finalizer; see {@link withFinalizer}. */
export interface FinalizerHandlers<A, E1, R1, E2, R2> {
  /**
   * The object is live: bring it to its desired state. It already carries the
   * finalizer, so anything created from here on is cleaned up before it goes.
   */
  readonly apply: (object: A) => Effect.Effect<Action.Action, E1, R1>
  /**
   * Deletion was requested: release what `apply` created. Succeed with
   * `Action.done` when all is released, and the finalizer is removed (the API
   * server then deletes the object); `Action.requeueAfter` keeps it, to look
   * again (children still terminating); a failure keeps it and is retried.
   */
  readonly cleanup: (object: A) => Effect.Effect<Action.Action, E2, R2>
}

/**
 * A reconcile guarded by `finalizer`, as kube-rs's `finalizer` and
 * controller-runtime's finalizer helpers: a live object gets the finalizer
 * (written before `apply` runs, so nothing is created that a deletion could
 * miss) and then `apply`; a deleted object that still carries it gets
 * `cleanup`, and the finalizer is removed once cleanup is done; a deleted
 * object without it is left alone. Every finalizer write is the conflict-safe
 * patch of {@link ensureFinalizer} and {@link removeFinalizer}.
 *
 * @example
 * ```ts
 * const reconcile = (widget: Widget) =>
 *   Finalizers.withFinalizer(Widget, widget, "widgets.example.com/cleanup", {
 *     apply: (live) => ensureChildren(live).pipe(Effect.as(Action.done)),
 *     cleanup: (deleted) => deleteChildren(deleted).pipe(Effect.as(Action.done))
 *   })
 * ```
 */
export const withFinalizer = <A extends KubeObject, I, E1, R1, E2, R2>(
  resource: Resource.Resource<A, I>,
  object: A,
  finalizer: string,
  handlers: FinalizerHandlers<A, E1, R1, E2, R2>
): Effect.Effect<Action.Action, E1 | E2 | KubeError, R1 | R2 | KubeClient> =>
  Effect.gen(function* () {
    if (object.metadata.deletionTimestamp === undefined) {
      return yield* handlers.apply(yield* ensureFinalizer(resource, object, finalizer))
    }
    if (!hasFinalizer(object, finalizer)) return Action.done
    const outcome = yield* handlers.cleanup(object)
    if (Action.isRequeueAfter(outcome)) return outcome
    yield* removeFinalizer(resource, object, finalizer)
    return Action.done
  })
