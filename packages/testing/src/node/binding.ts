import { KubeClient, type KubeError } from "@db-backup-operator/kube"
import { Effect } from "effect"
import type { NodePod } from "./podSpec.ts"
import { isTerminalPhase } from "./podStatus.ts"

/**
 * True for a Pod the default scheduler would place: not yet on a node, for the
 * default scheduler, not being deleted, not finished.
 */
export const needsBinding = (pod: NodePod): boolean =>
  (pod.spec.nodeName ?? "") === "" &&
  (pod.spec.schedulerName ?? "default-scheduler") === "default-scheduler" &&
  pod.metadata.deletionTimestamp === undefined &&
  !isTerminalPhase(pod.status?.phase)

/**
 * Binds a Pod to a node through its `binding` subresource, as the scheduler
 * does; the uid makes it a precondition, so a Pod recreated under the same
 * name is not bound by mistake.
 *
 * @example
 * ```ts
 * import type { NodePod } from "./podSpec.ts"
 * declare const pod: NodePod
 * if (needsBinding(pod)) yield* bindPod(pod, "process-node")
 * ```
 */
export const bindPod = (pod: NodePod, nodeName: string): Effect.Effect<void, KubeError, KubeClient> =>
  Effect.gen(function* () {
    const kube = yield* KubeClient
    const namespace = pod.metadata.namespace ?? "default"
    const name = pod.metadata.name ?? ""
    yield* kube.request({
      method: "POST",
      path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}/binding`,
      body: {
        apiVersion: "v1",
        kind: "Binding",
        metadata: { name, namespace, ...(pod.metadata.uid === undefined ? {} : { uid: pod.metadata.uid }) },
        target: { apiVersion: "v1", kind: "Node", name: nodeName }
      }
    })
  })
