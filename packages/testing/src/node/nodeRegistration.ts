import { arch, cpus, totalmem } from "node:os"
import { KubeClient, type KubeError, Lease, Node } from "@db-backup-operator/kube"
import { Clock, type Duration, Effect, Schedule, type Scope } from "effect"
import { formatMicroTime, now } from "./time.ts"

/** What the node tells the API about itself. */
export interface NodeRegistrationOptions {
  readonly nodeName: string
  readonly hostIP: string
  /** How often the Ready condition and the Lease are renewed (the kubelet: 10 s). */
  readonly heartbeat: Duration.Input
  /** Where kube-apiserver reaches the node's kubelet endpoint (`kubectl logs`), on `hostIP`. */
  readonly kubeletPort: number
  /** `nodeInfo.containerRuntimeVersion`, e.g. `podman://4.3.1`. */
  readonly containerRuntimeVersion: string
}

const leaseNamespace = "kube-node-lease"
const leaseDurationSeconds = 40

const goArch = (): string => {
  const value = arch()
  return value === "x64" ? "amd64" : value === "ia32" ? "386" : value
}

/** Capacity as the kubelet reports it: all CPUs, memory in Ki, 110 Pods. */
const capacity = (): Record<string, string> => ({
  cpu: String(Math.max(1, cpus().length)),
  memory: `${Math.floor(totalmem() / 1024)}Ki`,
  pods: "110",
  "ephemeral-storage": "10Gi"
})

const conditions = (heartbeat: string, transition: string) =>
  [
    ["MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"],
    ["DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"],
    ["PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"],
    ["Ready", "True", "KubeletReady", "process node is posting ready status"]
  ].map(([type, status, reason, message]) => ({
    type,
    status,
    reason,
    message,
    lastHeartbeatTime: heartbeat,
    lastTransitionTime: transition
  }))

/**
 * Registers the Node (Ready, with capacity, addresses and node info), keeps it
 * alive with a heartbeat (the Ready condition's lastHeartbeatTime and a Lease
 * in `kube-node-lease`, owned by the Node) and deletes it when the scope
 * closes. A Node left over under the same name is taken over.
 *
 * @example
 * ```ts
 * yield* registerNode({
 *   nodeName: "process-node",
 *   hostIP: "127.0.0.1",
 *   heartbeat: "10 seconds",
 *   kubeletPort: 10250,
 *   containerRuntimeVersion: "process://"
 * })
 * ```
 */
export const registerNode = (
  options: NodeRegistrationOptions
): Effect.Effect<void, KubeError, KubeClient | Scope.Scope> =>
  Effect.gen(function* () {
    const kube = yield* KubeClient
    const name = options.nodeName
    const labels = {
      "kubernetes.io/hostname": name,
      "kubernetes.io/os": "linux",
      "kubernetes.io/arch": goArch(),
      "node.kubernetes.io/instance-type": "process-node"
    }
    const version = yield* kube.request({ method: "GET", path: "/version" }).pipe(
      Effect.map((body) =>
        typeof body === "object" && body !== null && "gitVersion" in body && typeof body.gitVersion === "string"
          ? body.gitVersion
          : "v0.0.0"
      ),
      Effect.orElseSucceed(() => "v0.0.0")
    )
    const node = yield* Effect.acquireRelease(
      kube
        .create(Node, { metadata: { name, labels }, spec: {} })
        .pipe(
          Effect.catchTag("AlreadyExists", () =>
            kube.mergePatch(Node, name, { metadata: { labels }, spec: { unschedulable: null } })
          )
        ),
      () =>
        kube.delete(Node, name).pipe(
          // The API server may already be going away: never hold teardown for long.
          Effect.timeout("5 seconds"),
          Effect.ignore
        )
    )
    const registeredAt = yield* now
    const resources = capacity()
    yield* kube.mergePatch(
      Node,
      name,
      {
        status: {
          capacity: resources,
          allocatable: resources,
          conditions: conditions(registeredAt, registeredAt),
          addresses: [
            { type: "InternalIP", address: options.hostIP },
            { type: "Hostname", address: name }
          ],
          daemonEndpoints: { kubeletEndpoint: { Port: options.kubeletPort } },
          nodeInfo: {
            machineID: "",
            systemUUID: "",
            bootID: "",
            kernelVersion: "",
            osImage: "process node",
            containerRuntimeVersion: options.containerRuntimeVersion,
            kubeletVersion: version,
            kubeProxyVersion: "",
            operatingSystem: "linux",
            architecture: goArch()
          }
        }
      },
      { subresource: "status" }
    )

    // The API server taints a new Node not-ready; the node lifecycle controller (off in
    // test control planes) would lift it once Ready. Nothing else taints a fresh Node.
    yield* kube.mergePatch(Node, name, { spec: { taints: null } })

    const renewLease = Effect.gen(function* () {
      const renewTime = formatMicroTime(yield* Clock.currentTimeMillis)
      yield* kube
        .mergePatch(Lease, name, { spec: { holderIdentity: name, renewTime } }, { namespace: leaseNamespace })
        .pipe(
          Effect.catchTag("NotFound", () =>
            kube.create(Lease, {
              metadata: {
                name,
                namespace: leaseNamespace,
                ownerReferences: [{ apiVersion: "v1", kind: "Node", name, uid: node.metadata.uid ?? "" }]
              },
              spec: { holderIdentity: name, leaseDurationSeconds, renewTime }
            })
          )
        )
    })
    const beat = Effect.gen(function* () {
      const time = yield* now
      yield* kube.mergePatch(
        Node,
        name,
        { status: { conditions: conditions(time, registeredAt) } },
        { subresource: "status" }
      )
      yield* renewLease
    }).pipe(Effect.catch((error) => Effect.logWarning(`process node: heartbeat of node ${name}: ${error.message}`)))
    yield* beat
    yield* beat.pipe(Effect.repeat(Schedule.spaced(options.heartbeat)), Effect.forkScoped)
  })
