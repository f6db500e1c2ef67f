import { Condition, CrdSchema, Resource } from "@db-backup-operator/kube"
import { Crd } from "@db-backup-operator/operator"
import { Schema } from "effect"

// One Schema types the spec and status in TypeScript, decodes what the API
// server sends, and generates the CRD (structural schema, bounds, CEL rule,
// printer columns, status subresource).

export const ConfigMapGeneratorSpec = Schema.Struct({
  data: Schema.Record(Schema.String, Schema.String)
    .check(Schema.isMaxProperties(64))
    .annotate({
      description: "Key/value pairs every generated ConfigMap holds.",
      ...CrdSchema.validations([
        {
          // Checked at `kubectl apply`, so a bad key never reaches the controller.
          rule: "self.all(k, size(k) <= 253 && k.matches('^[-._a-zA-Z0-9]+$'))",
          message: "data keys must be valid ConfigMap keys: letters, digits, '-', '_' or '.'"
        }
      ])
    }),
  replicas: Schema.optionalKey(
    Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 5 })).annotate({
      description: "How many ConfigMaps to generate, named <name>-0 .. <name>-(replicas-1).",
      default: 1
    })
  )
}).annotate({ description: "Desired state: the data, copied into `replicas` ConfigMaps." })

export const ConfigMapGeneratorStatus = Schema.Struct({
  observedGeneration: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))),
  configMaps: Schema.optionalKey(Schema.Array(Schema.String)).annotate({
    description: "Names of the ConfigMaps generated for the observed generation."
  }),
  conditions: Schema.optionalKey(Schema.Array(Condition))
}).annotate({ description: "Observed state, written by the controller only." })

/** `examples.db-backup-operator.dev/v1alpha1` ConfigMapGenerator. */
export const ConfigMapGenerator = Resource.custom({
  group: "examples.db-backup-operator.dev",
  version: "v1alpha1",
  kind: "ConfigMapGenerator",
  plural: "configmapgenerators",
  namespaced: true,
  spec: ConfigMapGeneratorSpec,
  status: ConfigMapGeneratorStatus
})
export type ConfigMapGenerator = Resource.Type<typeof ConfigMapGenerator>

/** The CRD, generated from the Schemas above. */
export const crd = Crd.make(ConfigMapGenerator, {
  shortNames: ["cmg"],
  categories: ["examples"],
  printerColumns: [
    { name: "Replicas", type: "integer", jsonPath: ".spec.replicas" },
    { name: "Ready", type: "string", jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
    { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" }
  ]
})
