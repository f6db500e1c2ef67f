import { Data } from "effect"

/**
 * An image could not be built, found or measured: a missing host tool, a
 * Dockerfile that does not match the workspaces, a failed debootstrap, npm or
 * buildah step. The message says what to do; `cause` keeps the original error.
 */
export class ImageBuildError extends Data.TaggedError("ImageBuildError")<{
  readonly message: string
  readonly cause?: unknown
}> {}
