import { Schema } from "effect"
import * as Resource from "../Resource.ts"
import { Condition, StringMap } from "./common.ts"

const KeyRef = Schema.Struct({
  name: Schema.String,
  key: Schema.String,
  optional: Schema.optionalKey(Schema.Boolean)
})

/** An env var: a literal `value` or a reference resolved by the kubelet. */
export const EnvVar = Schema.Struct({
  name: Schema.String,
  value: Schema.optionalKey(Schema.String),
  valueFrom: Schema.optionalKey(
    Schema.Struct({
      secretKeyRef: Schema.optionalKey(KeyRef),
      configMapKeyRef: Schema.optionalKey(KeyRef),
      fieldRef: Schema.optionalKey(
        Schema.Struct({ fieldPath: Schema.String, apiVersion: Schema.optionalKey(Schema.String) })
      )
    })
  )
})
export type EnvVar = typeof EnvVar.Type

export const SecurityContext = Schema.Struct({
  runAsNonRoot: Schema.optionalKey(Schema.Boolean),
  runAsUser: Schema.optionalKey(Schema.Int),
  runAsGroup: Schema.optionalKey(Schema.Int),
  readOnlyRootFilesystem: Schema.optionalKey(Schema.Boolean),
  allowPrivilegeEscalation: Schema.optionalKey(Schema.Boolean),
  capabilities: Schema.optionalKey(Schema.Struct({ drop: Schema.optionalKey(Schema.Array(Schema.String)) })),
  seccompProfile: Schema.optionalKey(Schema.Struct({ type: Schema.String }))
})

export const ResourceRequirements = Schema.Struct({
  requests: Schema.optionalKey(StringMap),
  limits: Schema.optionalKey(StringMap)
})

export const VolumeMount = Schema.Struct({
  name: Schema.String,
  mountPath: Schema.String,
  readOnly: Schema.optionalKey(Schema.Boolean),
  subPath: Schema.optionalKey(Schema.String)
})

export const Container = Schema.Struct({
  name: Schema.String,
  image: Schema.String,
  command: Schema.optionalKey(Schema.Array(Schema.String)),
  args: Schema.optionalKey(Schema.Array(Schema.String)),
  env: Schema.optionalKey(Schema.Array(EnvVar)),
  imagePullPolicy: Schema.optionalKey(Schema.String),
  resources: Schema.optionalKey(ResourceRequirements),
  securityContext: Schema.optionalKey(SecurityContext),
  terminationMessagePath: Schema.optionalKey(Schema.String),
  terminationMessagePolicy: Schema.optionalKey(Schema.String),
  volumeMounts: Schema.optionalKey(Schema.Array(VolumeMount))
})
export type Container = typeof Container.Type

/**
 * A Pod volume: the sources this client models. Encoding drops any other
 * field, and the API server takes a volume without a source for an emptyDir,
 * so a source must be added here before it is used.
 */
export const Volume = Schema.Struct({
  name: Schema.String,
  emptyDir: Schema.optionalKey(
    Schema.Struct({ medium: Schema.optionalKey(Schema.String), sizeLimit: Schema.optionalKey(Schema.String) })
  ),
  persistentVolumeClaim: Schema.optionalKey(
    Schema.Struct({ claimName: Schema.String, readOnly: Schema.optionalKey(Schema.Boolean) })
  )
})

/** A Pod's toleration of a node taint. */
export const Toleration = Schema.Struct({
  key: Schema.optionalKey(Schema.String),
  operator: Schema.optionalKey(Schema.String),
  value: Schema.optionalKey(Schema.String),
  effect: Schema.optionalKey(Schema.String),
  tolerationSeconds: Schema.optionalKey(Schema.Int)
})
export type Toleration = typeof Toleration.Type

export const PodSpec = Schema.Struct({
  containers: Schema.Array(Container),
  restartPolicy: Schema.optionalKey(Schema.String),
  serviceAccountName: Schema.optionalKey(Schema.String),
  automountServiceAccountToken: Schema.optionalKey(Schema.Boolean),
  nodeName: Schema.optionalKey(Schema.String),
  schedulerName: Schema.optionalKey(Schema.String),
  securityContext: Schema.optionalKey(
    Schema.Struct({
      runAsNonRoot: Schema.optionalKey(Schema.Boolean),
      runAsUser: Schema.optionalKey(Schema.Int),
      runAsGroup: Schema.optionalKey(Schema.Int),
      fsGroup: Schema.optionalKey(Schema.Int),
      seccompProfile: Schema.optionalKey(Schema.Struct({ type: Schema.String }))
    })
  ),
  volumes: Schema.optionalKey(Schema.Array(Volume)),
  terminationGracePeriodSeconds: Schema.optionalKey(Schema.Int),
  activeDeadlineSeconds: Schema.optionalKey(Schema.Int),
  nodeSelector: Schema.optionalKey(StringMap),
  tolerations: Schema.optionalKey(Schema.Array(Toleration)),
  priorityClassName: Schema.optionalKey(Schema.String),
  /** core/v1 Affinity, passed through as the API server validates it (nodeAffinity, podAffinity, podAntiAffinity). */
  affinity: Schema.optionalKey(Schema.Record(Schema.String, Schema.Unknown))
})
export type PodSpec = typeof PodSpec.Type

