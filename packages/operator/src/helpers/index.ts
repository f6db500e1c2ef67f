export * as Conditions from "./conditions.ts"
export * as Events from "./events.ts"
export {
  type EventInput,
  EventRecorder,
  type EventRecorderOptions,
  type EventRecorderShape,
  type EventType
} from "./events.ts"
export * as Finalizers from "./finalizers.ts"
export * as MergePatch from "./mergePatch.ts"
export * as Owners from "./owners.ts"
export * as Status from "./status.ts"
export * as KubeTime from "./time.ts"
