import type { Layer } from "effect"
import {
  files,
  OperatorProcess,
  type OperatorProcessOptions,
  type Stack,
  type StackError,
  stackLayer
} from "../stack/localStack.ts"

/**
 * Everything the end-to-end tests run against, shared with `npm start`
 * (apps/operator/src/localStack.ts): a real control plane with the generated
 * CRD, PostgreSQL, the GCS emulator, the process node running backup Jobs with
 * the real runner, and the operator binary as its own process.
 */

export const crdFile = files.crd

/** The image backup Jobs use in these tests; the process node runs it as the real runner. */
export const runnerImage = "db-backup-runner:e2e"

/** The operator process (kill, stop, start, logs); see {@link OperatorProcess}. */
export const Operator = OperatorProcess

/**
 * The environment with the operator started with these flags (the runner
 * image is always {@link runnerImage}). One operator per control plane, so a
 * test file that needs other flags builds its own environment.
 *
 * @example
 * ```ts
 * layer(E2E.layerWith({ backupInterval: "3 seconds" }), { excludeTestServices: true })("...", (it) => { ... })
 * ```
 */
export const layerWith = (options: Omit<OperatorProcessOptions, "runnerImage">) =>
  stackLayer({ ...options, runnerImage })

/** The environment with the operator's default flags (5-minute interval, no cross-namespace references). */
export const layer: Layer.Layer<Stack, StackError> = layerWith({})

export { KubeClient } from "@db-backup-operator/kube"
export { waitUntilReady } from "@db-backup-operator/testing"
