/**
 * The process node: a fake kubelet that runs Pods as local processes.
 *
 * @module
 */
export type { ImageMap } from "./command.ts"
export { ProcessNodeError } from "./errors.ts"
export { ProcessNode, type ProcessNodeOptions, type ProcessNodeShape } from "./ProcessNode.ts"
