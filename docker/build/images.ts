/**
 * The project's images, built locally with buildah over locally assembled
 * bases and cached by their inputs: `ensureImages` returns the operator and
 * runner image names, building only what is missing. `npm run images` is its
 * command line (docker/build/main.ts); end-to-end tests call it directly.
 *
 * @module
 */
import { mkdir, readdir, readFile, rm } from "node:fs/promises"
import { join } from "node:path"
import { Effect } from "effect"
import type { ChildProcessSpawner } from "effect/process"
import { withDirLock } from "../../packages/testing/src/binaries/lock.ts"
import {
  buildDebianBase,
  buildNodeBase,
  type DebianPlan,
  type NodePlan,
  planDebianBase,
  planNodeBase,
  removeRootfs,
  scopedTempDir
} from "./base.ts"
import {
  type AppImageSpec,
  appImages,
  baseRepositories,
  defaultPgMajor,
  defaultSuite,
  imagesCacheDir,
  recipeVersion,
  repoRoot
} from "./config.ts"
import { buildImage, extraCaCertificates, listImages, removeImages } from "./containers.ts"
import { type ContextFile, contextHashInputs, readContext, stageContext } from "./context.ts"
import { contextSources, type Workspace, workspaceClosure, workspaceMismatches } from "./dockerfile.ts"
import { parseDockerignore } from "./dockerignore.ts"
import { ensureHostTools, requireRoot } from "./hostTools.ts"
import { ImageBuildError } from "./ImageBuildError.ts"
import { inputHash, shortHash } from "./inputHash.ts"
import { say } from "./logged.ts"

/** Options of {@link ensureImages}. */
export interface ImagesOptions {
  /** The runner's PostgreSQL client major (default 17); the base's suite must carry it. */
  readonly pgMajor?: string | undefined
  /** The Debian suite of the bases (default trixie). */
  readonly suite?: string | undefined
  /** The repository to build from (default: this checkout). */
  readonly root?: string | undefined
  readonly env?: NodeJS.ProcessEnv | undefined
}

/** What became of one image. */
export interface ImageOutcome {
  readonly role: "base-debian" | "base-node" | "operator" | "runner"
  readonly ref: string
  /** `not needed`: a base that is absent, but every image built on it is cached. */
  readonly status: "built" | "cached" | "not needed"
  /** Bytes, as podman reports it; absent for a base that is not there. */
  readonly sizeBytes?: number | undefined
  /** How long building took (0 when cached). */
  readonly seconds: number
}

/** The images, ready in the local container storage. */
export interface Images {
  /** e.g. `localhost/db-backup-operator:0.1.0-3f1c0a9be2d4` */
  readonly operator: string
  /** e.g. `localhost/db-backup-runner:0.1.0-9a8b7c6d5e4f` */
  readonly runner: string
  readonly outcomes: ReadonlyArray<ImageOutcome>
}

/** An app image to use or build, with the exact files and arguments it is built from. */
export interface AppPlan {
  readonly spec: AppImageSpec
  readonly ref: string
  readonly hash: string
  readonly files: ReadonlyArray<ContextFile>
  readonly buildArgs: Readonly<Record<string, string>>
}

const fsTry = <A>(what: string, run: () => Promise<A>) =>
  Effect.tryPromise({
    try: run,
    catch: (cause) => new ImageBuildError({ message: `${what}: ${String(cause)}`, cause })
  })

const readJson = (path: string) =>
  fsTry(`cannot read ${path}`, () => readFile(path, "utf8")).pipe(
    Effect.flatMap((text) =>
      Effect.try({
        try: () => JSON.parse(text) as unknown,
        catch: (cause) => new ImageBuildError({ message: `${path} is not JSON: ${String(cause)}`, cause })
      })
    )
  )

const stringField = (value: unknown, field: string): string | undefined => {
  if (typeof value !== "object" || value === null || !(field in value)) return undefined
  const found: unknown = (value as Record<string, unknown>)[field]
  return typeof found === "string" ? found : undefined
}

/** Every workspace of the monorepo (`apps/*`, `packages/*`) with its production dependencies. */
export const readWorkspaces = (root: string): Effect.Effect<ReadonlyArray<Workspace>, ImageBuildError> =>
  Effect.gen(function* () {
    const workspaces: Array<Workspace> = []
    for (const parent of ["apps", "packages"]) {
      for (const entry of (yield* fsTry(`cannot list ${parent}`, () => readdir(join(root, parent)))).sort()) {
        const dir = `${parent}/${entry}`
        const manifest = yield* readJson(join(root, dir, "package.json")).pipe(
          Effect.catch(() => Effect.succeed(undefined))
        )
        const name = stringField(manifest, "name")
        if (name === undefined) continue
        const dependencies =
          typeof manifest === "object" && manifest !== null && "dependencies" in manifest
            ? Object.keys((manifest as { readonly dependencies: object }).dependencies)
            : []
        workspaces.push({ dir, name, dependencies })
      }
    }
    return workspaces
  })

