import { access, constants, copyFile, link, mkdir, readdir, readFile, rename, rm } from "node:fs/promises"
import { join } from "node:path"
import { Effect } from "effect"
import type { ChildProcessSpawner } from "effect/process"
import { runChecked, runProcess } from "../../packages/testing/src/process/run.ts"
import {
  baseRepositories,
  debianMirror,
  debianSecurityMirror,
  nodePackageDir,
  npmVersion,
  recipeVersion
} from "./config.ts"
import { buildImage } from "./containers.ts"
import { type ContextFile, contextHashInputs, readContext, stageContext } from "./context.ts"
import { findCommand } from "./hostTools.ts"
import { ImageBuildError } from "./ImageBuildError.ts"
import { inputHash, shortHash } from "./inputHash.ts"
import { phases, runLogged, say } from "./logged.ts"

const fsTry = <A>(what: string, run: () => Promise<A>) =>
  Effect.tryPromise({
    try: run,
    catch: (cause) => new ImageBuildError({ message: `${what}: ${String(cause)}`, cause })
  })

const debootstrapScripts = "/usr/share/debootstrap/scripts"

const fileExists = (path: string) =>
  Effect.promise(() =>
    access(path, constants.R_OK).then(
      () => true,
      () => false
    )
  )

/** A base image to use or build: its name and what it is built from. */
export interface BasePlan {
  readonly ref: string
  /** The recipe directory's files (Containerfile and what it copies). */
  readonly files: ReadonlyArray<ContextFile>
}

/** The local Debian base: a debootstrap'd suite, imported with docker/base/debian/Containerfile. */
export interface DebianPlan extends BasePlan {
  readonly suite: string
  readonly hash: string
}

/** The local Node base: the Debian base plus Node and npm in /usr/local. */
export interface NodePlan extends BasePlan {
  readonly nodeVersion: string
}

/**
 * Names the Debian base after everything that decides its content: the
 * suite, the debootstrap variant, the mirrors and the recipe files. Nothing is
 * built here.
 *
 * @example
 * ```ts
 * const debian = yield* planDebianBase(repoRoot, "trixie") // ref "localhost/db-backup-base-debian:trixie-1b2c3d4e5f60"
 * ```
 */
export const planDebianBase = (root: string, suite: string): Effect.Effect<DebianPlan, ImageBuildError> =>
  Effect.gen(function* () {
    const files = yield* readContext(join(root, "docker/base/debian"), ["."], [])
    const hash = inputHash([
      ["recipe", recipeVersion],
      ["debootstrap", `--variant=minbase ${suite} ${debianMirror}`],
      ["security mirror", debianSecurityMirror],
      ...contextHashInputs(files)
    ])
    return { ref: `${baseRepositories.debian}:${suite}-${shortHash(hash)}`, files, suite, hash }
  })

/**
 * Names the Node base after the Debian base it extends, the pinned Node and npm
 * versions and the recipe files.
 */
export const planNodeBase = (root: string, debian: DebianPlan): Effect.Effect<NodePlan, ImageBuildError> =>
  Effect.gen(function* () {
    const packageJson = yield* fsTry("cannot read the pinned Node (node_modules/node/package.json); run npm ci", () =>
      readFile(join(nodePackageDir(root), "package.json"), "utf8")
    )
    const nodeVersion = (JSON.parse(packageJson) as { readonly version?: unknown }).version
    if (typeof nodeVersion !== "string") {
      return yield* new ImageBuildError({ message: "node_modules/node/package.json has no version" })
    }
    const files = yield* readContext(join(root, "docker/base/node"), ["."], [])
    const hash = inputHash([
      ["recipe", recipeVersion],
      ["from", debian.ref],
      ["node", nodeVersion],
      ["npm", npmVersion],
      ...contextHashInputs(files)
    ])
    return {
      ref: `${baseRepositories.node}:${nodeVersion}-${debian.suite}-${shortHash(hash)}`,
      files,
      nodeVersion
    }
  })

