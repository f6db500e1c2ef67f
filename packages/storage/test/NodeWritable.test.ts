import { Writable } from "node:stream"
import { assert, describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import * as NodeWritable from "../src/NodeWritable.ts"

// NodeWritable turns a Node Writable (for an upload: the GCS client's stream) into
// effects. These tests drive a Writable whose writes and final step complete only
// when the test says so, to check when each effect resumes and what it fails with.

/** A Writable whose writes and `final` complete only when the test calls back. */
const controlled = (options: { readonly highWaterMark?: number; readonly emitClose?: boolean } = {}) => {
  const received: Array<Buffer> = []
  const callbacks: Array<(error?: Error | null) => void> = []
  let finish: ((error?: Error | null) => void) | undefined
  const writable = new Writable({
    highWaterMark: options.highWaterMark ?? 4,
    emitClose: options.emitClose ?? true,
    write(chunk: Buffer, _encoding, callback) {
      received.push(chunk)
      callbacks.push(callback)
    },
    final(callback) {
      finish = callback
    }
  })
  return {
    writable,
    received,
    /** Completes every write so far, and those Node hands over meanwhile (its buffer drains). */
    completeWrites: () => {
      for (let callback = callbacks.shift(); callback !== undefined; callback = callbacks.shift()) callback()
    },
    /** Fails the oldest write in progress, as a client does when its request fails. */
    failWrite: (error: Error) => callbacks.shift()?.(error),
    /** Completes (or fails) the final step; `finish` comes after. */
    completeFinal: (error?: Error) => finish?.(error),
    finalStarted: () => finish !== undefined
  }
}

const bytes = (n: number, fill = 1) => Buffer.alloc(n, fill)

/** Lets Node deliver the stream events queued on nextTick and the current loop turn. */
const settle = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve))).pipe(
  Effect.repeat({ times: 2 })
)

/** Starts `effect` in a child fiber and lets it run until it waits on the stream. */
const started = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.forkChild(effect, { startImmediately: true }).pipe(Effect.tap(() => settle))

const isPending = (fiber: Fiber.Fiber<unknown, unknown>) => fiber.pollUnsafe() === undefined

const failureOf = <A, E>(exit: Exit.Exit<A, E>): unknown => {
  if (Exit.isSuccess(exit)) return assert.fail("expected a failure, got a success")
  return exit.cause.reasons.map((reason) => (reason._tag === "Fail" ? reason.error : reason))[0]
}

const listeners = (writable: Writable) =>
  ["drain", "finish", "error", "close"].map((event) => writable.listenerCount(event))

describe("NodeWritable.write", () => {
  it.effect("resumes at once while the writable has room, and waits for drain once it is full", () =>
    Effect.gen(function* () {
      const stream = controlled({ highWaterMark: 4 })
      yield* NodeWritable.write(stream.writable, bytes(3, 1))

      const full = yield* started(NodeWritable.write(stream.writable, bytes(3, 2)))
      expect(isPending(full)).toBe(true)

      stream.completeWrites()
      yield* Fiber.join(full)
      expect(Buffer.concat(stream.received)).toEqual(Buffer.concat([bytes(3, 1), bytes(3, 2)]))
    })
  )

  it.effect("keeps accepting past Node's highWaterMark until maxQueued bytes wait", () =>
    Effect.gen(function* () {
      const stream = controlled({ highWaterMark: 4 })
      // 3 + 3 + 3 bytes waiting: past the writable's 4, under maxQueued 10.
      for (let i = 0; i < 3; i++) {
        const accepted = yield* started(NodeWritable.write(stream.writable, bytes(3), 10))
        expect(isPending(accepted), `write ${i + 1} waited`).toBe(false)
      }
      expect(stream.writable.writableLength).toBe(9)

      const over = yield* started(NodeWritable.write(stream.writable, bytes(3), 10))
      expect(isPending(over)).toBe(true)
      stream.completeWrites()
      yield* Fiber.join(over)
    })
  )

  it.effect("fails with the writable's error when a write fails while it waits", () =>
    Effect.gen(function* () {
      const stream = controlled({ highWaterMark: 4 })
      const waiting = yield* started(NodeWritable.write(stream.writable, bytes(8)))
      expect(isPending(waiting)).toBe(true)

      const reset = new Error("connection reset")
      stream.failWrite(reset)
      expect(failureOf(yield* Fiber.await(waiting))).toBe(reset)
    })
  )

  it.effect("fails when the writable is closed without an error while it waits", () =>
    Effect.gen(function* () {
      const stream = controlled({ highWaterMark: 4 })
      const waiting = yield* started(NodeWritable.write(stream.writable, bytes(8)))
      stream.writable.destroy()
      const error = failureOf(yield* Fiber.await(waiting))
      expect(error).toBeInstanceOf(Error)
      expect((error as Error).message).toBe("the upload stream was closed")
    })
  )

  it.effect("fails at once on a destroyed writable with the error it failed with, and writes nothing", () =>
    Effect.gen(function* () {
      const stream = controlled()
      const cause = new Error("checksum mismatch")
      stream.writable.on("error", () => {})
      stream.writable.destroy(cause)
      expect(failureOf(yield* Effect.exit(NodeWritable.write(stream.writable, bytes(1))))).toBe(cause)
      expect(stream.received).toEqual([])
    })
  )

  it.effect("fails at once on an ended writable instead of writing after end", () =>
    Effect.gen(function* () {
      const stream = controlled()
      stream.writable.end()
      const error = failureOf(yield* Effect.exit(NodeWritable.write(stream.writable, bytes(1))))
      expect((error as Error).message).toBe("the upload stream was closed")
      expect(stream.received).toEqual([])
    })
  )

  it.effect("removes its listeners when interrupted while waiting, leaving the writable usable", () =>
    Effect.gen(function* () {
      const stream = controlled({ highWaterMark: 4 })
      const before = listeners(stream.writable)
      const waiting = yield* started(NodeWritable.write(stream.writable, bytes(8)))
      expect(listeners(stream.writable)).not.toEqual(before)

      yield* Fiber.interrupt(waiting)
      expect(listeners(stream.writable)).toEqual(before)
      expect(stream.writable.destroyed).toBe(false)
      stream.completeWrites()
      yield* NodeWritable.write(stream.writable, bytes(1))
    })
  )
})

