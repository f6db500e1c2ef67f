/**
 * The process node: a fake kubelet that runs Pods as local processes or,
 * in container mode, from local images with podman.
 *
 * @module
 */
export type { ImageMap } from "./command.ts"
export { ProcessNodeError } from "./errors.ts"
export { ProcessNode, type ProcessNodeOptions, type ProcessNodeShape } from "./ProcessNode.ts"
export {
  NodeContainer,
  NodePod,
  NodePodSpec,
  NodeProbe,
  NodeSecurityContext,
  NodeVolume
} from "./podSpec.ts"
