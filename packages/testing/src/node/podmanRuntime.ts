import { Duration, Effect, FileSystem, Option, Result } from "effect"
import type { ChildProcessSpawner } from "effect/process"
import { containerUlimitArgs, podmanGlobalArgs } from "../containers/engine.ts"
import { inspectContainer, inspectImage, type LocalImage, podman, removeContainers } from "../containers/podman.ts"
import { lastLines } from "../process/run.ts"
import { expandReferences } from "./command.ts"
import { startContainerProcess } from "./containerProcess.ts"
import type { NodeContainer, NodePod } from "./podSpec.ts"
import { type ContainerRuntime, type ContainerStart, ContainerWaiting, type Mount, StartError } from "./runtime.ts"

/** Options of {@link podmanRuntime}. */
export interface PodmanRuntimeOptions {
  /** Put on every container, so the node finds (and removes) what it started. */
  readonly labels: Readonly<Record<string, string>>
}

/**
 * Variables podman itself reads. A container's value for one of them cannot
 * travel through podman's own environment (podman would act on it), so it is
 * passed as `--env=NAME=value`: names of paths and settings, not credentials.
 *
 * @example
 * ```ts
 * envArgs({ PASSWORD: "s3cr3t", PATH: "/app/bin" })
 * // { args: ["--env=PASSWORD", "--env=PATH=/app/bin"], podmanEnv: { PASSWORD: "s3cr3t" } }
 * ```
 */
const podmanOwnVariables = new Set([
  "PATH",
  "HOME",
  "TMPDIR",
  "XDG_RUNTIME_DIR",
  "XDG_CONFIG_HOME",
  "XDG_DATA_HOME",
  "XDG_CACHE_HOME",
  "NOTIFY_SOCKET",
  "LISTEN_PID",
  "LISTEN_FDS",
  "LISTEN_FDNAMES",
  "REGISTRY_AUTH_FILE",
  "STORAGE_DRIVER",
  "STORAGE_OPTS",
  "CONTAINER_HOST",
  "CONTAINER_CONNECTION",
  "CONTAINER_SSHKEY",
  "CONTAINER_PASSPHRASE"
])
const podmanOwnPrefixes = ["CONTAINERS_", "PODMAN_", "BUILDAH_", "_CONTAINERS_"]

const readByPodman = (name: string): boolean =>
  podmanOwnVariables.has(name) || podmanOwnPrefixes.some((prefix) => name.startsWith(prefix))

/**
 * `--env` flags and podman's extra environment: every value travels in the
 * environment of the podman process (`--env=NAME` copies it from there), so
 * none, secrets included, appears in an argv.
 */
export const envArgs = (
  env: Readonly<Record<string, string>>
): { readonly args: ReadonlyArray<string>; readonly podmanEnv: Readonly<Record<string, string>> } => {
  const args: Array<string> = []
  const podmanEnv: Record<string, string> = {}
  for (const [name, value] of Object.entries(env)) {
    if (readByPodman(name)) args.push(`--env=${name}=${value}`)
    else {
      args.push(`--env=${name}`)
      podmanEnv[name] = value
    }
  }
  return { args, podmanEnv }
}

/** An image's `USER`: a numeric uid, or a name this node cannot resolve without the image's /etc/passwd. */
const parseImageUser = (user: string): { readonly uid?: number; readonly name?: string; readonly spec: string } => {
  const [userPart = ""] = user.split(":")
  if (userPart === "") return { uid: 0, spec: "" }
  return /^\d+$/u.test(userPart) ? { uid: Number(userPart), spec: userPart } : { name: userPart, spec: userPart }
}

/** `name_namespace(uid)`, as the kubelet names a Pod in messages. */
const describePod = (pod: NodePod) =>
  `${pod.metadata.name ?? ""}_${pod.metadata.namespace ?? ""}(${pod.metadata.uid ?? ""})`

/**
 * The security flags of one container: the container's security context over
 * the Pod's, as the kubelet merges them, and the kubelet's `runAsNonRoot`
 * check against the image's user (a `CreateContainerConfigError` when it fails).
 *
 * @example
 * ```ts
 * const args = securityArgs(pod, container, { user: "65532:65532" }) // Result of ["--user=1000", "--read-only", ...]
 * ```
 */
