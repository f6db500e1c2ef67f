import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Redacted, Stream } from "effect"
import { makeBlockPool } from "../src/compress.ts"
import { maxReadyBlocks, spawnDump } from "../src/dumpProcess.ts"

// spawnDump with a stand-in for pg_dump (this Node running a script): what the
// pipeline relies on, whatever the tool prints.

const KiB = 1024
const MiB = 1024 * KiB

/** Byte `i` of the stand-in's output: a pattern whose period (251) is no block size. */
const expected = (n: number) =>
  Buffer.alloc(
    n,
    Uint8Array.from({ length: 251 }, (_, i) => i)
  )

/** A script writing `bytes` pattern bytes to stdout in pieces of `piece` bytes, as pg_dump writes. */
const writer = (bytes: number, piece: number) => `
  const total = ${bytes}, piece = ${piece}
  const all = Buffer.alloc(total, Uint8Array.from({ length: 251 }, (_, i) => i))
  let at = 0
  const next = () => {
    while (at < total) {
      const end = Math.min(total, at + piece)
      const ok = process.stdout.write(all.subarray(at, end))
      at = end
      if (!ok) return process.stdout.once("drain", next)
    }
  }
  next()
`

const node = (script: string, env: Record<string, string | Redacted.Redacted<string> | undefined> = {}) => ({
  command: process.execPath,
  args: ["-e", script],
  env,
  forceKillAfter: "2 seconds" as const
})

/** A pool that counts the buffers it hands out. */
const countingPool = (size: number) => {
  const pool = makeBlockPool(size, 8)
  let taken = 0
  return {
    pool: {
      take: () => {
        taken++
        return pool.take()
      },
      give: pool.give
    },
    taken: () => taken
  }
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe("spawnDump", () => {
  it.effect("delivers stdout in order, in whole blocks of the pool's size, then the exit code", () =>
    Effect.gen(function* () {
      const total = 3 * MiB + 12_345
      const dump = yield* spawnDump({ ...node(writer(total, 7 * KiB)), pool: makeBlockPool(MiB, 4) })
      const blocks = yield* Stream.runCollect(dump.output)
      expect(blocks.map((b) => b.byteLength)).toEqual([MiB, MiB, MiB, 12_345])
      expect(Buffer.concat(blocks)).toEqual(expected(total))
      expect(yield* dump.exitCode).toBe(0)
      expect(yield* dump.stderr).toBe("")
    }).pipe(Effect.scoped)
  )

  it.effect("an empty output is an empty stream", () =>
    Effect.gen(function* () {
      const dump = yield* spawnDump({ ...node(""), pool: makeBlockPool(MiB, 4) })
      expect(yield* Stream.runCollect(dump.output)).toEqual([])
      expect(yield* dump.exitCode).toBe(0)
    }).pipe(Effect.scoped)
  )

  it.live("stops reading while blocks wait to be pulled (backpressure), then delivers every byte", () =>
    Effect.gen(function* () {
      const total = 64 * MiB
      const counted = countingPool(MiB)
      const dump = yield* spawnDump({ ...node(writer(total, 64 * KiB)), pool: counted.pool })
      const firstBlock = yield* Deferred.make<void>()
      const goOn = yield* Deferred.make<void>()
      let received = 0
      const consumer = yield* Effect.forkChild(
        dump.output.pipe(
          Stream.runForEach((block) =>
            Effect.gen(function* () {
              received += block.byteLength
              // A consumer that stops after its first block, while the writer could go on at full speed.
              if (yield* Deferred.succeed(firstBlock, undefined)) yield* Deferred.await(goOn)
            })
          )
        )
      )
      yield* Deferred.await(firstBlock)
      yield* Effect.sleep("500 millis")
      // One block was pulled and a few are read ahead; the rest waits in the writer.
      expect(received).toBeLessThanOrEqual(maxReadyBlocks * MiB)
      expect(counted.taken()).toBeLessThanOrEqual(1 + maxReadyBlocks + 2)
      yield* Deferred.succeed(goOn, undefined)
      yield* Fiber.join(consumer)
      expect(received).toBe(total)
      expect(yield* dump.exitCode).toBe(0)
    }).pipe(Effect.scoped)
  )

  it.effect("a non-zero exit code comes with the end of stderr", () =>
    Effect.gen(function* () {
      const dump = yield* spawnDump({
        ...node(`process.stderr.write("x".repeat(100000) + "pg_dump: error: no luck\\n"); process.exit(3)`),
        pool: makeBlockPool(MiB, 4)
      })
      expect(yield* Stream.runCollect(dump.output)).toEqual([])
      expect(yield* dump.exitCode).toBe(3)
      const stderr = yield* dump.stderr
      expect(stderr.endsWith("pg_dump: error: no luck\n")).toBe(true)
      expect(stderr.length).toBe(64 * KiB)
    }).pipe(Effect.scoped)
  )

  it.effect("a process killed by a signal is DumpFailed", () =>
    Effect.gen(function* () {
      const dump = yield* spawnDump({ ...node(`process.kill(process.pid, "SIGKILL")`), pool: makeBlockPool(MiB, 4) })
      yield* Stream.runDrain(dump.output)
      const error = yield* Effect.flip(dump.exitCode)
      expect(error).toMatchObject({ _tag: "DumpFailed", message: "pg_dump did not exit normally: killed by SIGKILL" })
    }).pipe(Effect.scoped)
  )

  it.effect("a command that cannot start is ToolUnavailable", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        spawnDump({
          command: "/nonexistent/pg_dump",
          args: [],
          env: {},
          pool: makeBlockPool(MiB, 4),
          forceKillAfter: "1 second"
        }).pipe(Effect.scoped)
      )
      expect(error._tag).toBe("ToolUnavailable")
      expect(error.message).toContain("cannot start pg_dump")
      expect(error.message).toContain("ENOENT")
    })
  )

  it.effect("closing the Scope terminates a process that still runs, and waits for it", () =>
    Effect.gen(function* () {
      // Blocks of 8 bytes: the stand-in's pid, then it hangs.
      const pid = yield* Effect.scoped(
        Effect.gen(function* () {
          const dump = yield* spawnDump({
            ...node(`process.stdout.write(String(process.pid).padStart(8, "0")); setInterval(() => {}, 1000)`),
            pool: makeBlockPool(8, 4)
          })
          const [first] = yield* dump.output.pipe(Stream.take(1), Stream.runCollect)
          const pid = Number(Buffer.from(first ?? new Uint8Array()).toString("utf8"))
          expect(alive(pid)).toBe(true)
          return pid
        })
      )
      expect(alive(pid)).toBe(false)
    })
  )

  it.effect("the process gets the given environment (secrets revealed), and none of the runner's PG* variables", () =>
    Effect.gen(function* () {
      const before = process.env.PGSERVICE
      process.env.PGSERVICE = "inherited-and-unwanted"
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          if (before === undefined) delete process.env.PGSERVICE
          else process.env.PGSERVICE = before
        })
      )
      const dump = yield* spawnDump({
        ...node(
          `process.stdout.write(JSON.stringify({ service: process.env.PGSERVICE ?? null, password: process.env.PGPASSWORD, path: process.env.PATH !== undefined }))`,
          { PGPASSWORD: Redacted.make("s3cret") }
        ),
        pool: makeBlockPool(MiB, 4)
      })
      const output = Buffer.concat(yield* Stream.runCollect(dump.output)).toString("utf8")
      expect(JSON.parse(output)).toEqual({ service: null, password: "s3cret", path: true })
    }).pipe(Effect.scoped)
  )
})