// What debootstrap leaves that an image must not carry: the downloaded packages, the
// host's resolv.conf and hostname (the container runtime provides its own), device nodes.
const cleanRootfs = (rootfs: string) =>
  Effect.gen(function* () {
    const archives = join(rootfs, "var/cache/apt/archives")
    for (const name of yield* fsTry("cannot list the debootstrap archives", () => readdir(archives))) {
      if (name.endsWith(".deb")) yield* fsTry(`cannot remove ${name}`, () => rm(join(archives, name)))
    }
    for (const path of ["etc/resolv.conf", "etc/hostname"]) {
      yield* fsTry(`cannot remove ${path}`, () => rm(join(rootfs, path), { force: true }))
    }
    const dev = join(rootfs, "dev")
    for (const name of yield* fsTry("cannot list the rootfs /dev", () => readdir(dev))) {
      yield* fsTry(`cannot remove /dev/${name}`, () => rm(join(dev, name), { recursive: true, force: true }))
    }
  })

const mountPointsBelow = (dir: string): Effect.Effect<ReadonlyArray<string>> =>
  Effect.promise(() => readFile("/proc/self/mounts", "utf8").catch(() => "")).pipe(
    Effect.map((mounts) =>
      mounts
        .split("\n")
        .map((line) =>
          (line.split(" ")[1] ?? "").replace(/\\([0-7]{3})/gu, (_, octal: string) =>
            String.fromCharCode(Number.parseInt(octal, 8))
          )
        )
        .filter((point) => point.startsWith(`${dir}/`))
        .sort()
        .reverse()
    )
  )

/**
 * Removes a debootstrap target. debootstrap mounts /proc, /sys and /dev/pts
 * (and in LXC binds the host's device nodes) inside it while it works; when it
 * is killed they stay mounted, and a recursive delete must never walk into
 * them. So everything mounted below is unmounted first, and the delete stops
 * at whatever is still busy.
 */
export const removeRootfs = (rootfs: string): Effect.Effect<void, never, ChildProcessSpawner.ChildProcessSpawner> =>
  Effect.gen(function* () {
    for (const point of yield* mountPointsBelow(rootfs)) {
      yield* runProcess("umount", ["--lazy", point]).pipe(Effect.ignore)
    }
    if ((yield* mountPointsBelow(rootfs)).length > 0) {
      return yield* say(`left ${rootfs} in place: something is still mounted below it`)
    }
    yield* Effect.promise(() => rm(rootfs, { recursive: true, force: true }).catch(() => undefined))
  })

/**
 * The debootstrap'd root filesystem of `plan` as a tar file in the cache,
 * made once (debootstrap takes a minute or two) and kept, so the image can be
 * rebuilt from it after the container storage is reset. Older tar files of the
 * same suite are removed.
 */
const ensureRootfsTar = (
  plan: DebianPlan,
  cacheDir: string
): Effect.Effect<string, ImageBuildError, ChildProcessSpawner.ChildProcessSpawner> =>
  Effect.scoped(
    Effect.gen(function* () {
      const name = `debian-${plan.suite}-${shortHash(plan.hash)}.tar`
      const tarPath = join(cacheDir, name)
      if (yield* fileExists(tarPath)) return tarPath
      const debootstrap = yield* findCommand("debootstrap")
      if (debootstrap === undefined) return yield* new ImageBuildError({ message: "debootstrap is not installed" })
      const rootfs = join(cacheDir, `.tmp-rootfs-${process.pid}`)
      yield* Effect.addFinalizer(() => removeRootfs(rootfs))
      yield* say(`debootstrap --variant=minbase ${plan.suite} (once; about a minute or two)`)
      const started = Date.now()
      // An older debootstrap has no script for a newer suite (bookworm's lacks forky); every
      // current Debian suite's script is a link to sid's, so that one serves for any it lacks.
      const script = (yield* fileExists(join(debootstrapScripts, plan.suite))) ? [] : [join(debootstrapScripts, "sid")]
      yield* runLogged(debootstrap, ["--variant=minbase", plan.suite, rootfs, debianMirror, ...script], {
        what: `debootstrap ${plan.suite}`,
        progress: phases(/^I: (\S+)/u),
        timeout: "30 minutes"
      })
      yield* cleanRootfs(rootfs)
      const partial = join(cacheDir, `.tmp-${name}-${process.pid}`) // removed with the other leftovers if we die
      yield* runLogged("tar", ["--numeric-owner", "-C", rootfs, "-cf", partial, "."], {
        what: `archiving the ${plan.suite} root filesystem`
      })
      yield* fsTry(`cannot move ${partial} into place`, () => rename(partial, tarPath))
      for (const old of yield* fsTry("cannot list the cache", () => readdir(cacheDir))) {
        if (old.startsWith(`debian-${plan.suite}-`) && old.endsWith(".tar") && old !== name) {
          yield* fsTry(`cannot remove ${old}`, () => rm(join(cacheDir, old), { force: true }))
        }
      }
      yield* say(`root filesystem ready in ${Math.round((Date.now() - started) / 1000)} s: ${tarPath}`)
      return tarPath
    })
  )

