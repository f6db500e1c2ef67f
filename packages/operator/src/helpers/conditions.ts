import type { Condition, ConditionStatus } from "@db-backup-operator/kube"
import { Clock, Effect } from "effect"
import { formatTime } from "./time.ts"

/**
 * Status conditions with `metav1.Condition`'s shape and rules, so `kubectl wait
 * --for=condition=Ready`, `kubectl describe` and every dashboard understand them.
 * The Schema itself is the kube package's `Condition` (one name for
 * `metav1.Condition`): put `Schema.Array(Condition)` in a custom kind's status.
 */

/** A condition to set: `lastTransitionTime` is filled in by {@link setCondition}. */
export interface ConditionInput {
  readonly type: string
  readonly status: ConditionStatus
  readonly reason: string
  readonly message: string
  readonly observedGeneration?: number
  /** Only to force a specific time; normally left out. */
  readonly lastTransitionTime?: string
}

type Conditions = ReadonlyArray<Condition> | undefined

/** The condition of `type`, if present. */
export const findCondition = (conditions: Conditions, type: string): Condition | undefined =>
  conditions?.find((condition) => condition.type === type)

/** Whether the condition of `type` is present with status `True`. */
export const isTrue = (conditions: Conditions, type: string): boolean =>
  findCondition(conditions, type)?.status === "True"

/** Whether the condition of `type` is present with status `False`. */
export const isFalse = (conditions: Conditions, type: string): boolean =>
  findCondition(conditions, type)?.status === "False"

const build = (input: ConditionInput, lastTransitionTime: string): Condition => {
  const base = {
    type: input.type,
    status: input.status,
    lastTransitionTime,
    reason: input.reason,
    message: input.message
  }
  return input.observedGeneration === undefined ? base : { ...base, observedGeneration: input.observedGeneration }
}

/**
 * Sets a condition following `meta.SetStatusCondition`: a new type is appended;
 * an existing one keeps its place and its `lastTransitionTime` unless its status
 * changes; `reason`, `message` and `observedGeneration` are updated in place.
 * Pure: returns a new array, or the same array when nothing changed (so a status
 * patch can be skipped).
 *
 * @example
 * ```ts
 * declare const backup: { readonly metadata: ObjectMeta; readonly status?: { readonly conditions?: ReadonlyArray<Condition> } }
 * const now = yield* Clock.currentTimeMillis
 * const conditions = Conditions.setCondition(backup.status?.conditions, {
 *   type: "Ready", status: "False", reason: "SecretMissing", message: "secret db/creds not found",
 *   observedGeneration: backup.metadata.generation ?? 0
 * }, now)
 * ```
 */
export const setCondition = (
  conditions: Conditions,
  next: ConditionInput,
  now: Date | number
): ReadonlyArray<Condition> => {
  const current = conditions ?? []
  const timestamp = next.lastTransitionTime ?? formatTime(typeof now === "number" ? now : now.getTime())
  const index = current.findIndex((condition) => condition.type === next.type)
  const existing = current[index]
  if (existing === undefined) return [...current, build(next, timestamp)]
  const updated = build(next, existing.status === next.status ? existing.lastTransitionTime : timestamp)
  const unchanged =
    updated.status === existing.status &&
    updated.lastTransitionTime === existing.lastTransitionTime &&
    updated.reason === existing.reason &&
    updated.message === existing.message &&
    updated.observedGeneration === existing.observedGeneration
  if (unchanged && conditions !== undefined) return conditions
  return current.map((condition, i) => (i === index ? updated : condition))
}

/**
 * {@link setCondition} at the current `Clock` time (the `TestClock` in tests).
 *
 * @example
 * ```ts
 * declare const status: { readonly conditions?: ReadonlyArray<Condition> }
 * const conditions = yield* Conditions.setConditionNow(status.conditions, {
 *   type: "Ready",
 *   status: "True",
 *   reason: "Succeeded",
 *   message: ""
 * })
 * ```
 */
export const setConditionNow = (
  conditions: Conditions,
  next: ConditionInput
): Effect.Effect<ReadonlyArray<Condition>> =>
  Effect.map(Clock.currentTimeMillis, (now) => setCondition(conditions, next, now))

/** Removes the condition of `type`; returns the same array when there was none. */
export const removeCondition = (conditions: Conditions, type: string): ReadonlyArray<Condition> => {
  const current = conditions ?? []
  return current.some((condition) => condition.type === type)
    ? current.filter((condition) => condition.type !== type)
    : current
}
