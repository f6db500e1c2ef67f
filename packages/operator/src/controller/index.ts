export { type Controller, make, type Options, type Request } from "./Controller.ts"
export * as ControllerMetrics from "./ControllerMetrics.ts"
export * as Predicates from "./Predicates.ts"
export * as Source from "./Source.ts"
