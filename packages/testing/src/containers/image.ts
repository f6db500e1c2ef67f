import { Effect } from "effect"
import type { ChildProcessSpawner } from "effect/process"
import type { ProcessError } from "../process/ProcessError.ts"
import { runChecked } from "../process/run.ts"
import { buildahGlobalArgs } from "./engine.ts"
import { podman } from "./podman.ts"

/** Options of {@link buildScratchImage}. */
export interface ScratchImageOptions {
  /** The name to commit, e.g. `localhost/probe:1`. */
  readonly image: string
  /** Host files copied in (a statically linked binary, say). */
  readonly files: ReadonlyArray<{ readonly source: string; readonly destination: string }>
  readonly entrypoint: ReadonlyArray<string>
  /** The image's `USER` (e.g. `65532:65532`); none means root. */
  readonly user?: string | undefined
}

const buildah = (args: ReadonlyArray<string>) =>
  runChecked("buildah", [...buildahGlobalArgs, ...args], { timeout: "5 minutes" })

/**
 * Builds an image from scratch with buildah, with the same storage podman
 * reads, so the image is runnable at once and never pulled. For test images
 * made of one static binary; there is no base image and no registry here.
 *
 * @example
 * ```ts
 * yield* buildScratchImage({
 *   image: "localhost/probe:1",
 *   files: [{ source: "/tmp/build/probe", destination: "/probe" }],
 *   entrypoint: ["/probe"],
 *   user: "65532:65532"
 * })
 * ```
 */
export const buildScratchImage = (
  options: ScratchImageOptions
): Effect.Effect<void, ProcessError, ChildProcessSpawner.ChildProcessSpawner> =>
  Effect.scoped(
    Effect.gen(function* () {
      const container = (yield* buildah(["from", "scratch"])).trim()
      yield* Effect.addFinalizer(() => buildah(["rm", container]).pipe(Effect.ignore))
      for (const file of options.files) yield* buildah(["copy", container, file.source, file.destination])
      yield* buildah([
        "config",
        `--entrypoint=${JSON.stringify(options.entrypoint)}`,
        ...(options.user === undefined ? [] : [`--user=${options.user}`]),
        container
      ])
      yield* buildah(["commit", "--quiet", container, options.image])
    })
  )

/**
 * True when the image is present locally (podman's view, which is buildah's).
 *
 * @example
 * ```ts
 * if (!(yield* imageExists("localhost/probe:1"))) yield* buildScratchImage(options)
 * ```
 */
export const imageExists = (
  image: string
): Effect.Effect<boolean, ProcessError, ChildProcessSpawner.ChildProcessSpawner> =>
  Effect.map(podman(["image", "exists", image], { timeout: "60 seconds" }), (result) => result.exitCode === 0)
