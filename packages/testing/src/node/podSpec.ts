import { EnvVar, Resource } from "@db-backup-operator/kube"
import { Schema } from "effect"

/**
 * The Pod as the process node reads it. The kube client's `Pod` models what
 * operators write; a kubelet needs more of the spec (working directory,
 * `envFrom`, capabilities, volume sources, mounts), and a Schema struct drops
 * what it does not name, so the node decodes Pods with this richer Schema of
 * the same kind. A kube `Pod` is assignable to it.
 */

const KeyToPath = Schema.Struct({
  key: Schema.String,
  path: Schema.String,
  mode: Schema.optionalKey(Schema.Int)
})
export type KeyToPath = typeof KeyToPath.Type

const ObjectItems = {
  name: Schema.optionalKey(Schema.String),
  items: Schema.optionalKey(Schema.Array(KeyToPath)),
  optional: Schema.optionalKey(Schema.Boolean)
}

const DownwardAPIFile = Schema.Struct({
  path: Schema.String,
  fieldRef: Schema.optionalKey(
    Schema.Struct({ fieldPath: Schema.String, apiVersion: Schema.optionalKey(Schema.String) })
  ),
  mode: Schema.optionalKey(Schema.Int)
})
export type DownwardAPIFile = typeof DownwardAPIFile.Type

/** One source of a `projected` volume (what the ServiceAccount admission plugin injects). */
const VolumeProjection = Schema.Struct({
  secret: Schema.optionalKey(Schema.Struct(ObjectItems)),
  configMap: Schema.optionalKey(Schema.Struct(ObjectItems)),
  downwardAPI: Schema.optionalKey(Schema.Struct({ items: Schema.optionalKey(Schema.Array(DownwardAPIFile)) })),
  serviceAccountToken: Schema.optionalKey(
    Schema.Struct({
      audience: Schema.optionalKey(Schema.String),
      expirationSeconds: Schema.optionalKey(Schema.Int),
      path: Schema.String
    })
  )
})
export type VolumeProjection = typeof VolumeProjection.Type

/** A Pod volume: the sources the process node can provide (others decode to a bare name). */
export const NodeVolume = Schema.Struct({
  name: Schema.String,
  emptyDir: Schema.optionalKey(
    Schema.Struct({ medium: Schema.optionalKey(Schema.String), sizeLimit: Schema.optionalKey(Schema.String) })
  ),
  secret: Schema.optionalKey(
    Schema.Struct({
      secretName: Schema.optionalKey(Schema.String),
      items: Schema.optionalKey(Schema.Array(KeyToPath)),
      defaultMode: Schema.optionalKey(Schema.Int),
      optional: Schema.optionalKey(Schema.Boolean)
    })
  ),
  configMap: Schema.optionalKey(Schema.Struct({ ...ObjectItems, defaultMode: Schema.optionalKey(Schema.Int) })),
  downwardAPI: Schema.optionalKey(
    Schema.Struct({
      items: Schema.optionalKey(Schema.Array(DownwardAPIFile)),
      defaultMode: Schema.optionalKey(Schema.Int)
    })
  ),
  projected: Schema.optionalKey(
    Schema.Struct({
      sources: Schema.optionalKey(Schema.Array(VolumeProjection)),
      defaultMode: Schema.optionalKey(Schema.Int)
    })
  ),
  persistentVolumeClaim: Schema.optionalKey(
    Schema.Struct({ claimName: Schema.String, readOnly: Schema.optionalKey(Schema.Boolean) })
  )
})
export type NodeVolume = typeof NodeVolume.Type

const ObjectRef = Schema.Struct({ name: Schema.String, optional: Schema.optionalKey(Schema.Boolean) })

/** `envFrom`: every key of a Secret or ConfigMap as a variable, with an optional prefix. */
const EnvFromSource = Schema.Struct({
  prefix: Schema.optionalKey(Schema.String),
  secretRef: Schema.optionalKey(ObjectRef),
  configMapRef: Schema.optionalKey(ObjectRef)
})

const SecurityContextFields = {
  runAsNonRoot: Schema.optionalKey(Schema.Boolean),
  runAsUser: Schema.optionalKey(Schema.Int),
  runAsGroup: Schema.optionalKey(Schema.Int),
  seccompProfile: Schema.optionalKey(Schema.Struct({ type: Schema.String }))
}

/** The container security context fields a container runtime acts on. */
export const NodeSecurityContext = Schema.Struct({
  ...SecurityContextFields,
  readOnlyRootFilesystem: Schema.optionalKey(Schema.Boolean),
  allowPrivilegeEscalation: Schema.optionalKey(Schema.Boolean),
  privileged: Schema.optionalKey(Schema.Boolean),
  capabilities: Schema.optionalKey(
    Schema.Struct({
      add: Schema.optionalKey(Schema.Array(Schema.String)),
      drop: Schema.optionalKey(Schema.Array(Schema.String))
    })
  )
})
export type NodeSecurityContext = typeof NodeSecurityContext.Type

/** `IntOrString`: a port number or the name of one of the container's `ports`. */
const IntOrString = Schema.Union([Schema.Int, Schema.String])

