/**
 * `npm run images`: builds (or finds cached) the local base images and the
 * operator and runner images, then prints each image's name, size and whether
 * it was built or cached. Progress goes to stderr, the summary to stdout.
 *
 *   npm run images
 *   npm run images -- --pg-major 18 --suite forky   # a runner with PostgreSQL 18 client tools
 *   npm run images -- --prune                       # then remove this project's older image tags
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Cause, Console, Effect, Exit, Runtime } from "effect"
import { Command, Flag } from "effect/cli"
import { defaultPgMajor, defaultSuite } from "./config.ts"
import { tagImage } from "./containers.ts"
import { ensureImages, type ImageOutcome, pruneImages } from "./images.ts"
import { say } from "./logged.ts"

const megabytes = (bytes: number | undefined) => (bytes === undefined ? "-" : `${(bytes / 1e6).toFixed(1)} MB`)

const statusText = (outcome: ImageOutcome) =>
  outcome.status === "built" ? `built in ${outcome.seconds} s` : outcome.status

/** The summary table: one line per image. */
export const summary = (outcomes: ReadonlyArray<ImageOutcome>): string => {
  const width = Math.max(...outcomes.map((o) => o.ref.length))
  return outcomes
    .map((o) => `${o.ref.padEnd(width)}  ${megabytes(o.sizeBytes).padStart(9)}  ${statusText(o)}`)
    .join("\n")
}

/** `localhost/db-backup-runner:0.1.0-3f1c0a9be2d4` -> `localhost/db-backup-runner:0.1.0`. */
export const versionTag = (ref: string): string => ref.replace(/-[0-9a-f]{12}$/u, "")

const command = Command.make(
  "images",
  {
    pgMajor: Flag.String("pg-major").pipe(
      Flag.withDescription(
        `PostgreSQL client major of the runner; the suite must carry it (default ${defaultPgMajor})`
      ),
      Flag.withDefault(defaultPgMajor)
    ),
    suite: Flag.String("suite").pipe(
      Flag.withDescription(`Debian suite of the base images (default ${defaultSuite})`),
      Flag.withDefault(defaultSuite)
    ),
    prune: Flag.Boolean("prune").pipe(
      Flag.withDescription("remove this project's other image tags afterwards"),
      Flag.withDefault(false)
    )
  },
  ({ pgMajor, suite, prune }) =>
    Effect.gen(function* () {
      const started = Date.now()
      const images = yield* ensureImages({ pgMajor, suite })
      yield* Console.log(summary(images.outcomes))
      // The app version is the chart's appVersion, its default image tag: with these names
      // `helm install` needs only the repositories (README: the product from its images).
      const versionTags = yield* Effect.forEach([images.operator, images.runner], (ref) =>
        Effect.as(tagImage(ref, versionTag(ref)), versionTag(ref))
      )
      yield* say(`tagged ${versionTags.join(" and ")}`)
      if (prune) {
        const removed = yield* pruneImages([...images.outcomes.map((o) => o.ref), ...versionTags])
        yield* say(removed.length === 0 ? "nothing to prune" : `removed ${removed.join(", ")}`)
      }
      yield* say(`images ready in ${((Date.now() - started) / 1000).toFixed(1)} s`)
    }).pipe(
      // The error's message says what failed and what to do; a stack trace adds nothing.
      Effect.tapCause((cause) => {
        if (Cause.hasInterruptsOnly(cause)) return Effect.void
        const error = Cause.findErrorOption(cause)
        return Console.error(error._tag === "Some" ? `images: ${error.value.message}` : Cause.pretty(cause))
      })
    )
).pipe(Command.withDescription("Build (or find cached) the operator and runner images with buildah"))

NodeRuntime.runMain(Command.run(command, { version: "0.1.0" }).pipe(Effect.provide(NodeServices.layer)), {
  // Failures are reported above (and command-line mistakes by the CLI itself).
  disableErrorReporting: true,
  // SIGINT/SIGTERM interrupt the build; its scopes kill buildah and remove temporary files.
  teardown: (exit, onExit) =>
    Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : Runtime.defaultTeardown(exit, onExit)
})
