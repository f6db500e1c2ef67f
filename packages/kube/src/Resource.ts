import { Schema } from "effect"
import { type KubeObject, ObjectMeta } from "./ObjectMeta.ts"

/**
 * A Kubernetes kind: where it lives in the API and the Schema that decodes its objects.
 *
 * Define a kind once and get its TypeScript type (`Resource.Type<typeof Job>`),
 * runtime decoding of API objects, and (for custom kinds) its CRD.
 *
 * @example
 * ```ts
 * const Widget = Resource.custom({
 *   group: "example.com", version: "v1", kind: "Widget", plural: "widgets", namespaced: true,
 *   spec: Schema.Struct({ size: Schema.Int }),
 *   status: Schema.Struct({ ready: Schema.optionalKey(Schema.Boolean) })
 * })
 * type Widget = Resource.Type<typeof Widget>
 * ```
 */
export interface Resource<A extends KubeObject = KubeObject, I = unknown> {
  /** API group; `""` for the core group. */
  readonly group: string
  readonly version: string
  readonly kind: string
  /** Lower-case plural used in URLs, e.g. `jobs`. */
  readonly plural: string
  readonly namespaced: boolean
  /** `group/version`, or just `version` for the core group. */
  readonly apiVersion: string
  /** Decodes a whole object as the API server returns it. */
  readonly schema: Schema.Codec<A, I>
  /** For custom kinds: the spec and status Schemas a CRD is generated from. */
  readonly spec?: Schema.Top
  readonly status?: Schema.Top
}

/** The decoded object type of a resource. */
export type Type<R extends Resource<KubeObject, unknown>> = R extends Resource<infer A, unknown> ? A : never

/** The JSON (encoded) object type of a resource. */
export type Encoded<R extends Resource<KubeObject, unknown>> = R extends Resource<KubeObject, infer I> ? I : never

interface Identity {
  readonly group: string
  readonly version: string
  readonly kind: string
  readonly plural: string
  readonly namespaced: boolean
}

/** Struct fields that decode and encode without services (all Kubernetes object schemas). */
export type Fields = {
  readonly [x: string]: Schema.Top & { readonly DecodingServices: never; readonly EncodingServices: never }
}

const apiVersionOf = (group: string, version: string): string => (group === "" ? version : `${group}/${version}`)

/**
 * A kind whose top-level fields (besides apiVersion, kind and metadata) are given
 * as Schema fields, e.g. `{ spec, status }` for Job or `{ data, type }` for Secret.
 */
type ObjectFields<F extends Fields> = {
  readonly apiVersion: Schema.optionalKey<Schema.String>
  readonly kind: Schema.optionalKey<Schema.String>
  readonly metadata: typeof ObjectMeta
} & F

/** The object type a `make` call produces; deferred so the KubeObject shape is checked per kind. */
type ObjectType<F extends Fields> = Schema.Struct<ObjectFields<F>>["Type"] extends infer A extends KubeObject
  ? A
  : never

export const make = <const F extends Fields>(
  identity: Identity & { readonly fields: F }
): Resource<ObjectType<F>, Schema.Struct<ObjectFields<F>>["Encoded"]> => {
  const schema = Schema.Struct({
    apiVersion: Schema.optionalKey(Schema.String),
    kind: Schema.optionalKey(Schema.String),
    metadata: ObjectMeta,
    ...identity.fields
  })
  return {
    group: identity.group,
    version: identity.version,
    kind: identity.kind,
    plural: identity.plural,
    namespaced: identity.namespaced,
    apiVersion: apiVersionOf(identity.group, identity.version),
    // Sound: every struct built here has metadata: ObjectMeta; TypeScript cannot see through the generic mapping.
    schema: schema as unknown as Schema.Codec<ObjectType<F>, Schema.Struct<ObjectFields<F>>["Encoded"]>
  }
}

/**
 * A custom kind with a `spec` and an optional `status`; the same Schemas generate its CRD.
 */
export const custom = <Spec extends Fields[string], Status extends Fields[string]>(
  identity: Identity & { readonly spec: Spec; readonly status: Status }
) => {
  const resource = make({
    ...identity,
    fields: { spec: identity.spec, status: Schema.optionalKey(identity.status) }
  })
  return { ...resource, spec: identity.spec, status: identity.status }
}

/** `namespace/name` (or just `name` for cluster-scoped objects): the key queues and caches use. */
export const keyOf = (object: KubeObject): string => {
  const name = object.metadata.name ?? ""
  return object.metadata.namespace === undefined ? name : `${object.metadata.namespace}/${name}`
}

/**
 * The namespace and name a {@link keyOf} key stands for (no namespace for a
 * cluster-scoped key).
 *
 * @example
 * ```ts
 * Resource.splitKey("team/api") // { namespace: "team", name: "api" }
 * ```
 */
export const splitKey = (key: string): { readonly namespace: string | undefined; readonly name: string } => {
  const slash = key.indexOf("/")
  return slash === -1
    ? { namespace: undefined, name: key }
    : { namespace: key.slice(0, slash), name: key.slice(slash + 1) }
}
