import { Conditions } from "@db-backup-operator/operator"

/**
 * Status conditions of backup resources: the framework's `metav1.Condition`
 * Schema, so `kubectl wait --for=condition=Ready` and dashboards understand them
 * and the controller's `Conditions.setCondition` produces exactly this shape.
 */
export const Condition = Conditions.Condition
export type Condition = Conditions.Condition
