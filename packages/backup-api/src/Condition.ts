import { Schema } from "effect"
import { NonNegativeInt, Timestamp } from "./Validation.ts"

/**
 * The `metav1.Condition` shape (`status.conditions[]`), with the same
 * validation the Kubernetes API applies to it, so `kubectl wait --for=condition=...`
 * and every dashboard that reads conditions understand ours.
 *
 * @example
 * ```ts
 * const ready: Condition = {
 *   type: "Ready", status: "True", reason: "BackupSucceeded", message: "last backup completed",
 *   lastTransitionTime: "2025-01-02T03:04:05Z", observedGeneration: 3
 * }
 * ```
 */
export const Condition = Schema.Struct({
  type: Schema.String.check(
    Schema.isMinCodePoints(1),
    Schema.isMaxCodePoints(316),
    Schema.isPattern(
      /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/u
    )
  ).annotate({ description: "Type of condition in CamelCase, e.g. Ready." }),
  status: Schema.Literals(["True", "False", "Unknown"]).annotate({
    description: "Status of the condition: True, False or Unknown."
  }),
  reason: Schema.String.check(
    Schema.isMinCodePoints(1),
    Schema.isMaxCodePoints(1024),
    Schema.isPattern(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/u)
  ).annotate({ description: "Programmatic identifier for the reason of the last transition, in CamelCase." }),
  message: Schema.String.check(Schema.isMaxCodePoints(32768)).annotate({
    description: "Human-readable message about the last transition."
  }),
  lastTransitionTime: Timestamp.annotate({ description: "Last time the condition changed status." }),
  observedGeneration: Schema.optionalKey(
    NonNegativeInt.annotate({ description: "metadata.generation the condition was set for." })
  )
})
export type Condition = typeof Condition.Type
