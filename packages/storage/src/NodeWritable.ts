import type { Writable } from "node:stream"
import { Effect } from "effect"

/**
 * Effects over a Node `Writable`, with backpressure: the pieces an upload needs
 * (write a chunk, end and wait for `finish`, destroy and wait for `close`).
 * Errors are whatever the writable emitted; callers wrap them.
 */

const closedError = (writable: Writable): unknown => writable.errored ?? new Error("the upload stream was closed")

/**
 * Writes a chunk; resumes at once while fewer than `maxQueued` bytes wait in
 * the writable (Node's own `highWaterMark` is only 16 KiB, and waiting for
 * `drain` after every write leaves the consumer idle while the producer
 * refills), else once it has drained. Fails on `error`/`close`.
 */
export const write = (writable: Writable, chunk: Uint8Array, maxQueued = 0): Effect.Effect<void, unknown> =>
  Effect.callback<void, unknown>((resume) => {
    if (writable.destroyed || writable.writableEnded) {
      resume(Effect.fail(closedError(writable)))
      return
    }
    if (writable.write(chunk) || writable.writableLength < maxQueued) {
      resume(Effect.void)
      return
    }
    const cleanup = () => {
      writable.off("drain", onDrain)
      writable.off("error", onError)
      writable.off("close", onClose)
    }
    const onDrain = () => {
      cleanup()
      resume(Effect.void)
    }
    const onError = (error: unknown) => {
      cleanup()
      resume(Effect.fail(error))
    }
    const onClose = () => {
      cleanup()
      resume(Effect.fail(closedError(writable)))
    }
    writable.on("drain", onDrain)
    writable.on("error", onError)
    writable.on("close", onClose)
    return Effect.sync(cleanup)
  })

/** Ends the writable and waits for `finish` (for an upload: the object is stored). */
export const end = (writable: Writable): Effect.Effect<void, unknown> =>
  Effect.callback<void, unknown>((resume) => {
    if (writable.writableFinished) {
      resume(Effect.void)
      return
    }
    if (writable.destroyed) {
      resume(Effect.fail(closedError(writable)))
      return
    }
    const cleanup = () => {
      writable.off("finish", onFinish)
      writable.off("error", onError)
      writable.off("close", onClose)
    }
    const onFinish = () => {
      cleanup()
      resume(Effect.void)
    }
    const onError = (error: unknown) => {
      cleanup()
      resume(Effect.fail(error))
    }
    const onClose = () => {
      cleanup()
      resume(writable.writableFinished ? Effect.void : Effect.fail(closedError(writable)))
    }
    writable.on("finish", onFinish)
    writable.on("error", onError)
    writable.on("close", onClose)
    if (!writable.writableEnded) writable.end()
    return Effect.sync(cleanup)
  })

/** Destroys the writable with an error and waits for `close` (at most `timeoutMillis`). */
export const destroy = (writable: Writable, error: Error, timeoutMillis: number): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    if (writable.closed) {
      resume(Effect.void)
      return
    }
    const timer = setTimeout(() => {
      writable.off("close", onClose)
      resume(Effect.void)
    }, timeoutMillis)
    const onClose = () => {
      clearTimeout(timer)
      resume(Effect.void)
    }
    writable.once("close", onClose)
    if (!writable.destroyed) writable.destroy(error)
    return Effect.sync(() => {
      clearTimeout(timer)
      writable.off("close", onClose)
    })
  })