export const securityArgs = (
  pod: NodePod,
  container: NodeContainer,
  image: Pick<LocalImage, "user">
): Result.Result<ReadonlyArray<string>, ContainerWaiting> => {
  const podContext = pod.spec.securityContext ?? {}
  const context = container.securityContext ?? {}
  const runAsUser = context.runAsUser ?? podContext.runAsUser
  const runAsGroup = context.runAsGroup ?? podContext.runAsGroup
  const runAsNonRoot = context.runAsNonRoot ?? podContext.runAsNonRoot
  const seccomp = context.seccompProfile ?? podContext.seccompProfile
  const imageUser = parseImageUser(image.user)
  const refuse = (message: string) =>
    Result.fail(new ContainerWaiting({ reason: "CreateContainerConfigError", message }))

  if (runAsNonRoot === true) {
    const where = `(pod: "${describePod(pod)}", container: ${container.name})`
    if (runAsUser === 0) return refuse(`container's runAsUser breaks non-root policy ${where}`)
    if (runAsUser === undefined && imageUser.uid === 0) {
      return refuse(`container has runAsNonRoot and image will run as root ${where}`)
    }
    if (runAsUser === undefined && imageUser.name !== undefined) {
      return refuse(
        `container has runAsNonRoot and image has non-numeric user (${imageUser.name}), cannot verify user is non-root ${where}`
      )
    }
  }
  const args: Array<string> = []
  if (runAsUser !== undefined) args.push(`--user=${runAsUser}${runAsGroup === undefined ? "" : `:${runAsGroup}`}`)
  else if (runAsGroup !== undefined) args.push(`--user=${imageUser.spec === "" ? "0" : imageUser.spec}:${runAsGroup}`)
  const groups = [
    ...(podContext.fsGroup === undefined ? [] : [podContext.fsGroup]),
    ...(podContext.supplementalGroups ?? [])
  ]
  for (const group of new Set(groups)) args.push(`--group-add=${group}`)
  if (context.privileged === true) args.push("--privileged")
  if (context.readOnlyRootFilesystem === true) {
    // Kubernetes mounts no tmpfs on /tmp or /run of a read-only container; podman would.
    args.push("--read-only", "--read-only-tmpfs=false")
  }
  for (const capability of context.capabilities?.drop ?? []) args.push(`--cap-drop=${capability.toLowerCase()}`)
  for (const capability of context.capabilities?.add ?? []) args.push(`--cap-add=${capability.toLowerCase()}`)
  if (context.allowPrivilegeEscalation === false) args.push("--security-opt=no-new-privileges")
  // The kubelet's default is Unconfined (unless it runs with --seccomp-default); RuntimeDefault is podman's profile.
  if (seccomp === undefined || seccomp.type === "Unconfined") args.push("--security-opt=seccomp=unconfined")
  else if (seccomp.type !== "RuntimeDefault") {
    return refuse(`seccomp profile type ${seccomp.type} is not supported on this process node`)
  }
  return Result.succeed(args)
}

/** `--mount` takes comma-separated options: a path with a comma cannot be expressed. */
const mountArg = (mount: Mount): Result.Result<string, ContainerWaiting> =>
  mount.hostPath.includes(",") || mount.containerPath.includes(",")
    ? Result.fail(
        new ContainerWaiting({
          reason: "CreateContainerError",
          message: `cannot mount ${mount.containerPath}: paths with a comma are not supported on this process node`
        })
      )
    : Result.succeed(
        `--mount=type=bind,source=${mount.hostPath},destination=${mount.containerPath}${mount.readOnly ? ",ro=true" : ""}`
      )

/** A DNS label for `--hostname`: the kubelet truncates Pod names to 63 characters. */
const hostnameOf = (pod: NodePod): string =>
  (pod.spec.hostname ?? pod.metadata.name ?? "pod").slice(0, 63).replace(/[-.]+$/u, "")

/** A `podman create` command line and the environment its process needs. */
export interface CreateCommand {
  /** The container's name: `k8s_<container>_<pod>_<namespace>_<uid>_<restart>`, as the kubelet's. */
  readonly name: string
  readonly args: ReadonlyArray<string>
  /** The env values, for podman's own environment (`--env=NAME` copies them from there). */
  readonly podmanEnv: Readonly<Record<string, string>>
}

