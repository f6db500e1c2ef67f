import { Schema } from "effect"
import * as Resource from "../Resource.ts"
import { Condition, StringMap } from "./common.ts"

/** core/v1 Namespace. */
export const Namespace = Resource.make({
  group: "",
  version: "v1",
  kind: "Namespace",
  plural: "namespaces",
  namespaced: false,
  fields: {
    status: Schema.optionalKey(Schema.Struct({ phase: Schema.optionalKey(Schema.String) }))
  }
})
export type Namespace = Resource.Type<typeof Namespace>

/** core/v1 Secret. Its values are secrets: never log a decoded Secret. */
export const Secret = Resource.make({
  group: "",
  version: "v1",
  kind: "Secret",
  plural: "secrets",
  namespaced: true,
  fields: {
    type: Schema.optionalKey(Schema.String),
    data: Schema.optionalKey(StringMap),
    stringData: Schema.optionalKey(StringMap)
  }
})
export type Secret = Resource.Type<typeof Secret>

/** core/v1 ConfigMap. */
export const ConfigMap = Resource.make({
  group: "",
  version: "v1",
  kind: "ConfigMap",
  plural: "configmaps",
  namespaced: true,
  fields: { data: Schema.optionalKey(StringMap) }
})
export type ConfigMap = Resource.Type<typeof ConfigMap>

/** core/v1 ServiceAccount. */
export const ServiceAccount = Resource.make({
  group: "",
  version: "v1",
  kind: "ServiceAccount",
  plural: "serviceaccounts",
  namespaced: true,
  fields: {}
})
export type ServiceAccount = Resource.Type<typeof ServiceAccount>

/** core/v1 Node (the fields a node agent reports). */
export const Node = Resource.make({
  group: "",
  version: "v1",
  kind: "Node",
  plural: "nodes",
  namespaced: false,
  fields: {
    spec: Schema.optionalKey(Schema.Struct({ unschedulable: Schema.optionalKey(Schema.Boolean) })),
    status: Schema.optionalKey(
      Schema.Struct({
        conditions: Schema.optionalKey(Schema.Array(Condition)),
        capacity: Schema.optionalKey(StringMap),
        allocatable: Schema.optionalKey(StringMap)
      })
    )
  }
})
export type Node = Resource.Type<typeof Node>
