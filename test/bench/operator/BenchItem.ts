import { Resource } from "@db-backup-operator/kube"
import { Action, Controller, Predicates, Status } from "@db-backup-operator/operator"
import { Effect, Schema } from "effect"

// The trivial kind and controller of `npm run bench:operator`: each reconcile
// copies spec.value into status.value (and observedGeneration), one status
// patch per object, nothing else. What is left to measure is the framework:
// cache, queue, workers, client.

export const BenchItem = Resource.custom({
  group: "bench.db-backup-operator.dev",
  version: "v1",
  kind: "BenchItem",
  plural: "benchitems",
  namespaced: true,
  spec: Schema.Struct({ value: Schema.Int }),
  status: Schema.Struct({
    observedGeneration: Schema.optionalKey(Schema.Int),
    value: Schema.optionalKey(Schema.Int)
  })
})
export type BenchItem = Resource.Type<typeof BenchItem>

/** Whether the controller has written the status for the current spec. */
export const isWritten = (item: BenchItem): boolean =>
  item.status?.value === item.spec.value && item.status.observedGeneration === item.metadata.generation

export const benchController = (concurrency: number) =>
  Controller.make({
    name: "benchitem",
    for: BenchItem,
    concurrency,
    // Its own status writes must not wake it up again.
    predicates: [Predicates.generationChanged],
    reconcile: ({ object }) =>
      object === undefined
        ? Effect.succeed(Action.done)
        : Status.patchStatus(BenchItem, object, { ...object.status, value: object.spec.value }).pipe(
            Effect.as(Action.done)
          )
  })
