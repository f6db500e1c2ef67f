import { Schema } from "effect"
import * as Resource from "../Resource.ts"
import { Condition, Unmodelled } from "./common.ts"

const ObjectReference = Schema.Struct({
  apiVersion: Schema.optionalKey(Schema.String),
  kind: Schema.optionalKey(Schema.String),
  name: Schema.optionalKey(Schema.String),
  namespace: Schema.optionalKey(Schema.String),
  uid: Schema.optionalKey(Schema.String),
  resourceVersion: Schema.optionalKey(Schema.String),
  fieldPath: Schema.optionalKey(Schema.String)
})
export type ObjectReference = typeof ObjectReference.Type

/** events.k8s.io/v1 Event. */
export const Event = Resource.make({
  group: "events.k8s.io",
  version: "v1",
  kind: "Event",
  plural: "events",
  namespaced: true,
  fields: {
    eventTime: Schema.NullOr(Schema.String),
    reportingController: Schema.optionalKey(Schema.String),
    reportingInstance: Schema.optionalKey(Schema.String),
    action: Schema.optionalKey(Schema.String),
    reason: Schema.optionalKey(Schema.String),
    note: Schema.optionalKey(Schema.String),
    type: Schema.optionalKey(Schema.String),
    regarding: Schema.optionalKey(ObjectReference),
    series: Schema.optionalKey(Schema.Struct({ count: Schema.Int, lastObservedTime: Schema.String })),
    deprecatedCount: Schema.optionalKey(Schema.Int),
    deprecatedFirstTimestamp: Schema.optionalKey(Schema.NullOr(Schema.String)),
    deprecatedLastTimestamp: Schema.optionalKey(Schema.NullOr(Schema.String))
  }
})
export type Event = Resource.Type<typeof Event>

/** coordination.k8s.io/v1 Lease, for leader election. */
export const Lease = Resource.make({
  group: "coordination.k8s.io",
  version: "v1",
  kind: "Lease",
  plural: "leases",
  namespaced: true,
  fields: {
    spec: Schema.optionalKey(
      Schema.Struct({
        holderIdentity: Schema.optionalKey(Schema.NullOr(Schema.String)),
        leaseDurationSeconds: Schema.optionalKey(Schema.NullOr(Schema.Int)),
        acquireTime: Schema.optionalKey(Schema.NullOr(Schema.String)),
        renewTime: Schema.optionalKey(Schema.NullOr(Schema.String)),
        leaseTransitions: Schema.optionalKey(Schema.NullOr(Schema.Int))
      })
    )
  }
})
export type Lease = Resource.Type<typeof Lease>

/** apiextensions.k8s.io/v1 CustomResourceDefinition (the spec is kept whole, the status as conditions). */
export const CustomResourceDefinition = Resource.make({
  group: "apiextensions.k8s.io",
  version: "v1",
  kind: "CustomResourceDefinition",
  plural: "customresourcedefinitions",
  namespaced: false,
  fields: {
    spec: Unmodelled,
    // A CRD just created reports `conditions: null` until the API server has looked at it.
    status: Schema.optionalKey(
      Schema.Struct({ conditions: Schema.optionalKey(Schema.NullOr(Schema.Array(Condition))) })
    )
  }
})
export type CustomResourceDefinition = Resource.Type<typeof CustomResourceDefinition>
