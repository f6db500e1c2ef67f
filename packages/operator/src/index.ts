// The public API: what a controller author writes against (see README.md and
// examples/). Internals (the work queue, backoff, lease locks, metric objects,
// reconnect logic, merge-patch and time helpers, the HTTP endpoints server) are
// reached by this package's own tests through `../src/...`, not exported here:
// the Manager wires them, and their metrics are scraped from `/metrics`.
export * as Action from "./Action.ts"
export {
  type Cache,
  type CacheSelector,
  Caches,
  type CachesOptions,
  type CachesShape,
  type Change,
  type ObjectEvent,
  Reflector,
  Store
} from "./cache/index.ts"
export * as Controller from "./controller/Controller.ts"
export * as Predicates from "./controller/Predicates.ts"
export * as Source from "./controller/Source.ts"
export * as Crd from "./crd/Crd.ts"
export * as CrdFiles from "./crd/CrdFiles.ts"
export {
  Conditions,
  type EventInput,
  EventRecorder,
  type EventRecorderOptions,
  type EventRecorderShape,
  type EventType,
  Finalizers,
  Owners,
  Status
} from "./helpers/index.ts"
export * as LeaderElection from "./leader/LeaderElection.ts"
export * as Manager from "./manager/index.ts"
export { TerminalError } from "./TerminalError.ts"
