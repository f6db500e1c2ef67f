import { access, constants } from "node:fs/promises"
import { Effect, Schema } from "effect"
import type { ChildProcessSpawner } from "effect/process"
import { buildahGlobalArgs, containerUlimitArgs } from "../../packages/testing/src/containers/engine.ts"
import { podmanChecked } from "../../packages/testing/src/containers/podman.ts"
import { ImageBuildError } from "./ImageBuildError.ts"
import { runLogged } from "./logged.ts"

const ImageList = Schema.Array(
  Schema.Struct({
    Id: Schema.String,
    Names: Schema.optional(Schema.NullOr(Schema.Array(Schema.String))),
    Size: Schema.Number
  })
)

/**
 * Every tagged image in the local container storage, by name
 * (`localhost/db-backup-runner:0.1.0-3f1c0a9be2d4`), with its size in bytes.
 * One podman call, so checking all images of a build costs a fraction of a second.
 */
export const listImages: Effect.Effect<
  ReadonlyMap<string, number>,
  ImageBuildError,
  ChildProcessSpawner.ChildProcessSpawner
> = podmanChecked(["images", "--format", "json"]).pipe(
  Effect.flatMap(Schema.decodeUnknownEffect(Schema.fromJsonString(ImageList))),
  Effect.map((images) => new Map(images.flatMap((image) => (image.Names ?? []).map((name) => [name, image.Size])))),
  Effect.mapError((cause) => new ImageBuildError({ message: `cannot list the local images: ${cause.message}`, cause }))
)

/** One `buildah build`. */
export interface BuildOptions {
  /** The tag to give the image. */
  readonly ref: string
  readonly containerfile: string
  readonly contextDir: string
  readonly buildArgs: Readonly<Record<string, string>>
  /** `RUN --mount=type=secret` files: id to host path. Never part of the image. */
  readonly secrets?: Readonly<Record<string, string>> | undefined
}

// The steps, npm's summary and the PostgreSQL client's setup are enough to follow a build.
const buildProgress = (line: string): string | undefined => {
  if (/^(?:\[\d+\/\d+\] )?STEP \d+\/\d+: /u.test(line)) return line.length > 140 ? `${line.slice(0, 137)}...` : line
  if (/^added \d+ packages/u.test(line) || /^Setting up postgresql-client/u.test(line)) return `  ${line}`
  if (/^Fetched .* in /u.test(line)) return `  apt: ${line}`
  return undefined
}

/**
 * Builds an image with buildah: host networking (npm and apt reach their
 * registries; no network plugins needed), the project's resource limits, and
 * never a pull (every base is local, or the build fails saying which is
 * missing). Without `--layers`, buildah commits one layer per build over the
 * base, so files a later step deletes never reach the image.
 *
 * @example
 * ```ts
 * yield* buildImage({ ref, containerfile: "docker/runner/Dockerfile", contextDir, buildArgs: { PG_MAJOR: "17" } })
 * ```
 */
export const buildImage = (
  options: BuildOptions
): Effect.Effect<void, ImageBuildError, ChildProcessSpawner.ChildProcessSpawner> => {
  const args = [
    ...buildahGlobalArgs,
    "build",
    "--pull=never",
    "--network=host",
    ...containerUlimitArgs,
    ...Object.entries(options.buildArgs).flatMap(([name, value]) => ["--build-arg", `${name}=${value}`]),
    ...Object.entries(options.secrets ?? {}).flatMap(([id, src]) => ["--secret", `id=${id},src=${src}`]),
    "--tag",
    options.ref,
    "--file",
    options.containerfile,
    options.contextDir
  ]
  return runLogged("buildah", args, { what: `building ${options.ref}`, progress: buildProgress, timeout: "45 minutes" })
}

/**
 * The CA bundle the build's npm should trust besides its own, when the host
 * needs one (a TLS-intercepting proxy): Node's own `NODE_EXTRA_CA_CERTS`.
 * Passed as a build secret, so it never ends up in an image or its hash.
 */
export const extraCaCertificates = (env: NodeJS.ProcessEnv = process.env): Effect.Effect<string | undefined> =>
  Effect.promise(async () => {
    const file = env.NODE_EXTRA_CA_CERTS
    if (file === undefined || file === "") return undefined
    return access(file, constants.R_OK).then(
      () => file,
      () => undefined
    )
  })

/**
 * Gives an image another name (`podman tag`).
 *
 * @example
 * ```ts
 * yield* tagImage("localhost/db-backup-runner:0.1.0-3f1c0a9be2d4", "localhost/db-backup-runner:0.1.0")
 * ```
 */
export const tagImage = (
  ref: string,
  name: string
): Effect.Effect<void, ImageBuildError, ChildProcessSpawner.ChildProcessSpawner> =>
  podmanChecked(["tag", ref, name]).pipe(
    Effect.asVoid,
    Effect.mapError(
      (cause) => new ImageBuildError({ message: `cannot tag ${ref} as ${name}: ${cause.message}`, cause })
    )
  )

/**
 * Removes images by name; an image still used by a container stays, with a
 * notice. Returns the names removed.
 */
export const removeImages = (
  names: ReadonlyArray<string>
): Effect.Effect<ReadonlyArray<string>, never, ChildProcessSpawner.ChildProcessSpawner> =>
  Effect.forEach(names, (name) =>
    podmanChecked(["rmi", name]).pipe(
      Effect.as([name]),
      Effect.catch((error) => Effect.logWarning(`cannot remove ${name}: ${error.message}`).pipe(Effect.as([])))
    )
  ).pipe(Effect.map((lists) => lists.flat()))
