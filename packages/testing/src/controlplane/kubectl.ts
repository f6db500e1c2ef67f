import { Effect } from "effect"
import { ChildProcessSpawner } from "effect/process"
import { runProcess } from "../process/run.ts"
import { ControlPlaneError } from "./ControlPlaneError.ts"

/** What a kubectl run printed, and its exit code (non-zero is a result, not a failure). */
export interface KubectlResult {
  readonly stdout: string
  readonly stderr: string
  readonly exitCode: number
}

/** Runs kubectl with fixed global flags; see {@link makeKubectl}. */
export type Kubectl = (
  args: ReadonlyArray<string>,
  options?: { readonly stdin?: string }
) => Effect.Effect<KubectlResult, ControlPlaneError>

/**
 * A `kubectl` runner bound to a kubeconfig, with a private discovery cache
 * (so a previous cluster on the same port never answers for this one). The
 * binary is `$KUBECTL`, else `kubectl` from PATH.
 *
 * @example
 * ```ts
 * import { ChildProcessSpawner } from "effect/process"
 * declare const kubeconfigPath: string, cacheDir: string
 * const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
 * const kubectl = makeKubectl(kubeconfigPath, cacheDir, spawner)
 * const { stdout } = yield* kubectl(["get", "namespaces", "-o", "name"])
 * ```
 */
export const makeKubectl =
  (kubeconfigPath: string, cacheDir: string, spawner: ChildProcessSpawner.ChildProcessSpawner["Service"]): Kubectl =>
  (args, options = {}) =>
    runProcess(
      process.env.KUBECTL !== undefined && process.env.KUBECTL !== "" ? process.env.KUBECTL : "kubectl",
      [`--kubeconfig=${kubeconfigPath}`, `--cache-dir=${cacheDir}`, ...args],
      { stdin: options.stdin, timeout: "5 minutes" }
    ).pipe(
      Effect.provideService(ChildProcessSpawner.ChildProcessSpawner, spawner),
      Effect.mapError((cause) => new ControlPlaneError({ message: `kubectl: ${cause.message}`, cause }))
    )