/**
 * Names an app image after everything that decides its content: the
 * Dockerfile, its build arguments (the bases' names carry their own input
 * hashes) and every file its `COPY` instructions take from the context, as
 * `.dockerignore` filters them. Fails when the Dockerfile does not copy exactly
 * the workspaces the app depends on. Nothing is built here.
 *
 * @example
 * ```ts
 * const plan = yield* planAppImage(repoRoot, appImages[1], { NODE_IMAGE: node.ref, RUNTIME_IMAGE: debian.ref, PG_MAJOR: "17" })
 * plan.ref // "localhost/db-backup-runner:0.1.0-9a8b7c6d5e4f"
 * ```
 */
export const planAppImage = (
  root: string,
  spec: AppImageSpec,
  baseArgs: Readonly<Record<string, string>>
): Effect.Effect<AppPlan, ImageBuildError> =>
  Effect.gen(function* () {
    const dockerfile = yield* fsTry(`cannot read ${spec.dockerfile}`, () =>
      readFile(join(root, spec.dockerfile), "utf8")
    )
    const ignore = yield* fsTry("cannot read .dockerignore", () => readFile(join(root, ".dockerignore"), "utf8"))
    const rules = yield* Effect.try({
      try: () => parseDockerignore(ignore),
      catch: (cause) => new ImageBuildError({ message: String(cause), cause })
    })
    const sources = yield* Effect.try({
      try: () => contextSources(dockerfile),
      catch: (cause) => new ImageBuildError({ message: `${spec.dockerfile}: ${String(cause)}`, cause })
    })
    const needed = workspaceClosure(yield* readWorkspaces(root), spec.appDir)
    const problems = workspaceMismatches(sources, needed)
    if (problems.length > 0) {
      return yield* new ImageBuildError({
        message: `${spec.dockerfile} does not copy exactly the workspaces ${spec.appDir} depends on (${needed.join(", ")}):\n  ${problems.join("\n  ")}`
      })
    }
    const version = stringField(yield* readJson(join(root, spec.appDir, "package.json")), "version")
    if (version === undefined) {
      return yield* new ImageBuildError({ message: `${spec.appDir}/package.json has no version` })
    }
    const files = yield* readContext(root, sources, rules)
    const buildArgs = { ...baseArgs, VERSION: version }
    const hash = inputHash([
      ["recipe", recipeVersion],
      ["dockerfile", dockerfile],
      ...Object.entries(buildArgs)
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([name, value]) => [`build-arg ${name}`, value] as const),
      ...contextHashInputs(files)
    ])
    return { spec, ref: `${spec.repository}:${version}-${shortHash(hash)}`, hash, files, buildArgs }
  })

/** Every image of one build, named but not necessarily built. */
export interface Plans {
  readonly debian: DebianPlan
  readonly node: NodePlan
  readonly apps: ReadonlyArray<AppPlan>
}

/** Names all four images for `options` (no process is started). */
export const planImages = (options: ImagesOptions = {}): Effect.Effect<Plans, ImageBuildError> =>
  Effect.gen(function* () {
    const root = options.root ?? repoRoot
    const debian = yield* planDebianBase(root, options.suite ?? defaultSuite)
    const node = yield* planNodeBase(root, debian)
    const baseArgs = { NODE_IMAGE: node.ref, RUNTIME_IMAGE: debian.ref }
    const apps = yield* Effect.forEach(appImages, (spec) =>
      planAppImage(
        root,
        spec,
        spec.role === "runner" ? { ...baseArgs, PG_MAJOR: options.pgMajor ?? defaultPgMajor } : baseArgs
      )
    )
    return { debian, node, apps }
  })

/** What a build has to make, given the images already in the storage. */
export interface BuildList {
  readonly debian: boolean
  readonly node: boolean
  readonly apps: ReadonlyArray<AppPlan>
}

/**
 * Decides what to build: every app image not in `existing`, and each base only
 * when an app image must be built and the base is not there. With every app
 * image cached, nothing is built, whatever became of the bases.
 *
 * @example
 * ```ts
 * toBuild(plans, new Set([plans.apps[0].ref])) // { debian: true, node: true, apps: [runner plan] }
 * ```
 */
export const toBuild = (plans: Plans, existing: ReadonlySet<string> | ReadonlyMap<string, unknown>): BuildList => {
  const apps = plans.apps.filter((app) => !existing.has(app.ref))
  return {
    debian: apps.length > 0 && !existing.has(plans.debian.ref),
    node: apps.length > 0 && !existing.has(plans.node.ref),
    apps
  }
}

const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const started = Date.now()
    yield* effect
    return Math.round((Date.now() - started) / 100) / 10
  })

const buildApp = (plan: AppPlan, root: string, cacheDir: string, env: NodeJS.ProcessEnv) =>
  Effect.scoped(
    Effect.gen(function* () {
      const context = yield* scopedTempDir(cacheDir, `context-${plan.spec.role}`)
      yield* stageContext(context, plan.files)
      const ca = yield* extraCaCertificates(env)
      yield* buildImage({
        ref: plan.ref,
        containerfile: join(root, plan.spec.dockerfile),
        contextDir: context,
        buildArgs: plan.buildArgs,
        secrets: ca === undefined ? undefined : { "extra-ca-certificates": ca }
      })
    })
  )