/**
 * The whole `podman create` command line for one container instance; the
 * values of its env stay out of it.
 *
 * @example
 * ```ts
 * const create = createArgs(start, image, { "process-node.kube-testenv/node": "process-node" })
 * if (Result.isSuccess(create)) yield* podman(create.success.args, { env: create.success.podmanEnv })
 * ```
 */
export const createArgs = (
  start: ContainerStart,
  image: LocalImage,
  labels: Readonly<Record<string, string>>
): Result.Result<CreateCommand, ContainerWaiting> =>
  Result.gen(function* () {
    const { pod, container } = start
    const security = yield* securityArgs(pod, container, image)
    const mounts: Array<string> = []
    const messageMount: Mount = {
      hostPath: start.messageFile,
      containerPath: container.terminationMessagePath ?? "/dev/termination-log",
      readOnly: false
    }
    for (const mount of [messageMount, ...start.mounts]) mounts.push(yield* mountArg(mount))
    const env = envArgs(start.env)
    const name = [
      "k8s",
      container.name,
      pod.metadata.name ?? "",
      pod.metadata.namespace ?? "",
      pod.metadata.uid ?? "",
      String(start.restartCount)
    ].join("_")
    const allLabels: Record<string, string> = {
      "io.kubernetes.pod.uid": pod.metadata.uid ?? "",
      "io.kubernetes.pod.name": pod.metadata.name ?? "",
      "io.kubernetes.pod.namespace": pod.metadata.namespace ?? "",
      "io.kubernetes.container.name": container.name,
      ...labels
    }
    const command = container.command?.map((word) => expandReferences(word, start.env))
    const args = (container.args ?? []).map((word) => expandReferences(word, start.env))
    return {
      name,
      args: [
        "create",
        `--name=${name}`,
        ...Object.entries(allLabels).map(([key, value]) => `--label=${key}=${value}`),
        // Never a registry: the image is local or the container waits (ErrImageNeverPull).
        "--pull=never",
        // Every Pod shares the host's network; each has its own loopback address (status.podIP) to bind.
        "--network=host",
        `--hostname=${hostnameOf(pod)}`,
        ...containerUlimitArgs,
        // The output goes to the node's log file through the attached `podman start`; no second copy.
        "--log-driver=none",
        // Only the Pod's env: no proxy variables copied from podman's environment.
        "--http-proxy=false",
        ...security,
        ...(container.workingDir === undefined ? [] : [`--workdir=${container.workingDir}`]),
        ...mounts,
        ...env.args,
        ...(command === undefined || command.length === 0 ? [] : [`--entrypoint=${JSON.stringify(command)}`]),
        image.id,
        ...args
      ],
      podmanEnv: env.podmanEnv
    }
  })

/** The environment of the podman processes themselves: ours (it finds runc, conmon and its storage through it). */
const ownEnvironment = (): Record<string, string> => {
  const env: Record<string, string> = {}
  for (const [name, value] of Object.entries(process.env)) if (value !== undefined) env[name] = value
  return env
}

const notPresent = (image: string) =>
  new ContainerWaiting({
    reason: "ErrImageNeverPull",
    message: `Container image "${image}" is not present with pull policy of Never`
  })

const localImage = (image: string) =>
  inspectImage(image).pipe(
    Effect.mapError((error) => new ContainerWaiting({ reason: "ImageInspectError", message: error.message })),
    Effect.flatMap(Option.match({ onNone: () => Effect.fail(notPresent(image)), onSome: Effect.succeed }))
  )

/**
 * `podman exec` itself failed rather than the command: exit code 125 (or 255,
 * which podman uses for a container that is not running) with podman's own
 * `Error:` line.
 */
const podmanExecFailed = (result: { readonly exitCode: number; readonly stderr: string }): boolean =>
  (result.exitCode === 125 || result.exitCode === 255) && /^Error: /mu.test(result.stderr)

/** What podman printed when it could not start the container: its last `Error:` line in the log. */
const startFailure = (logFile: string) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const log = yield* fs.readFileString(logFile).pipe(Effect.orElseSucceed(() => ""))
    const line = log
      .split("\n")
      .reverse()
      .find((text) => text.startsWith("Error: "))
    return line === undefined ? lastLines(log, 1) : line.slice("Error: ".length)
  })

