import { Schema } from "effect"

/** `map[string]string`, as labels, selectors and Secret/ConfigMap data. */
export const StringMap = Schema.Record(Schema.String, Schema.String)

/**
 * A condition as the built-in kinds report them (Job, Pod, Node, CRD), exported as
 * `BuiltinCondition`. Not `Condition` (`metav1.Condition`): these are the older
 * per-kind condition types (`JobCondition`, `PodCondition`, ...), where `reason`,
 * `message` and `lastTransitionTime` may be missing, `status` is not validated, and
 * `lastProbeTime`/`lastHeartbeatTime` exist. Decoding them with `Condition`'s rules
 * would reject objects the API server serves; use it to read, never in a CRD.
 */
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