/**
 * A container probe: the handlers the process node runs (`httpGet`,
 * `tcpSocket`, `exec` in container mode) and its timing; `grpc` is decoded
 * only to say it is not supported.
 */
export const NodeProbe = Schema.Struct({
  httpGet: Schema.optionalKey(
    Schema.Struct({
      path: Schema.optionalKey(Schema.String),
      port: IntOrString,
      host: Schema.optionalKey(Schema.String),
      scheme: Schema.optionalKey(Schema.String),
      httpHeaders: Schema.optionalKey(Schema.Array(Schema.Struct({ name: Schema.String, value: Schema.String })))
    })
  ),
  tcpSocket: Schema.optionalKey(Schema.Struct({ port: IntOrString, host: Schema.optionalKey(Schema.String) })),
  exec: Schema.optionalKey(Schema.Struct({ command: Schema.optionalKey(Schema.Array(Schema.String)) })),
  grpc: Schema.optionalKey(Schema.Struct({ port: Schema.Int, service: Schema.optionalKey(Schema.String) })),
  initialDelaySeconds: Schema.optionalKey(Schema.Int),
  periodSeconds: Schema.optionalKey(Schema.Int),
  timeoutSeconds: Schema.optionalKey(Schema.Int),
  successThreshold: Schema.optionalKey(Schema.Int),
  failureThreshold: Schema.optionalKey(Schema.Int),
  terminationGracePeriodSeconds: Schema.optionalKey(Schema.Int)
})
export type NodeProbe = typeof NodeProbe.Type

const ContainerPort = Schema.Struct({
  name: Schema.optionalKey(Schema.String),
  containerPort: Schema.Int,
  protocol: Schema.optionalKey(Schema.String)
})

export const NodeContainer = Schema.Struct({
  name: Schema.String,
  image: Schema.String,
  command: Schema.optionalKey(Schema.Array(Schema.String)),
  args: Schema.optionalKey(Schema.Array(Schema.String)),
  workingDir: Schema.optionalKey(Schema.String),
  env: Schema.optionalKey(Schema.Array(EnvVar)),
  envFrom: Schema.optionalKey(Schema.Array(EnvFromSource)),
  imagePullPolicy: Schema.optionalKey(Schema.String),
  securityContext: Schema.optionalKey(NodeSecurityContext),
  terminationMessagePath: Schema.optionalKey(Schema.String),
  terminationMessagePolicy: Schema.optionalKey(Schema.String),
  ports: Schema.optionalKey(Schema.Array(ContainerPort)),
  readinessProbe: Schema.optionalKey(NodeProbe),
  livenessProbe: Schema.optionalKey(NodeProbe),
  startupProbe: Schema.optionalKey(NodeProbe),
  volumeMounts: Schema.optionalKey(
    Schema.Array(
      Schema.Struct({
        name: Schema.String,
        mountPath: Schema.String,
        readOnly: Schema.optionalKey(Schema.Boolean),
        subPath: Schema.optionalKey(Schema.String)
      })
    )
  )
})
export type NodeContainer = typeof NodeContainer.Type

export const NodePodSpec = Schema.Struct({
  containers: Schema.Array(NodeContainer),
  restartPolicy: Schema.optionalKey(Schema.String),
  serviceAccountName: Schema.optionalKey(Schema.String),
  automountServiceAccountToken: Schema.optionalKey(Schema.Boolean),
  nodeName: Schema.optionalKey(Schema.String),
  schedulerName: Schema.optionalKey(Schema.String),
  hostname: Schema.optionalKey(Schema.String),
  securityContext: Schema.optionalKey(
    Schema.Struct({
      ...SecurityContextFields,
      fsGroup: Schema.optionalKey(Schema.Int),
      supplementalGroups: Schema.optionalKey(Schema.Array(Schema.Int))
    })
  ),
  volumes: Schema.optionalKey(Schema.Array(NodeVolume)),
  terminationGracePeriodSeconds: Schema.optionalKey(Schema.Int),
  activeDeadlineSeconds: Schema.optionalKey(Schema.Int)
})
export type NodePodSpec = typeof NodePodSpec.Type

/**
 * core/v1 Pod with the spec a kubelet needs. Same kind and URLs as the kube
 * client's `Pod`; use it to read (and in tests, to create) Pods whose spec
 * goes beyond what `Pod` models.
 *
 * @example
 * ```ts
 * const kube = yield* KubeClient
 * const pods = yield* kube.list(NodePod, { namespace: "default" })
 * const workingDir = pods.items[0]?.spec.containers[0]?.workingDir
 * ```
 */
export const NodePod = Resource.make({
  group: "",
  version: "v1",
  kind: "Pod",
  plural: "pods",
  namespaced: true,
  fields: {
    spec: NodePodSpec,
    status: Schema.optionalKey(
      Schema.Struct({
        phase: Schema.optionalKey(Schema.String),
        startTime: Schema.optionalKey(Schema.String),
        podIP: Schema.optionalKey(Schema.String)
      })
    )
  }
})
export type NodePod = Resource.Type<typeof NodePod>