/**
 * Containers run by podman from locally present images, never pulled:
 * `podman create` with the Pod's security context, mounts and env (values
 * only in podman's environment), then `podman start --attach`, whose output
 * goes to the node's log file. The exit code and a start failure come from
 * `podman container inspect`; stopping is `podman stop` (the image's stop
 * signal, SIGKILL after the grace period); the instance's scope removes the
 * container. Every container carries `options.labels`.
 *
 * @example
 * ```ts
 * const runtime = podmanRuntime({ labels: { "process-node.testing/node": "process-node" } })
 * ```
 */
export const podmanRuntime = (options: PodmanRuntimeOptions): ContainerRuntime => ({
  name: "podman",
  mountsVolumes: true,
  baseEnv: () => ({}),
  pullImage: (container) => Effect.asVoid(localImage(container.image)),
  start: (start) =>
    Effect.gen(function* () {
      const image = yield* localImage(start.container.image)
      const create = createArgs(start, image, options.labels)
      if (Result.isFailure(create)) return yield* create.failure
      // A container of this name left by an earlier attempt (or a crashed node) would block the name.
      yield* removeContainers([create.success.name]).pipe(Effect.ignore)
      // Created and its removal registered in one uninterruptible step: a Pod deleted meanwhile leaves nothing.
      const id = yield* Effect.acquireRelease(
        podman(create.success.args, { env: create.success.podmanEnv, timeout: "2 minutes" }).pipe(
          Effect.mapError((error) => new ContainerWaiting({ reason: "CreateContainerError", message: error.message })),
          Effect.flatMap((created) =>
            created.exitCode === 0
              ? Effect.succeed(created.stdout.trim())
              : Effect.fail(
                  new ContainerWaiting({
                    reason: "CreateContainerError",
                    message: lastLines(created.stderr, 3).replace(/^Error: /u, "")
                  })
                )
          )
        ),
        (created) => removeContainers([created]).pipe(Effect.ignore)
      )
      const attached = yield* startContainerProcess({
        executable: "podman",
        args: [...podmanGlobalArgs, "start", "--attach", id],
        env: ownEnvironment(),
        cwd: start.podDir,
        logFile: start.logFile,
        // Only the attached client dies (conmon keeps the container in its own session); the
        // container is then removed. SIGTERM would be proxied to the container and waited for.
        killSignal: "SIGKILL"
      })
      // `exited` and `stop` run later, from the Pod worker: they carry the services they need.
      const services = yield* Effect.context<FileSystem.FileSystem | ChildProcessSpawner.ChildProcessSpawner>()
      const exited = yield* Effect.cached(
        Effect.gen(function* () {
          const code = yield* attached.exited
          const state = yield* inspectContainer(id).pipe(Effect.orElseSucceed(() => Option.none()))
          if (Option.isNone(state)) return { exitCode: code }
          if (!state.value.started) {
            const message = state.value.error !== "" ? state.value.error : yield* startFailure(start.logFile)
            return yield* new StartError({ message })
          }
          return { exitCode: state.value.exitCode, reason: state.value.oomKilled ? "OOMKilled" : undefined }
        }).pipe(Effect.provideContext(services))
      )
      return {
        containerID: `podman://${id}`,
        imageID: image.imageID,
        exited,
        stop: (grace: Duration.Duration) =>
          podman(["stop", `--time=${Math.ceil(Duration.toSeconds(grace))}`, id], {
            timeout: Duration.sum(grace, Duration.seconds(30))
          }).pipe(Effect.ignore, Effect.provideContext(services)),
        // The command is the probe's argv, run as is (no shell); the caller bounds it with the probe's timeout.
        exec: (command, timeout) =>
          podman(["exec", id, ...command], { timeout: Duration.sum(timeout, Duration.seconds(5)) }).pipe(
            Effect.mapError((error) => error.message),
            Effect.flatMap((result) =>
              podmanExecFailed(result)
                ? // podman could not exec (e.g. the container is not running yet): a probe error, not a failure.
                  Effect.fail(lastLines(result.stderr, 1).replace(/^Error: /u, ""))
                : Effect.succeed({ exitCode: result.exitCode, output: `${result.stdout}${result.stderr}` })
            ),
            Effect.provideContext(services)
          )
      }
    })
})
