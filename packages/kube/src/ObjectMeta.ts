import { Schema } from "effect"

/**
 * A controller or plain owner reference (`metadata.ownerReferences[]`).
 */
export const OwnerReference = Schema.Struct({
  apiVersion: Schema.String,
  kind: Schema.String,
  name: Schema.String,
  uid: Schema.String,
  controller: Schema.optionalKey(Schema.Boolean),
  blockOwnerDeletion: Schema.optionalKey(Schema.Boolean)
})
export type OwnerReference = typeof OwnerReference.Type

const StringMap = Schema.Record(Schema.String, Schema.String)

/**
 * The `metadata` of every Kubernetes object, with the fields controllers use.
 * Fields not modelled here (managedFields, ...) are dropped on decode, which is
 * safe because every write this library makes is a patch, never a replace.
 */
export const ObjectMeta = Schema.Struct({
  name: Schema.optionalKey(Schema.String),
  generateName: Schema.optionalKey(Schema.String),
  namespace: Schema.optionalKey(Schema.String),
  uid: Schema.optionalKey(Schema.String),
  resourceVersion: Schema.optionalKey(Schema.String),
  generation: Schema.optionalKey(Schema.Int),
  creationTimestamp: Schema.optionalKey(Schema.String),
  deletionTimestamp: Schema.optionalKey(Schema.String),
  deletionGracePeriodSeconds: Schema.optionalKey(Schema.Int),
  labels: Schema.optionalKey(StringMap),
  annotations: Schema.optionalKey(StringMap),
  finalizers: Schema.optionalKey(Schema.Array(Schema.String)),
  ownerReferences: Schema.optionalKey(Schema.Array(OwnerReference))
})
export type ObjectMeta = typeof ObjectMeta.Type

/** The part every object shares: what generic code (caches, queues, helpers) relies on. */
export interface KubeObject {
  readonly apiVersion?: string
  readonly kind?: string
  readonly metadata: ObjectMeta
}
