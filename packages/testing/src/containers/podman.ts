import { Effect, Option, Schema } from "effect"
import type { ChildProcessSpawner } from "effect/process"
import type { ProcessError } from "../process/ProcessError.ts"
import { type RunOptions, type RunResult, runChecked, runProcess } from "../process/run.ts"
import { podmanGlobalArgs } from "./engine.ts"

/**
 * Runs one `podman` command with the project's global flags (storage as
 * buildah's, runc, no systemd). A non-zero exit code is a result.
 *
 * @example
 * ```ts
 * const { exitCode } = yield* podman(["image", "exists", "localhost/runner:dev"])
 * ```
 */
export const podman = (
  args: ReadonlyArray<string>,
  options: RunOptions = {}
): Effect.Effect<RunResult, ProcessError, ChildProcessSpawner.ChildProcessSpawner> =>
  runProcess("podman", [...podmanGlobalArgs, ...args], options)

/**
 * Like {@link podman}, but a non-zero exit code fails; returns stdout.
 *
 * @example
 * ```ts
 * declare const image: string
 * const id = (yield* podmanChecked(["create", "--pull=never", image])).trim()
 * ```
 */
export const podmanChecked = (
  args: ReadonlyArray<string>,
  options: RunOptions = {}
): Effect.Effect<string, ProcessError, ChildProcessSpawner.ChildProcessSpawner> =>
  runChecked("podman", [...podmanGlobalArgs, ...args], options)

/**
 * True when a `podman` that answers `podman version` is on PATH.
 *
 * @example
 * ```ts
 * if (!(yield* podmanAvailable)) return yield* Effect.logWarning("no podman: skipping")
 * ```
 */
export const podmanAvailable: Effect.Effect<boolean, never, ChildProcessSpawner.ChildProcessSpawner> = runProcess(
  "podman",
  ["--version"],
  { timeout: "30 seconds" }
).pipe(
  Effect.map((result) => result.exitCode === 0),
  Effect.orElseSucceed(() => false)
)

const ImageInspectJson = Schema.Array(
  Schema.Struct({
    Id: Schema.String,
    Digest: Schema.optionalKey(Schema.String),
    RepoDigests: Schema.optionalKey(Schema.NullOr(Schema.Array(Schema.String))),
    Config: Schema.optionalKey(Schema.Struct({ User: Schema.optionalKey(Schema.String) })),
    User: Schema.optionalKey(Schema.String)
  })
)

/** What the node needs to know about a local image. */
export interface LocalImage {
  /** The image ID (hex, no `sha256:` prefix). */
  readonly id: string
  /** `repo@sha256:...` when the image has a repo digest, else `sha256:<id>`: the Pod's `imageID`. */
  readonly imageID: string
  /** The image's configured `USER` (`""` = root), e.g. `65532:65532` or `nobody`. */
  readonly user: string
}

/**
 * The local image `image` (never pulled), or None when it is not present.
 *
 * @example
 * ```ts
 * const image = yield* inspectImage("localhost/db-backup-runner:dev")
 * ```
 */
export const inspectImage = (
  image: string
): Effect.Effect<Option.Option<LocalImage>, ProcessError, ChildProcessSpawner.ChildProcessSpawner> =>
  Effect.gen(function* () {
    const result = yield* podman(["image", "inspect", "--format=json", image], { timeout: "60 seconds" })
    if (result.exitCode !== 0) return Option.none()
    const [info] = yield* Schema.decodeUnknownEffect(Schema.fromJsonString(ImageInspectJson))(result.stdout).pipe(
      Effect.orElseSucceed(() => [])
    )
    if (info === undefined) return Option.none()
    const repoDigest = info.RepoDigests?.[0]
    return Option.some({
      id: info.Id,
      imageID: repoDigest ?? `sha256:${info.Id}`,
      user: info.Config?.User ?? info.User ?? ""
    })
  })

const ContainerListJson = Schema.NullOr(
  Schema.Array(
    Schema.Struct({
      Id: Schema.String,
      Labels: Schema.optionalKey(Schema.NullOr(Schema.Record(Schema.String, Schema.String)))
    })
  )
)

/** A container as `podman ps` lists it. */
export interface ListedContainer {
  readonly id: string
  readonly labels: Readonly<Record<string, string>>
}

/**
 * Every container (running or not) carrying all the given labels.
 *
 * @example
 * ```ts
 * const mine = yield* listContainers({ "example.com/owner": "me" })
 * ```
 */
export const listContainers = (
  labels: Readonly<Record<string, string>>
): Effect.Effect<ReadonlyArray<ListedContainer>, ProcessError, ChildProcessSpawner.ChildProcessSpawner> =>
  Effect.gen(function* () {
    const filters = Object.entries(labels).map(([key, value]) => `--filter=label=${key}=${value}`)
    const stdout = yield* podmanChecked(["ps", "--all", "--format=json", ...filters], { timeout: "60 seconds" })
    const listed = yield* Schema.decodeUnknownEffect(Schema.fromJsonString(ContainerListJson))(stdout).pipe(
      Effect.orElseSucceed(() => null)
    )
    return (listed ?? []).map((container) => ({ id: container.Id, labels: container.Labels ?? {} }))
  })

/**
 * Removes containers, killing them first if they run (`rm --force --time 0`);
 * ones already gone are fine.
 *
 * @example
 * ```ts
 * yield* removeContainers(ids)
 * ```
 */
export const removeContainers = (
  ids: ReadonlyArray<string>
): Effect.Effect<void, ProcessError, ChildProcessSpawner.ChildProcessSpawner> =>
  ids.length === 0
    ? Effect.void
    : Effect.asVoid(podmanChecked(["rm", "--force", "--ignore", "--time=0", ...ids], { timeout: "2 minutes" }))

const ContainerInspectJson = Schema.Array(
  Schema.Struct({
    Id: Schema.String,
    State: Schema.Struct({
      Status: Schema.String,
      ExitCode: Schema.Int,
      OOMKilled: Schema.optionalKey(Schema.Boolean),
      Error: Schema.optionalKey(Schema.String),
      StartedAt: Schema.optionalKey(Schema.String)
    })
  })
)

/** A container's state after it stopped. */
export interface ContainerState {
  readonly status: string
  /** False when the OCI runtime never started the process (a missing executable, say). */
  readonly started: boolean
  readonly exitCode: number
  readonly oomKilled: boolean
  readonly error: string
}

/**
 * The state of a container, or None when it does not exist.
 *
 * @example
 * ```ts
 * const state = yield* inspectContainer(id)
 * ```
 */
export const inspectContainer = (
  id: string
): Effect.Effect<Option.Option<ContainerState>, ProcessError, ChildProcessSpawner.ChildProcessSpawner> =>
  Effect.gen(function* () {
    const result = yield* podman(["container", "inspect", "--format=json", id], { timeout: "60 seconds" })
    if (result.exitCode !== 0) return Option.none()
    const [info] = yield* Schema.decodeUnknownEffect(Schema.fromJsonString(ContainerInspectJson))(result.stdout).pipe(
      Effect.orElseSucceed(() => [])
    )
    if (info === undefined) return Option.none()
    const startedAt = info.State.StartedAt ?? ""
    return Option.some({
      status: info.State.Status,
      // Go's zero time: podman never ran the container's process.
      started: startedAt !== "" && !startedAt.startsWith("0001-01-01"),
      exitCode: info.State.ExitCode,
      oomKilled: info.State.OOMKilled ?? false,
      error: info.State.Error ?? ""
    })
  })
