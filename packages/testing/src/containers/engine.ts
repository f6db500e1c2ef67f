import { createHash } from "node:crypto"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { cacheRoot } from "../binaries/cache.ts"

/**
 * overlay when this process is root and the kernel has it: a container then
 * starts from the image's layers at once. vfs, which works everywhere, copies
 * the whole image (300 MB: ~9 s of a core) for every container, which a node
 * starting a backup Pod every few seconds cannot afford.
 */
const defaultStorageDriver = (): "overlay" | "vfs" => {
  try {
    const root = process.getuid?.() === 0
    return root && /\toverlay$/mu.test(readFileSync("/proc/filesystems", "utf8")) ? "overlay" : "vfs"
  } catch {
    return "vfs"
  }
}

/**
 * The container storage driver: `DB_BACKUP_OPERATOR_STORAGE_DRIVER` (`overlay`
 * or `vfs`) or, unset, overlay where it works and vfs elsewhere.
 */
export const containerStorageDriver: string = process.env.DB_BACKUP_OPERATOR_STORAGE_DRIVER || defaultStorageDriver()

/** The storage flags of the project's own storage under `root` (the cache root). */
const storageRoot = (root: string): ReadonlyArray<string> => [
  `--storage-driver=${containerStorageDriver}`,
  `--root=${join(root, "containers", containerStorageDriver)}`,
  // Run state (locks, mounts) belongs on tmpfs; one directory per storage root.
  `--runroot=/run/db-backup-operator/${createHash("sha256").update(root).digest("hex").slice(0, 12)}-${containerStorageDriver}`
]

/**
 * How podman and buildah find their storage. Both must use the same, or podman
 * does not see the images buildah built (and tries to pull them from a registry
 * that is not reachable here). As root, the project keeps its own storage per
 * driver under its cache root (`<cache>/containers/<driver>`): it never meets
 * another driver's storage (which podman refuses) or the machine's other
 * containers, and removing the cache removes the images too. Rootless, the
 * user's default storage.
 */
export const containerStorageArgs: ReadonlyArray<string> =
  process.getuid?.() === 0 ? storageRoot(cacheRoot()) : [`--storage-driver=${containerStorageDriver}`]

/** Global flags of every `podman` call: storage as buildah's, runc, no systemd. */
export const podmanGlobalArgs: ReadonlyArray<string> = [
  ...containerStorageArgs,
  "--runtime=runc",
  "--cgroup-manager=cgroupfs",
  "--events-backend=file"
]

/** Global flags of every `buildah` call. */
export const buildahGlobalArgs: ReadonlyArray<string> = [...containerStorageArgs]

/**
 * Resource limits every container gets: runc cannot raise them above the
 * limits of the process that starts it, and the defaults podman asks for are
 * higher than some machines allow.
 */
export const containerUlimitArgs: ReadonlyArray<string> = ["--ulimit=nofile=1024:1024", "--ulimit=nproc=1024:1024"]

/** The Debian packages that provide the container tools, installed by `npm test` when missing. */
export const containerToolPackages: ReadonlyArray<string> = ["podman", "buildah", "runc", "debootstrap"]
