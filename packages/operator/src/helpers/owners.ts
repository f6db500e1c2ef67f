import type { KubeObject, OwnerReference } from "@db-backup-operator/kube"
import { Effect, Schema } from "effect"

/**
 * Owner references: the controller reference makes the garbage collector delete a
 * child with its owner and lets an owner watch map a child back to the key of the
 * object that created it.
 */

/** The owner cannot be referenced: it lacks a uid, a name, or its apiVersion/kind. */
export class InvalidOwner extends Schema.TaggedError<InvalidOwner>()("InvalidOwner", {
  message: Schema.String
}) {}

/** The object already has a different controller. */
export class AlreadyOwned extends Schema.TaggedError<AlreadyOwned>()("AlreadyOwned", {
  message: Schema.String,
  controller: Schema.String
}) {}

/** The kind of an owner: a `Resource` fits, since objects from lists often lack apiVersion/kind. */
export interface OwnerKind {
  readonly apiVersion: string
  readonly kind: string
}

/**
 * The controller reference to `owner` (`controller: true`, `blockOwnerDeletion:
 * true`), for a child's `metadata.ownerReferences`. Pass the owner's `Resource`
 * as `kind` when the object may lack `apiVersion`/`kind` (list items do).
 *
 * @example
 * ```ts
 * declare const backup: KubeObject // from a list: may lack apiVersion and kind
 * declare const BackupResource: Resource.Resource<KubeObject, unknown>
 * const ref = yield* Owners.controllerReference(backup, BackupResource)
 * const job = { metadata: { name: "backup-1", namespace: "db", ownerReferences: [ref] } }
 * ```
 */
export const controllerReference = (
  owner: KubeObject,
  kind?: OwnerKind
): Effect.Effect<OwnerReference, InvalidOwner> => {
  const apiVersion = kind?.apiVersion ?? owner.apiVersion
  const kindName = kind?.kind ?? owner.kind
  const { name, uid } = owner.metadata
  if (apiVersion === undefined || kindName === undefined) {
    return Effect.fail(
      new InvalidOwner({ message: `owner ${name ?? "<unnamed>"} has no apiVersion/kind; pass its Resource` })
    )
  }
  if (name === undefined || uid === undefined) {
    return Effect.fail(
      new InvalidOwner({ message: `${kindName} ${name ?? "<unnamed>"} has no name or uid (not stored yet?)` })
    )
  }
  return Effect.succeed({ apiVersion, kind: kindName, name, uid, controller: true, blockOwnerDeletion: true })
}

/** The owner reference marked `controller: true`, if any. */
export const controllerOf = (object: KubeObject): OwnerReference | undefined =>
  object.metadata.ownerReferences?.find((reference) => reference.controller === true)

/**
 * Whether `owner` is the controller of `object` (compared by uid, as
 * `metav1.IsControlledBy`: a recreated owner with the same name is a different owner).
 *
 * @example
 * ```ts
 * const mine = jobs.filter((job) => Owners.isControlledBy(job, backup))
 * ```
 */
export const isControlledBy = (object: KubeObject, owner: KubeObject): boolean => {
  const uid = owner.metadata.uid
  return uid !== undefined && controllerOf(object)?.uid === uid
}

/**
 * `object`'s owner references with `owner` as controller, as controller-runtime's
 * `SetControllerReference`: an existing reference to the same owner is replaced,
 * other (non-controller) owners are kept, and a different controller is an error.
 *
 * @example
 * ```ts
 * const ownerReferences = yield* Owners.withControllerReference(job, backup, BackupResource)
 * ```
 */
export const withControllerReference = (
  object: KubeObject,
  owner: KubeObject,
  kind?: OwnerKind
): Effect.Effect<ReadonlyArray<OwnerReference>, InvalidOwner | AlreadyOwned> =>
  Effect.flatMap(controllerReference(owner, kind), (reference) => {
    const existing = object.metadata.ownerReferences ?? []
    const other = controllerOf(object)
    if (other !== undefined && other.uid !== reference.uid) {
      return Effect.fail(
        new AlreadyOwned({
          message: `${object.metadata.name ?? "object"} is already controlled by ${other.kind} ${other.name}`,
          controller: `${other.kind}/${other.name}`
        })
      )
    }
    return Effect.succeed([...existing.filter((ref) => ref.uid !== reference.uid), reference])
  })
