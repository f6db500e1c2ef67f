import type { KubeObject } from "../ObjectMeta.ts"
import type { Resource } from "../Resource.ts"

/** Where a kind's objects live: `/api/v1/...` for the core group, `/apis/<group>/<version>/...` otherwise. */
export const collectionPath = (resource: Resource<KubeObject, unknown>, namespace: string | undefined): string => {
  const root = resource.group === "" ? `/api/${resource.version}` : `/apis/${resource.group}/${resource.version}`
  const scoped =
    resource.namespaced && namespace !== undefined ? `${root}/namespaces/${encodeURIComponent(namespace)}` : root
  return `${scoped}/${resource.plural}`
}

/** The path of one object, optionally of one of its subresources (`status`, `binding`, `log`, ...). */
export const objectPath = (
  resource: Resource<KubeObject, unknown>,
  namespace: string | undefined,
  name: string,
  subresource?: string
): string => {
  const path = `${collectionPath(resource, namespace)}/${encodeURIComponent(name)}`
  return subresource === undefined ? path : `${path}/${subresource}`
}
