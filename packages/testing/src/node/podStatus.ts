/**
 * Pod status as the kubelet computes it, as plain JSON for a merge patch of the
 * `status` subresource. Pure: the worker keeps the container states and asks
 * for the whole status after every change.
 */

/** `ContainerState` (exactly one of the three is set). */
export type ContainerStateJson =
  | { readonly waiting: { readonly reason: string; readonly message?: string } }
  | { readonly running: { readonly startedAt: string } }
  | {
      readonly terminated: {
        readonly exitCode: number
        readonly reason: string
        readonly message?: string
        readonly startedAt?: string
        readonly finishedAt: string
        readonly containerID?: string
      }
    }

/** `ContainerStatus`, including `lastState` (which the kube client's Pod schema does not model). */
export interface ContainerStatusJson {
  readonly name: string
  readonly image: string
  readonly imageID: string
  readonly containerID?: string
  readonly ready: boolean
  readonly started: boolean
  readonly restartCount: number
  readonly state: ContainerStateJson
  readonly lastState: ContainerStateJson | Record<string, never>
}

export interface PodConditionJson {
  readonly type: string
  readonly status: "True" | "False"
  readonly reason?: string
  readonly message?: string
  readonly lastProbeTime: null
  readonly lastTransitionTime: string
}

export type PodPhase = "Pending" | "Running" | "Succeeded" | "Failed"

export interface PodStatusJson {
  readonly phase: PodPhase
  readonly conditions: ReadonlyArray<PodConditionJson>
  readonly containerStatuses: ReadonlyArray<ContainerStatusJson>
  readonly startTime: string
  readonly hostIP: string
  readonly hostIPs: ReadonlyArray<{ readonly ip: string }>
  readonly podIP: string
  readonly podIPs: ReadonlyArray<{ readonly ip: string }>
}

/** A container waiting for the first time (no previous run), as right after binding. */
export const waitingStatus = (
  container: { readonly name: string; readonly image: string },
  reason = "ContainerCreating",
  message?: string
): ContainerStatusJson => ({
  name: container.name,
  image: container.image,
  imageID: "",
  ready: false,
  started: false,
  restartCount: 0,
  state: { waiting: message === undefined ? { reason } : { reason, message } },
  lastState: {}
})

const isWaiting = (state: ContainerStateJson) => "waiting" in state
const isRunning = (state: ContainerStateJson) => "running" in state
const exitCodeOf = (state: ContainerStateJson | Record<string, never>): number | undefined =>
  "terminated" in state && state.terminated !== undefined ? state.terminated.exitCode : undefined

/**
 * The kubelet's `getPhase`: waiting containers that never ran keep the Pod
 * Pending; any running container makes it Running; once all have stopped it
 * is Succeeded when every exit code is 0, Failed under `restartPolicy: Never`
 * (or when the Pod is being torn down), and still Running while a restart
 * is due.
 */
export const podPhase = (
  restartPolicy: string,
  containers: ReadonlyArray<ContainerStatusJson>,
  terminal: boolean
): PodPhase => {
  let waiting = 0
  let running = 0
  let stopped = 0
  let succeeded = 0
  for (const status of containers) {
    if (isRunning(status.state)) running++
    else if (isWaiting(status.state)) {
      // A container backing off before a restart has run before: it counts as stopped.
      const last = exitCodeOf(status.lastState)
      if (last === undefined) waiting++
      else {
        stopped++
        if (last === 0) succeeded++
      }
    } else {
      stopped++
      if (exitCodeOf(status.state) === 0) succeeded++
    }
  }
  if (terminal) return stopped === containers.length && succeeded === stopped ? "Succeeded" : "Failed"
  if (waiting > 0) return "Pending"
  if (running > 0) return "Running"
  if (stopped > 0) {
    if (restartPolicy === "Always") return "Running"
    if (succeeded === stopped) return "Succeeded"
    if (restartPolicy === "Never") return "Failed"
    return "Running"
  }
  return "Pending"
}

type ConditionIntent = Omit<PodConditionJson, "lastTransitionTime" | "lastProbeTime">

/** Keeps `lastTransitionTime` while a condition's status does not change. */
const withTransitionTimes = (
  intents: ReadonlyArray<ConditionIntent>,
  previous: ReadonlyArray<PodConditionJson>,
  now: string
): ReadonlyArray<PodConditionJson> =>
  intents.map((intent) => {
    const before = previous.find((condition) => condition.type === intent.type)
    return {
      ...intent,
      lastProbeTime: null,
      lastTransitionTime: before !== undefined && before.status === intent.status ? before.lastTransitionTime : now
    }
  })

/** Everything the status depends on. */
export interface PodStatusInput {
  readonly restartPolicy: string
  readonly containers: ReadonlyArray<ContainerStatusJson>
  /** The Pod is being deleted and its containers will not run again. */
  readonly terminal: boolean
  readonly startTime: string
  readonly hostIP: string
  /** The Pod's own address; default `hostIP`. */
  readonly podIP?: string | undefined
  readonly previousConditions: ReadonlyArray<PodConditionJson>
  readonly now: string
}

/**
 * The whole Pod status: phase, the five kubelet conditions, container statuses
 * and addresses (the Pod shares the host's network; its own address is one of
 * the loopback's).
 *
 * @example
 * ```ts
 * declare const containers: ReadonlyArray<ContainerStatusJson>
 * declare const startTime: string, now: string, name: string, namespace: string
 * const kube = yield* KubeClient
 * const status = podStatus({
 *   restartPolicy: "Never",
 *   containers,
 *   terminal: false,
 *   startTime,
 *   hostIP: "127.0.0.1",
 *   previousConditions: [],
 *   now
 * })
 * yield* kube.mergePatch(Pod, name, { status }, { namespace, subresource: "status" })
 * ```
 */
export const podStatus = (input: PodStatusInput): PodStatusJson => {
  const phase = podPhase(input.restartPolicy, input.containers, input.terminal)
  const finished = phase === "Succeeded" || phase === "Failed"
  const unready = input.containers.filter((status) => !status.ready).map((status) => status.name)
  const readiness: Omit<ConditionIntent, "type"> = finished
    ? { status: "False", reason: "PodCompleted" }
    : unready.length === 0
      ? { status: "True" }
      : {
          status: "False",
          reason: "ContainersNotReady",
          message: `containers with unready status: [${unready.join(" ")}]`
        }
  const conditions = withTransitionTimes(
    [
      { type: "PodReadyToStartContainers", status: finished ? "False" : "True" },
      { type: "Initialized", status: "True" },
      { type: "Ready", ...readiness },
      { type: "ContainersReady", ...readiness },
      { type: "PodScheduled", status: "True" }
    ],
    input.previousConditions,
    input.now
  )
  return {
    phase,
    conditions,
    containerStatuses: input.containers,
    startTime: input.startTime,
    hostIP: input.hostIP,
    hostIPs: [{ ip: input.hostIP }],
    podIP: input.podIP ?? input.hostIP,
    podIPs: [{ ip: input.podIP ?? input.hostIP }]
  }
}

/** Pods in these phases never run again. */
export const isTerminalPhase = (phase: string | undefined): boolean => phase === "Succeeded" || phase === "Failed"