/**
 * Makes sure the operator and runner images of this checkout exist in the
 * local container storage, and returns their names. Each image is named after
 * a hash of its inputs, so an unchanged checkout costs one podman call, and a
 * changed source file rebuilds only the images that contain it. A cold build
 * installs missing host tools (as root, with apt), debootstraps Debian, and
 * builds four images; concurrent callers (parallel test files) wait for one
 * another on a lock in the cache.
 *
 * @example
 * ```ts
 * const { operator, runner } = yield* ensureImages()
 * // operator: "localhost/db-backup-operator:0.1.0-3f1c0a9be2d4"
 * ```
 */
export const ensureImages = (
  options: ImagesOptions = {}
): Effect.Effect<Images, ImageBuildError, ChildProcessSpawner.ChildProcessSpawner> =>
  Effect.gen(function* () {
    const root = options.root ?? repoRoot
    const env = options.env ?? process.env
    yield* ensureHostTools
    const plans = yield* planImages(options)
    const [operator, runner] = plans.apps
    if (operator === undefined || runner === undefined) {
      return yield* new ImageBuildError({ message: "the operator and runner images are not configured" })
    }
    const built = new Map<string, number>()
    let images = yield* listImages
    if (toBuild(plans, images).apps.length > 0) {
      yield* requireRoot
      const cacheDir = imagesCacheDir(env)
      yield* fsTry(`cannot create ${cacheDir}`, () => mkdir(cacheDir, { recursive: true }))
      yield* Effect.scoped(
        Effect.gen(function* () {
          yield* withDirLock(join(cacheDir, ".lock"), "the images").pipe(
            Effect.mapError((cause) => new ImageBuildError({ message: cause.message, cause }))
          )
          // Left by an interrupted build; nobody else builds while we hold the lock.
          for (const name of yield* fsTry("cannot list the cache", () => readdir(cacheDir))) {
            if (name.startsWith(".tmp-rootfs-")) yield* removeRootfs(join(cacheDir, name))
            else if (name.startsWith(".tmp-")) {
              yield* fsTry("cannot clean the cache", () => rm(join(cacheDir, name), { recursive: true, force: true }))
            }
          }
          images = yield* listImages // another process may have built some meanwhile
          const missing = toBuild(plans, images)
          if (missing.debian) {
            yield* say(`building the Debian ${plans.debian.suite} base ${plans.debian.ref}`)
            built.set(plans.debian.ref, yield* timed(buildDebianBase(plans.debian, cacheDir)))
          }
          if (missing.node) {
            yield* say(`building the Node ${plans.node.nodeVersion} base ${plans.node.ref}`)
            built.set(plans.node.ref, yield* timed(buildNodeBase(plans.node, plans.debian.ref, root, cacheDir)))
          }
          for (const app of missing.apps) {
            yield* say(`building ${app.ref}`)
            built.set(app.ref, yield* timed(buildApp(app, root, cacheDir, env)))
          }
        })
      )
      images = yield* listImages
    }
    const outcome = (role: ImageOutcome["role"], ref: string): ImageOutcome => {
      const seconds = built.get(ref)
      const sizeBytes = images.get(ref)
      return {
        role,
        ref,
        status: seconds !== undefined ? "built" : sizeBytes !== undefined ? "cached" : "not needed",
        sizeBytes,
        seconds: seconds ?? 0
      }
    }
    for (const app of plans.apps) {
      if (!images.has(app.ref)) return yield* new ImageBuildError({ message: `${app.ref} is missing after its build` })
    }
    return {
      operator: operator.ref,
      runner: runner.ref,
      outcomes: [
        outcome("base-debian", plans.debian.ref),
        outcome("base-node", plans.node.ref),
        outcome("operator", operator.ref),
        outcome("runner", runner.ref)
      ]
    }
  })

/**
 * Removes the project's images (bases included) other than `keep`: each
 * source change leaves the previous tags behind, each a few hundred MB.
 */
export const pruneImages = (
  keep: ReadonlyArray<string>
): Effect.Effect<ReadonlyArray<string>, ImageBuildError, ChildProcessSpawner.ChildProcessSpawner> =>
  Effect.gen(function* () {
    const repositories = [...appImages.map((spec) => spec.repository), ...Object.values(baseRepositories)]
    const stale = [...(yield* listImages).keys()].filter(
      (name) => repositories.some((repository) => name.startsWith(`${repository}:`)) && !keep.includes(name)
    )
    // Apps first: a base cannot go while an image built on it still references its layers.
    const order = (name: string) =>
      name.startsWith(baseRepositories.node) ? 1 : name.startsWith(baseRepositories.debian) ? 2 : 0
    return yield* removeImages(stale.sort((a, b) => order(a) - order(b)))
  })