describe("NodeWritable.end", () => {
  it.effect("resumes only once the final step has completed and finish was emitted", () =>
    Effect.gen(function* () {
      const stream = controlled()
      yield* NodeWritable.write(stream.writable, bytes(2))
      const ending = yield* started(NodeWritable.end(stream.writable))
      // For an upload, this is the client still sending the last request.
      stream.completeWrites()
      yield* settle
      expect(stream.finalStarted()).toBe(true)
      expect(isPending(ending)).toBe(true)

      stream.completeFinal()
      yield* Fiber.join(ending)
      expect(stream.writable.writableFinished).toBe(true)
    })
  )

  it.effect("fails with the final step's error (the store rejected the object)", () =>
    Effect.gen(function* () {
      const stream = controlled()
      const ending = yield* started(NodeWritable.end(stream.writable))
      const rejected = new Error("md5 mismatch")
      stream.completeFinal(rejected)
      expect(failureOf(yield* Fiber.await(ending))).toBe(rejected)
    })
  )

  it.effect("fails when the writable is destroyed before it finished", () =>
    Effect.gen(function* () {
      const stream = controlled()
      const ending = yield* started(NodeWritable.end(stream.writable))
      stream.writable.destroy()
      expect((failureOf(yield* Fiber.await(ending)) as Error).message).toBe("the upload stream was closed")
    })
  )

  it.effect("succeeds at once on a finished writable, and fails at once on a destroyed one", () =>
    Effect.gen(function* () {
      const finished = controlled()
      const ending = yield* started(NodeWritable.end(finished.writable))
      finished.completeFinal()
      yield* Fiber.join(ending)
      yield* NodeWritable.end(finished.writable)

      const destroyed = controlled()
      destroyed.writable.destroy()
      expect(Exit.isFailure(yield* Effect.exit(NodeWritable.end(destroyed.writable)))).toBe(true)
    })
  )
})

describe("NodeWritable.destroy", () => {
  it.effect("destroys the writable with the error and resumes once it has closed", () =>
    Effect.gen(function* () {
      let release: (() => void) | undefined
      const writable = new Writable({
        write: (_chunk, _encoding, callback) => callback(),
        // Closing takes a while (for an upload: the client tearing down its request).
        destroy: (error, callback) => {
          release = () => callback(error)
        }
      })
      writable.on("error", () => {})
      const reason = new Error("upload aborted: pg_dump failed")
      const destroying = yield* started(NodeWritable.destroy(writable, reason, 60_000))
      expect(writable.destroyed).toBe(true)
      expect(isPending(destroying)).toBe(true)

      release?.()
      yield* Fiber.join(destroying)
      expect(writable.closed).toBe(true)
      expect(writable.errored).toBe(reason)
    })
  )

  it.live("gives up waiting after the timeout when close never comes", () =>
    Effect.gen(function* () {
      const stream = controlled({ emitClose: false })
      stream.writable.on("error", () => {})
      const startedAt = Date.now()
      // Bounded here too, so a destroy that waits forever fails this test at once.
      yield* NodeWritable.destroy(stream.writable, new Error("aborted"), 50).pipe(Effect.timeout("2 seconds"))
      expect(Date.now() - startedAt).toBeGreaterThanOrEqual(40)
      expect(stream.writable.destroyed).toBe(true)
    })
  )

  it.effect("resumes at once on a writable that is already closed", () =>
    Effect.gen(function* () {
      const stream = controlled()
      stream.writable.destroy()
      yield* settle
      expect(stream.writable.closed).toBe(true)
      yield* NodeWritable.destroy(stream.writable, new Error("again"), 60_000)
    })
  )
})
