import { join } from "node:path"
import { cacheRoot } from "../../packages/testing/src/binaries/cache.ts"

/** The repository root (this file is docker/build/config.ts). */
export const repoRoot: string = join(import.meta.dirname, "..", "..")

/**
 * Debian stable: security support, and the suite of the public default bases
 * (node:24-trixie-slim, debian:trixie-slim), so a local build and a plain
 * `docker build` ship the same Debian and the same pg_dump.
 */
export const defaultSuite = "trixie"

/** The mirrors the host's apt uses; apt over http checks the signed Release files itself. */
export const debianMirror = "http://deb.debian.org/debian"
export const debianSecurityMirror = "http://deb.debian.org/debian-security"

/** The npm that Node 24.21.0 bundles (its changelog: "deps: upgrade npm to 11.19.0"), as node:24 images have. */
export const npmVersion = "11.19.0"

/** The runner's PostgreSQL client major: trixie's. */
export const defaultPgMajor = "17"

/** Where the Node binary of the project's pinned Node (the root devDependency `node`) is. */
export const nodePackageDir = (root: string = repoRoot): string => join(root, "node_modules", "node")

/**
 * Kept here: debootstrap'd root filesystems (as tar files), the lock against
 * concurrent builds and the temporary build contexts. The images themselves
 * live in the container storage.
 */
export const imagesCacheDir = (env: NodeJS.ProcessEnv = process.env): string => join(cacheRoot(env), "images")

/** One of the two images the project ships. */
export interface AppImageSpec {
  readonly role: "operator" | "runner"
  /** Local repository name; the tag is `<app version>-<input hash>`. */
  readonly repository: string
  /** Relative to the repository root. */
  readonly dockerfile: string
  /** The app's workspace, whose package.json gives the version and the dependencies. */
  readonly appDir: string
}

export const appImages: ReadonlyArray<AppImageSpec> = [
  {
    role: "operator",
    repository: "localhost/db-backup-operator",
    dockerfile: "docker/operator/Dockerfile",
    appDir: "apps/operator"
  },
  {
    role: "runner",
    repository: "localhost/db-backup-runner",
    dockerfile: "docker/runner/Dockerfile",
    appDir: "apps/runner"
  }
]

/** Local repositories of the base images. */
export const baseRepositories = {
  debian: "localhost/db-backup-base-debian",
  node: "localhost/db-backup-base-node"
} as const

/**
 * Bumped when the way images are built changes in a way the hashed files do
 * not show (buildah flags, rootfs clean-up), so every cached image is rebuilt.
 */
export const recipeVersion = "1"
