import { Effect, FileSystem, Option, type PlatformError, Stream } from "effect"
import type { LogInstance } from "./logs.ts"

/** The kubelet's log options this node honours. */
export interface LogReadOptions {
  /** Keep streaming what the instance writes until it stops. */
  readonly follow: boolean
  /** Start with the last N lines (of what is there when the request arrives). */
  readonly tailLines?: number | undefined
  /** Stop after this many bytes. */
  readonly limitBytes?: number | undefined
}

const chunkSize = 64 * 1024
const newline = 0x0a

/**
 * Where the last `lines` lines of `bytes` start (a final newline ends the last line, it does not start one).
 *
 * @example
 * ```ts
 * tailOffset(new TextEncoder().encode("a\nb\nc\n"), 2) // 2: "b\nc\n"
 * ```
 */
export const tailOffset = (bytes: Uint8Array, lines: number): number => {
  if (lines <= 0) return bytes.length
  let end = bytes.length
  if (end > 0 && bytes[end - 1] === newline) end--
  let seen = 0
  for (let index = end - 1; index >= 0; index--) {
    if (bytes[index] === newline && ++seen === lines) return index + 1
  }
  return 0
}

interface Cursor {
  readonly offset: number
  /** Bytes still allowed by `limitBytes`. */
  readonly remaining: number
}

/**
 * A container instance's log as a byte stream, as the kubelet serves it:
 * optionally from the last `tailLines` lines, cut at `limitBytes`, and with
 * `follow` polling the file until the instance has stopped and everything it
 * wrote was sent.
 *
 * @example
 * ```ts
 * import { HttpServerResponse } from "effect/http"
 * import type { LogInstance } from "./logs.ts"
 * declare const instance: LogInstance
 * const fs = yield* FileSystem.FileSystem
 * // The body is read after the handler returned: it gets the FileSystem now.
 * const body = readLog(instance, { follow: true, tailLines: 10 }).pipe(Stream.provideService(FileSystem.FileSystem, fs))
 * const response = HttpServerResponse.stream(body, { contentType: "text/plain" })
 * ```
 */
export const readLog = (
  instance: LogInstance,
  options: LogReadOptions
): Stream.Stream<Uint8Array, PlatformError.PlatformError, FileSystem.FileSystem> =>
  Stream.unwrap(
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const file = yield* fs.open(instance.file, { flag: "r" })
      const start =
        options.tailLines === undefined
          ? 0
          : tailOffset(yield* fs.readFile(instance.file), Math.max(0, Math.floor(options.tailLines)))
      const limit = options.limitBytes === undefined ? Number.POSITIVE_INFINITY : Math.max(0, options.limitBytes)
      return Stream.paginate<Cursor, Uint8Array, PlatformError.PlatformError, never>(
        { offset: start, remaining: limit },
        (cursor) =>
          Effect.gen(function* () {
            if (cursor.remaining <= 0) return [[], Option.none()] as const
            // Read `done` before reading: output written before the instance stopped is then never missed.
            const stopped = instance.done
            const read = yield* file.readAlloc(Math.min(chunkSize, cursor.remaining), {
              position: BigInt(cursor.offset)
            })
            const bytes = Option.getOrElse(read, () => new Uint8Array())
            if (bytes.length > 0) {
              const next = { offset: cursor.offset + bytes.length, remaining: cursor.remaining - bytes.length }
              return [[bytes], Option.some(next)] as const
            }
            if (!options.follow || stopped) return [[], Option.none()] as const
            yield* Effect.sleep("200 millis")
            return [[], Option.some(cursor)] as const
          })
      )
    })
  )