const ContainerState = Schema.Struct({
  waiting: Schema.optionalKey(
    Schema.Struct({ reason: Schema.optionalKey(Schema.String), message: Schema.optionalKey(Schema.String) })
  ),
  running: Schema.optionalKey(Schema.Struct({ startedAt: Schema.optionalKey(Schema.String) })),
  terminated: Schema.optionalKey(
    Schema.Struct({
      exitCode: Schema.Int,
      reason: Schema.optionalKey(Schema.String),
      message: Schema.optionalKey(Schema.String),
      startedAt: Schema.optionalKey(Schema.String),
      finishedAt: Schema.optionalKey(Schema.String)
    })
  )
})

export const ContainerStatus = Schema.Struct({
  name: Schema.String,
  image: Schema.optionalKey(Schema.String),
  imageID: Schema.optionalKey(Schema.String),
  ready: Schema.optionalKey(Schema.Boolean),
  started: Schema.optionalKey(Schema.Boolean),
  restartCount: Schema.optionalKey(Schema.Int),
  state: Schema.optionalKey(ContainerState)
})
export type ContainerStatus = typeof ContainerStatus.Type

export const PodStatus = Schema.Struct({
  phase: Schema.optionalKey(Schema.String),
  conditions: Schema.optionalKey(Schema.Array(Condition)),
  containerStatuses: Schema.optionalKey(Schema.Array(ContainerStatus)),
  startTime: Schema.optionalKey(Schema.String),
  reason: Schema.optionalKey(Schema.String),
  message: Schema.optionalKey(Schema.String),
  hostIP: Schema.optionalKey(Schema.String),
  podIP: Schema.optionalKey(Schema.String)
})

/** core/v1 Pod. */
export const Pod = Resource.make({
  group: "",
  version: "v1",
  kind: "Pod",
  plural: "pods",
  namespaced: true,
  fields: { spec: PodSpec, status: Schema.optionalKey(PodStatus) }
})
export type Pod = Resource.Type<typeof Pod>

export const PodTemplateSpec = Schema.Struct({
  metadata: Schema.optionalKey(
    Schema.Struct({ labels: Schema.optionalKey(StringMap), annotations: Schema.optionalKey(StringMap) })
  ),
  spec: PodSpec
})

/** batch/v1 Job. */
export const Job = Resource.make({
  group: "batch",
  version: "v1",
  kind: "Job",
  plural: "jobs",
  namespaced: true,
  fields: {
    spec: Schema.Struct({
      template: PodTemplateSpec,
      backoffLimit: Schema.optionalKey(Schema.Int),
      activeDeadlineSeconds: Schema.optionalKey(Schema.Int),
      ttlSecondsAfterFinished: Schema.optionalKey(Schema.Int),
      completions: Schema.optionalKey(Schema.Int),
      parallelism: Schema.optionalKey(Schema.Int),
      podFailurePolicy: Schema.optionalKey(Schema.Unknown),
      /** When a replacement Pod may start: once the old one is terminating (the default), or only once it has failed. */
      podReplacementPolicy: Schema.optionalKey(Schema.Literals(["TerminatingOrFailed", "Failed"])),
      selector: Schema.optionalKey(Schema.Unknown),
      suspend: Schema.optionalKey(Schema.Boolean)
    }),
    status: Schema.optionalKey(
      Schema.Struct({
        conditions: Schema.optionalKey(Schema.Array(Condition)),
        startTime: Schema.optionalKey(Schema.String),
        completionTime: Schema.optionalKey(Schema.String),
        active: Schema.optionalKey(Schema.Int),
        succeeded: Schema.optionalKey(Schema.Int),
        failed: Schema.optionalKey(Schema.Int),
        terminating: Schema.optionalKey(Schema.Int),
        ready: Schema.optionalKey(Schema.Int)
      })
    )
  }
})
export type Job = Resource.Type<typeof Job>

/** Whether a Job has finished, and how: the Job controller's terminal conditions. */
export const jobOutcome = (job: Job): "Complete" | "Failed" | undefined => {
  for (const condition of job.status?.conditions ?? []) {
    if (condition.status !== "True") continue
    if (condition.type === "Complete") return "Complete"
    if (condition.type === "Failed") return "Failed"
  }
  return undefined
}
