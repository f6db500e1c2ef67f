/**
 * How this project calls podman and buildah. Both must name the same storage
 * driver or podman does not see the images buildah built (and tries to pull
 * them from a registry that is not reachable here). `vfs` works everywhere,
 * including inside VMs without overlayfs support for unprivileged mounts.
 */
export const containerStorageArgs: ReadonlyArray<string> = ["--storage-driver=vfs"]

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
