// One name per concept: `KubeClient` is the client (its statics build it), the
// option and result types are exported by name, `Condition` is metav1.Condition
// (`BuiltinCondition` is the looser one built-in kinds report). The undici pool
// (`Dispatcher`, `UndiciTransport`) is at `@db-backup-operator/kube/undici`.
export * from "./builtins/cluster.ts"
export { Condition as BuiltinCondition, StringMap } from "./builtins/common.ts"
export * from "./builtins/core.ts"
export * from "./builtins/workloads.ts"
export { Condition, ConditionStatus } from "./Condition.ts"
export * as CrdSchema from "./CrdSchema.ts"
export * as Connection from "./client/Connection.ts"
export * as Http from "./client/Http.ts"
export {
  type ApplyOptions,
  type ClientOptions,
  type DeleteOptions,
  type JsonPatchOperation,
  KubeClient,
  type KubeClientShape,
  type ListOptions,
  type ListResult,
  type RawRequest,
  type Selector,
  type WatchOptions,
  type WriteOptions
} from "./client/KubeClient.ts"
export * as RateLimiter from "./client/RateLimiter.ts"
export type { WatchEvent } from "./client/WatchEvent.ts"
export type { KubeError } from "./errors.ts"
export * as KubeErrors from "./errors.ts"
export * from "./ObjectMeta.ts"
export * as Resource from "./Resource.ts"
