import { Schema } from "effect"

/** `map[string]string`, as labels, selectors and Secret/ConfigMap data. */
export const StringMap = Schema.Record(Schema.String, Schema.String)

/** A metav1.Condition-like entry as the built-in kinds report them (Job, Pod, Node, CRD). */
export const Condition = Schema.Struct({
  type: Schema.String,
  status: Schema.String,
  reason: Schema.optionalKey(Schema.String),
  message: Schema.optionalKey(Schema.String),
  lastTransitionTime: Schema.optionalKey(Schema.String),
  lastProbeTime: Schema.optionalKey(Schema.NullOr(Schema.String)),
  lastHeartbeatTime: Schema.optionalKey(Schema.String),
  observedGeneration: Schema.optionalKey(Schema.Int)
})
export type Condition = typeof Condition.Type

/** Fields the library does not model but must let through on create (the rest of a PodSpec, say). */
export const Unmodelled = Schema.Record(Schema.String, Schema.Unknown)
