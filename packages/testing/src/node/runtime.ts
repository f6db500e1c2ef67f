import type { KubeClient } from "@db-backup-operator/kube"
import { Data, type Duration, type Effect, type FileSystem, type Path, type Scope } from "effect"
import type { ChildProcessSpawner } from "effect/process"
import type { NodeContainer, NodePod } from "./podSpec.ts"
import type { ExecInContainer } from "./probes.ts"

/**
 * The container cannot be created yet and stays waiting with this reason
 * (`ErrImageNeverPull`, `CreateContainerConfigError`, `CreateContainerError`,
 * `ContainerCreating`); the Pod worker retries, as the kubelet does.
 */
export class ContainerWaiting extends Data.TaggedError("ContainerWaiting")<{
  readonly reason: string
  readonly message: string
}> {}

/** The container was created but could not be started (the kubelet's `StartError`, exit code 128). */
export class StartError extends Data.TaggedError("StartError")<{ readonly message: string }> {}

/** A host directory the container sees at `containerPath` (a Pod volume). */
export interface Mount {
  readonly hostPath: string
  readonly containerPath: string
  readonly readOnly: boolean
}

/** What a runtime needs to start one instance of a container. */
export interface ContainerStart {
  readonly pod: NodePod
  readonly container: NodeContainer
  readonly restartCount: number
  /** The resolved environment, base variables included; values may be secret. */
  readonly env: Readonly<Record<string, string>>
  /** The Pod's own directory on the host. */
  readonly podDir: string
  /** The Pod's scratch directory: a process's working directory and `HOME`. */
  readonly workDir: string
  /** The host file that plays the container's `terminationMessagePath`; exists and is empty. */
  readonly messageFile: string
  /** stdout and stderr go here, appended; exists and is empty. */
  readonly logFile: string
  /** The Pod's volumes this container mounts (empty where the runtime cannot mount). */
  readonly mounts: ReadonlyArray<Mount>
}

/** How an instance ended. */
export interface ContainerExit {
  readonly exitCode: number
  /** Overrides `Completed`/`Error` (e.g. `OOMKilled`). */
  readonly reason?: string | undefined
}

/** One started instance of a container. */
export interface RunningContainer {
  /** `process://<pid>`, `podman://<id>`. */
  readonly containerID: string
  /** The image's ID or digest as `status.containerStatuses[].imageID` reports it. */
  readonly imageID: string
  /**
   * Completes once the instance has stopped and its output is in the log
   * file; fails with {@link StartError} when it never really started.
   */
  readonly exited: Effect.Effect<ContainerExit, StartError>
  /** SIGTERM (or the image's stop signal), SIGKILL after `grace`. */
  readonly stop: (grace: Duration.Duration) => Effect.Effect<void>
  /**
   * Runs a command inside the instance (an `exec` probe): its exit code and
   * output, or why it could not run. Absent where there is nothing to exec
   * into (a local process).
   */
  readonly exec?: ExecInContainer | undefined
}

/** What runtimes may use, besides a Scope. */
export type RuntimeServices = KubeClient | FileSystem.FileSystem | Path.Path | ChildProcessSpawner.ChildProcessSpawner

/**
 * How a node runs containers: as local processes, or as containers of a
 * container engine. The Pod worker owns the lifecycle (env, restarts, status,
 * deletion); a runtime only turns one instance into something running.
 *
 * @example
 * ```ts
 * import type { NodeContainer, NodePod } from "./podSpec.ts"
 * declare const runtime: ContainerRuntime
 * declare const pod: NodePod, container: NodeContainer, env: Record<string, string>
 * declare const podDir: string, workDir: string, messageFile: string, logFile: string
 * const running = yield* runtime.start({ pod, container, restartCount: 0, env, podDir, workDir, messageFile, logFile, mounts: [] })
 * const { exitCode } = yield* running.exited
 * ```
 */
export interface ContainerRuntime {
  /** `process` or `podman`, for logs and the Node's `containerRuntimeVersion`. */
  readonly name: string
  /** Whether the Pod's volumes are mounted into its containers (only a container engine can). */
  readonly mountsVolumes: boolean
  /**
   * Variables the runtime puts in every container before the Pod's own
   * (a process gets `PATH` and `HOME` here; an image brings its own).
   */
  readonly baseEnv: (pod: NodePod, workDir: string) => Readonly<Record<string, string>>
  /**
   * Makes sure the image is there (the kubelet's image pull); fails with
   * `ErrImageNeverPull` when it is not. Runs before the env is resolved.
   */
  readonly pullImage: (container: NodeContainer) => Effect.Effect<void, ContainerWaiting, RuntimeServices>
  /**
   * Starts one instance. The scope is the instance's: closing it kills
   * whatever is left of it and removes it.
   */
  readonly start: (
    options: ContainerStart
  ) => Effect.Effect<RunningContainer, ContainerWaiting | StartError, RuntimeServices | Scope.Scope>
}
