import type { Writable } from "node:stream"
import { Effect } from "effect"

/**
 * Effects over a Node `Writable`, with backpressure: the pieces an upload needs
 * (write a chunk, end and wait for `finish`, destroy and wait for `close`).
 * Errors are whatever the writable emitted; callers wrap them.
 */

const closedError = (writable: Writable): unknown => writable.errored ?? new Error("the upload stream was closed")

/**
 * Waits for `done` on the writable (success), `error`, or `close` (success only if
 * `closedOk()` says so), removing its listeners whichever comes first or if
 * interrupted. `start` runs once the listeners are in place.
 */
const awaitOutcome = (
  writable: Writable,
  done: "drain" | "finish",
  closedOk: () => boolean,
  start: () => void = () => {}
): Effect.Effect<void, unknown> =>
  Effect.callback<void, unknown>((resume) => {
    const cleanup = () => {
      writable.off(done, onDone)
      writable.off("error", onError)
      writable.off("close", onClose)
    }
    const onDone = () => {
      cleanup()
      resume(Effect.void)
    }
    const onError = (error: unknown) => {
      cleanup()
      resume(Effect.fail(error))
    }
    const onClose = () => {
      cleanup()
      resume(closedOk() ? Effect.void : Effect.fail(closedError(writable)))
    }
    writable.on(done, onDone)
    writable.on("error", onError)
    writable.on("close", onClose)
    start()
    return Effect.sync(cleanup)
  })

/**
 * Writes a chunk; resumes at once while fewer than `maxQueued` bytes wait in
 * the writable (Node's own `highWaterMark` is only 16 KiB, and waiting for
 * `drain` after every write leaves the consumer idle while the producer
 * refills), else once it has drained. Fails on `error`/`close`.
 */
export const write = (writable: Writable, chunk: Uint8Array, maxQueued = 0): Effect.Effect<void, unknown> =>
  Effect.suspend(() => {
    if (writable.destroyed || writable.writableEnded) return Effect.fail(closedError(writable))
    if (writable.write(chunk) || writable.writableLength < maxQueued) return Effect.void
    return awaitOutcome(writable, "drain", () => false)
  })

/** Ends the writable and waits for `finish` (for an upload: the object is stored). */
export const end = (writable: Writable): Effect.Effect<void, unknown> =>
  Effect.suspend(() => {
    if (writable.writableFinished) return Effect.void
    if (writable.destroyed) return Effect.fail(closedError(writable))
    return awaitOutcome(
      writable,
      "finish",
      () => writable.writableFinished,
      () => {
        if (!writable.writableEnded) writable.end()
      }
    )
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
