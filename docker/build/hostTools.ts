import { access, constants } from "node:fs/promises"
import { delimiter, join } from "node:path"
import { Effect } from "effect"
import type { ChildProcessSpawner } from "effect/process"
import { containerToolPackages } from "../../packages/testing/src/containers/engine.ts"
import { ImageBuildError } from "./ImageBuildError.ts"
import { runLogged, say } from "./logged.ts"

/** A program the image build runs on the host, and the Debian package that provides it. */
export interface HostTool {
  readonly command: string
  readonly debianPackage: string
}

/**
 * What `npm run images` needs on the host: the container tools (buildah builds,
 * podman lists and runs; both use runc), debootstrap for the local Debian
 * base, `strip` (binutils) to shrink the Node binary, and the Debian archive
 * keyring debootstrap checks the release with (apt hosts have it; Ubuntu
 * hosts may not).
 */
export const hostTools: ReadonlyArray<HostTool> = [
  ...containerToolPackages.map((name) => ({ command: name, debianPackage: name })),
  { command: "strip", debianPackage: "binutils" },
  { command: "tar", debianPackage: "tar" }
]

/** Files the build reads from the host, and their packages. */
export const hostFiles: ReadonlyArray<{ readonly path: string; readonly debianPackage: string }> = [
  { path: "/usr/share/keyrings/debian-archive-keyring.gpg", debianPackage: "debian-archive-keyring" },
  // podman's network backend, even for host networking: a container storage records the
  // backend it was created with, and podman refuses to list its images once netavark is gone.
  { path: "/usr/lib/podman/netavark", debianPackage: "netavark" }
]

// runc and debootstrap live in /usr/sbin, which is not on every user's PATH.
const searchPath = (env: NodeJS.ProcessEnv): ReadonlyArray<string> => [
  ...new Set([...(env.PATH ?? "").split(delimiter).filter((dir) => dir !== ""), "/usr/sbin", "/sbin", "/usr/bin"])
]

const exists = (path: string, mode: number) =>
  Effect.promise(() =>
    access(path, mode).then(
      () => true,
      () => false
    )
  )

/**
 * The absolute path of `command` on PATH (or in /usr/sbin, /sbin), if installed.
 *
 * @example
 * ```ts
 * yield* findCommand("debootstrap") // "/usr/sbin/debootstrap"
 * ```
 */
export const findCommand = (command: string, env: NodeJS.ProcessEnv = process.env): Effect.Effect<string | undefined> =>
  Effect.gen(function* () {
    for (const dir of searchPath(env)) {
      const candidate = join(dir, command)
      if (yield* exists(candidate, constants.X_OK)) return candidate
    }
    return undefined
  })

/** The Debian packages whose tools or files are missing on this host. */
export const missingPackages: Effect.Effect<ReadonlyArray<string>> = Effect.gen(function* () {
  const missing = new Set<string>()
  for (const tool of hostTools) {
    if ((yield* findCommand(tool.command)) === undefined) missing.add(tool.debianPackage)
  }
  for (const file of hostFiles) {
    if (!(yield* exists(file.path, constants.R_OK))) missing.add(file.debianPackage)
  }
  return [...missing]
})

const isRoot = (): boolean => typeof process.getuid === "function" && process.getuid() === 0

/**
 * Makes sure the host has every tool the image build runs. Missing ones are
 * installed with apt when we are root on a Debian or Ubuntu host (`apt-get
 * update`, then `apt-get install --no-install-recommends`: podman and buildah
 * need nothing recommended with overlay or vfs storage, runc and host networking);
 * otherwise this fails naming the packages to install.
 *
 * @example
 * ```ts
 * yield* ensureHostTools
 * ```
 */
export const ensureHostTools: Effect.Effect<void, ImageBuildError, ChildProcessSpawner.ChildProcessSpawner> =
  Effect.gen(function* () {
    const missing = yield* missingPackages
    if (missing.length === 0) return
    const aptGet = yield* findCommand("apt-get")
    if (!isRoot() || aptGet === undefined) {
      return yield* new ImageBuildError({
        message: [
          `building the images needs these Debian packages, which are not installed: ${missing.join(", ")}.`,
          `Install them (as root): apt-get install --no-install-recommends ${missing.join(" ")}`,
          "or build with Docker from the public bases instead (docker/README.md)."
        ].join("\n")
      })
    }
    const env = { DEBIAN_FRONTEND: "noninteractive" }
    yield* say(`installing the missing host packages: ${missing.join(" ")}`)
    yield* runLogged(aptGet, ["update"], { what: "apt-get update (host)", env, timeout: "10 minutes" })
    yield* runLogged(aptGet, ["install", "-y", "--no-install-recommends", ...missing], {
      what: `apt-get install ${missing.join(" ")} (host)`,
      env,
      timeout: "20 minutes",
      progress: (line) => (line.startsWith("Setting up ") ? line : undefined)
    })
    const still = yield* missingPackages
    if (still.length > 0) {
      return yield* new ImageBuildError({
        message: `apt-get installed ${missing.join(", ")} but these are still missing: ${still.join(", ")}`
      })
    }
  })

/** Fails unless we are root: debootstrap and the root container storage the tests use both need it. */
export const requireRoot: Effect.Effect<void, ImageBuildError> = Effect.suspend(() =>
  isRoot()
    ? Effect.void
    : Effect.fail(
        new ImageBuildError({
          message:
            "building the images needs root (debootstrap assembles the base; buildah and podman use the root storage). Run `npm run images` as root, or build with Docker from the public bases (docker/README.md)."
        })
      )
)
