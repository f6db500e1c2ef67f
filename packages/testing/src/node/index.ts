/**
 * The process node: a fake kubelet that runs Pods as local processes.
 *
 * @module
 */
export { expandReferences, type ImageMap, mappedCommand, parseImageMap } from "./command.ts"
export { ProcessNodeError } from "./errors.ts"
export { ProcessNode, type ProcessNodeOptions, type ProcessNodeShape } from "./ProcessNode.ts"
