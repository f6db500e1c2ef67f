import { KubeErrors, type KubeObject, type Resource } from "@db-backup-operator/kube"
import { Effect } from "effect"

/** Where a write goes: the object's name and (for namespaced kinds) namespace. */
export interface Target {
  readonly name: string
  readonly namespace?: string
}

/**
 * The name and namespace of an object read from the API server. An object without
 * a name was never stored, so writing to it is a caller bug reported as BadRequest
 * (before any request is sent) rather than a defect, to keep one error channel.
 */
export const targetOf = (
  resource: Resource.Resource<KubeObject, unknown>,
  object: KubeObject,
  verb: string
): Effect.Effect<Target, KubeErrors.BadRequest> => {
  const name = object.metadata.name
  if (name === undefined || name === "") {
    return Effect.fail(
      new KubeErrors.BadRequest({
        message: `cannot ${verb} a ${resource.kind} without metadata.name`,
        request: `${verb} ${resource.plural}`,
        status: 400
      })
    )
  }
  const namespace = object.metadata.namespace
  return Effect.succeed(resource.namespaced && namespace !== undefined ? { name, namespace } : { name })
}
