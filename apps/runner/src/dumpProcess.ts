import { spawn } from "node:child_process"
import { mkdtemp, rm } from "node:fs/promises"
import * as net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Array as Arr, Cause, Duration, Effect, type Scope, Stream } from "effect"
import type { BlockPool } from "./compress.ts"
import { DumpFailed, ToolUnavailable } from "./errors.ts"
import { oneLine } from "./oneLine.ts"
import { type ChildEnv, started, type stderrTailBytes, stderrTailOf, terminate, toolProcessEnv } from "./process.ts"

/**
 * pg_dump as a child process whose output is read straight into 1 MiB blocks.
 *
 * Why not the platform's ChildProcessSpawner: its stdout is a Node stream
 * read a piece at a time (pg_dump's writes arrive 4-16 KiB at a time, some
 * 25,000 pieces per 300 MB) through a PassThrough, each piece a new 64 KiB
 * buffer. At hundreds of MB/s that cost more CPU time than compressing the
 * dump: the pieces' memory forced a full garbage collection every ~10 MB
 * (25 per 300 MB, about a second of the main thread plus the collector's own
 * threads), and peak RSS grew by about 60 MiB. Here pg_dump's stdout is one
 * end of a Unix socket pair whose other end this process reads with Node's
 * `onread`: the kernel copies each write directly into the block being
 * filled, and no buffer is allocated per read.
 *
 * The pair is made with a listening socket in a fresh private directory
 * (`mkdtemp`, mode 0700, under the temporary directory), which is removed as
 * soon as the two ends are connected: only this user could have connected,
 * and nothing stays on disk.
 */

/** A running pg_dump. */
export interface DumpProcess {
  /**
   * Its stdout in blocks of the pool's size (the last may be shorter). At most
   * `maxReadyBlocks` wait to be pulled; beyond, reading pauses (backpressure
   * up to pg_dump, which blocks on a full socket). Read it once.
   */
  readonly output: Stream.Stream<Uint8Array, DumpFailed>
  /** Its exit code, once it has exited; killed by a signal is a DumpFailed. */
  readonly exitCode: Effect.Effect<number, DumpFailed>
  /** The last {@link stderrTailBytes} of its stderr, once stderr has ended. */
  readonly stderr: Effect.Effect<string>
}

/** Full blocks read ahead of the consumer: enough to keep pg_dump writing while a block is handed on. */
export const maxReadyBlocks = 2

const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error))

/**
 * Two connected Unix stream sockets: `reader`, read with `onread` (it starts
 * reading at once), and `writer`, for a child's stdio. Both are destroyed
 * when the Scope closes.
 */
const socketPair = (onread: net.OnReadOpts) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const dir = await mkdtemp(join(tmpdir(), "db-backup-runner-"))
        try {
          const path = join(dir, "pg_dump.sock")
          const server = net.createServer({ pauseOnConnect: true })
          await new Promise<void>((resolve, reject) => {
            server.once("error", reject)
            server.listen(path, () => resolve())
          })
          try {
            const accepted = new Promise<net.Socket>((resolve) => server.once("connection", resolve))
            const reader = net.connect({ path, onread })
            try {
              await new Promise<void>((resolve, reject) => {
                reader.once("error", reject)
                reader.once("connect", () => resolve())
              })
              return { reader, writer: await accepted }
            } catch (error) {
              reader.destroy()
              throw error
            }
          } finally {
            server.close()
          }
        } finally {
          await rm(dir, { recursive: true, force: true })
        }
      },
      catch: (error) => new ToolUnavailable({ message: oneLine(`cannot connect to pg_dump: ${errorText(error)}`) })
    }),
    ({ reader, writer }) =>
      Effect.sync(() => {
        reader.destroy()
        writer.destroy()
      })
  )

/**
 * Starts pg_dump (`command` with `args`, no shell). It lives in the current
 * Scope: closing it before pg_dump has exited terminates it (SIGTERM, then
 * SIGKILL after `forceKillAfter`) and waits for it.
 */
export const spawnDump = (options: {
  readonly command: string
  readonly args: ReadonlyArray<string>
  readonly env: ChildEnv
  readonly pool: BlockPool
  readonly forceKillAfter: Duration.Input
}): Effect.Effect<DumpProcess, ToolUnavailable, Scope.Scope> =>
  Effect.gen(function* () {
    const { pool } = options
    // The block being filled, and how much of it is.
    let block: Buffer | undefined
    let filled = 0
    const ready: Array<Uint8Array> = []
    let ended = false
    let failure: DumpFailed | undefined
    // A pull waiting for a block (or the end); called whenever that may have changed.
    let waiting: (() => boolean) | undefined
    const wake = () => {
      const attempt = waiting
      if (attempt?.() && waiting === attempt) waiting = undefined
    }

    const { reader, writer } = yield* socketPair({
      // Every read goes directly into the rest of the current block.
      buffer: () => {
        block ??= pool.take()
        return block.subarray(filled)
      },
      callback: (bytes) => {
        filled += bytes
        if (block !== undefined && filled === block.byteLength) {
          ready.push(block)
          block = undefined
          filled = 0
          wake()
        }
        // false pauses reading until a pull takes the blocks.
        return ready.length < maxReadyBlocks
      }
    })
    reader.on("end", () => {
      if (block !== undefined && filled > 0) ready.push(block.subarray(0, filled))
      block = undefined
      ended = true
      wake()
    })
    reader.on("error", (error) => {
      failure ??= new DumpFailed({ message: oneLine(`reading pg_dump's output failed: ${error.message}`) })
      wake()
    })

    const child = yield* Effect.try({
      try: () =>
        spawn(options.command, [...options.args], {
          env: toolProcessEnv(options.env),
          stdio: ["ignore", writer, "pipe"]
        }),
      catch: (error) => new ToolUnavailable({ message: oneLine(`cannot start pg_dump: ${errorText(error)}`) })
    })
    const exited = new Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>((resolve) =>
      child.once("exit", (code, signal) => resolve({ code, signal }))
    )
    const stderr = stderrTailOf(child)
    yield* Effect.addFinalizer(() => terminate(child, Duration.fromInputUnsafe(options.forceKillAfter)))
    yield* started(child, "pg_dump")
    // pg_dump has its own copy of the writing end: EOF comes when pg_dump closes it (exits).
    writer.destroy()

    const pull = Effect.callback<Arr.NonEmptyReadonlyArray<Uint8Array>, DumpFailed | Cause.Done>((resume) => {
      const attempt = (): boolean => {
        const blocks = ready.splice(0)
        if (Arr.isArrayNonEmpty(blocks)) {
          // Paused with a full queue: room again.
          if (!reader.destroyed) reader.resume()
          resume(Effect.succeed(blocks))
          return true
        }
        if (failure !== undefined) {
          resume(Effect.fail(failure))
          return true
        }
        if (ended) {
          resume(Effect.fail(Cause.Done()))
          return true
        }
        return false
      }
      if (attempt()) return
      waiting = attempt
      // Only its own: this also runs after it was resumed, maybe once the next pull is waiting.
      return Effect.sync(() => {
        if (waiting === attempt) waiting = undefined
      })
    })

    return {
      output: Stream.fromPull(Effect.succeed(pull)),
      exitCode: Effect.promise(() => exited).pipe(
        Effect.flatMap(({ code, signal }) =>
          code !== null
            ? Effect.succeed(code)
            : Effect.fail(
                new DumpFailed({ message: `pg_dump did not exit normally: killed by ${signal ?? "a signal"}` })
              )
        )
      ),
      stderr
    } satisfies DumpProcess
  })