/** A temporary directory under the cache, removed when the scope closes. */
export const scopedTempDir = (cacheDir: string, label: string) =>
  Effect.gen(function* () {
    const dir = join(cacheDir, `.tmp-${label}-${process.pid}`)
    yield* fsTry(`cannot create ${dir}`, async () => {
      await rm(dir, { recursive: true, force: true })
      await mkdir(dir, { recursive: true })
    })
    yield* Effect.addFinalizer(() => Effect.promise(() => rm(dir, { recursive: true, force: true })))
    return dir
  })

/**
 * Builds the Debian base image of `plan`: debootstrap (or the cached root
 * filesystem), then docker/base/debian/Containerfile, which adds the updates
 * and security suites, applies their fixes and trims documentation.
 */
export const buildDebianBase = (
  plan: DebianPlan,
  cacheDir: string
): Effect.Effect<void, ImageBuildError, ChildProcessSpawner.ChildProcessSpawner> =>
  Effect.scoped(
    Effect.gen(function* () {
      const tarPath = yield* ensureRootfsTar(plan, cacheDir)
      const context = yield* scopedTempDir(cacheDir, "context-debian")
      yield* stageContext(context, plan.files)
      // A hard link costs nothing; a copy is the fallback across file systems.
      yield* fsTry("cannot put rootfs.tar in the build context", () =>
        link(tarPath, join(context, "rootfs.tar")).catch(() => copyFile(tarPath, join(context, "rootfs.tar")))
      )
      yield* buildImage({
        ref: plan.ref,
        containerfile: join(context, "Containerfile"),
        contextDir: context,
        buildArgs: { SUITE: plan.suite, MIRROR: debianMirror, SECURITY_MIRROR: debianSecurityMirror }
      })
    })
  )

/**
 * Builds the Node base image of `plan` over the Debian base: the pinned Node's
 * binary, stripped of its symbols (about 18 MB), and npm unpacked from the npm
 * registry's tarball (fetched with the host's npm, so its registry settings
 * and certificates apply).
 */
export const buildNodeBase = (
  plan: NodePlan,
  debianRef: string,
  root: string,
  cacheDir: string
): Effect.Effect<void, ImageBuildError, ChildProcessSpawner.ChildProcessSpawner> =>
  Effect.scoped(
    Effect.gen(function* () {
      const context = yield* scopedTempDir(cacheDir, "context-node")
      yield* stageContext(context, plan.files)
      const node = join(context, "node")
      yield* fsTry("cannot copy the pinned Node binary", () =>
        copyFile(join(nodePackageDir(root), "bin", "node"), node)
      )
      const asError = (what: string) => (cause: { readonly message: string }) =>
        new ImageBuildError({ message: `${what}: ${cause.message}`, cause })
      yield* runChecked("strip", [node]).pipe(Effect.mapError(asError("cannot strip the Node binary")))
      const npm = yield* findCommand("npm")
      if (npm === undefined) return yield* new ImageBuildError({ message: "npm is not on PATH" })
      yield* say(`fetching npm ${npmVersion} from the npm registry`)
      yield* runChecked(npm, ["pack", `npm@${npmVersion}`, "--pack-destination", context, "--silent"], {
        timeout: "5 minutes"
      }).pipe(Effect.mapError(asError(`cannot fetch npm ${npmVersion}`)))
      const npmDir = join(context, "npm")
      yield* fsTry("cannot create the npm directory", () => mkdir(npmDir))
      yield* runChecked("tar", [
        "-xzf",
        join(context, `npm-${npmVersion}.tgz`),
        "-C",
        npmDir,
        "--strip-components=1"
      ]).pipe(Effect.mapError(asError("cannot unpack npm")))
      yield* fsTry("cannot remove the npm tarball", () => rm(join(context, `npm-${npmVersion}.tgz`)))
      yield* buildImage({
        ref: plan.ref,
        containerfile: join(context, "Containerfile"),
        contextDir: context,
        buildArgs: { DEBIAN_IMAGE: debianRef }
      })
    })
  )
