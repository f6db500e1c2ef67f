import { KubeClient, type KubeError, KubeErrors, type KubeObject, type Resource } from "@db-backup-operator/kube"
import { Effect, Schema } from "effect"
import { createMergePatch } from "./mergePatch.ts"
import { targetOf } from "./target.ts"

/** Options of {@link patchStatus}. */
export interface PatchStatusOptions {
  /**
   * Also send `metadata.resourceVersion`, so the write fails with `Conflict` if the
   * object changed since it was read. Off by default: the status belongs to one
   * controller, and the write is a patch of the fields that changed, not a replace.
   */
  readonly optimisticLock?: boolean
  readonly fieldManager?: string
}

/** Objects with a status; its `observedGeneration` is written by {@link patchStatus}. */
export type WithStatus = KubeObject & { readonly status?: unknown }

const encodeStatus = <A extends KubeObject, I>(
  resource: Resource.Resource<A, I>,
  object: unknown,
  description: string
): Effect.Effect<unknown, KubeErrors.DecodeError> =>
  Schema.encodeUnknownEffect(resource.schema)(object).pipe(
    Effect.map((encoded) =>
      typeof encoded === "object" && encoded !== null && "status" in encoded ? encoded.status : undefined
    ),
    Effect.mapError(
      (error) =>
        new KubeErrors.DecodeError({
          kind: resource.kind,
          object: description,
          message: `${resource.kind} ${description}: status does not encode: ${error.message}`
        })
    )
  )

/**
 * Writes `status` to the status subresource of `object` with
 * `status.observedGeneration` set to `metadata.generation`, as a merge patch of
 * only what differs from the status `object` was read with (removed fields are
 * deleted). When nothing differs, no request is made and `object` is returned:
 * a level-triggered reconcile that finds everything in place must not write, or
 * its own write would trigger the next reconcile, forever.
 *
 * The status Schema should have an `observedGeneration` field; without one it is
 * simply not written.
 *
 * @example
 * ```ts
 * const conditions = yield* Conditions.setConditionNow(backup.status?.conditions, ready)
 * const stored = yield* Status.patchStatus(BackupResource, backup, { ...backup.status, conditions })
 * ```
 */
export const patchStatus = <A extends WithStatus, I>(
  resource: Resource.Resource<A, I>,
  object: A,
  status: NonNullable<A["status"]>,
  options?: PatchStatusOptions
): Effect.Effect<A, KubeError, KubeClient> =>
  Effect.gen(function* () {
    const target = yield* targetOf(resource, object, "patch status of")
    const description = target.namespace === undefined ? target.name : `${target.namespace}/${target.name}`
    const generation = object.metadata.generation
    const next =
      generation !== undefined && typeof status === "object" && status !== null
        ? { ...status, observedGeneration: generation }
        : status
    const before = yield* encodeStatus(resource, object, description)
    const after = yield* encodeStatus(resource, { ...object, status: next }, description)
    const diff = createMergePatch(before ?? {}, after ?? {})
    if (diff === undefined) return object
    const resourceVersion = object.metadata.resourceVersion
    const patch =
      options?.optimisticLock === true && resourceVersion !== undefined
        ? { metadata: { resourceVersion }, status: diff }
        : { status: diff }
    const kube = yield* KubeClient
    return yield* kube.mergePatch(resource, target.name, patch, {
      subresource: "status",
      ...(target.namespace === undefined ? {} : { namespace: target.namespace }),
      ...(options?.fieldManager === undefined ? {} : { fieldManager: options.fieldManager })
    })
  })
