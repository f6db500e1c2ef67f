import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Stream } from "effect"
import { RestoreFailed } from "../src/errors.ts"
import { archiveToSql } from "../src/restore/pgRestoreProcess.ts"

// The pg_restore stage of a custom-format restore, with stand-in pg_restore scripts: what the
// restore relies on is that the script comes out, that every input byte is read (the checksum
// covers them all), and which failure is reported. The integration tests run the real one.

let dir = ""
/** A stand-in pg_restore: a shell script `body`, given the real one's arguments. */
const tool = (name: string, body: string) => {
  const path = join(dir, name)
  writeFileSync(path, `#!/bin/sh\n${body}\n`)
  chmodSync(path, 0o755)
  return path
}
let echoArgs = ""
let readsLittle = ""
let damaged = ""
let neverExits = ""
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "pg-restore-test-"))
  // Reads its whole input, then writes a script naming its arguments.
  echoArgs = tool("echo-args", `cat >/dev/null\nprintf 'SELECT %s;\\n' "$*"`)
  // Needs only the first bytes (as pg_restore needs nothing after the archive's last block).
  readsLittle = tool("reads-little", "head -c 100 >/dev/null\nprintf 'SELECT 1;\\n'")
  damaged = tool(
    "damaged",
    "head -c 100 >/dev/null\nprintf 'CREATE TABLE t (id int);\\n'\necho 'pg_restore: error: could not read from input file: end of file' >&2\nexit 1"
  )
  neverExits = tool("never-exits", "exec sleep 600")
})
afterAll(() => {
  if (dir !== "") rmSync(dir, { recursive: true, force: true })
})

/** `megabytes` MiB in 64 KiB chunks, counting the bytes pulled from it. */
const input = (megabytes: number) => {
  const pulled = { bytes: 0 }
  const stream = Stream.range(1, megabytes * 16).pipe(
    Stream.map(() => new Uint8Array(64 * 1024)),
    Stream.tap((chunk) =>
      Effect.sync(() => {
        pulled.bytes += chunk.byteLength
      })
    )
  )
  return { stream, pulled }
}

const text = <E>(stream: Stream.Stream<Uint8Array, E>) => stream.pipe(Stream.decodeText(), Stream.mkString)

describe("archiveToSql", () => {
  it.live("gives the script pg_restore writes, run as pg_restore --format=custom --file=-", () =>
    Effect.gen(function* () {
      const { stream, pulled } = input(2)
      const script = yield* text(stream.pipe(archiveToSql({ command: echoArgs })))
      expect(script).toBe("SELECT --format=custom --file=-;\n")
      expect(pulled.bytes).toBe(2 * 1024 * 1024)
    })
  )

  it.live("reads the input to its end when pg_restore exits without needing it all", () =>
    Effect.gen(function* () {
      const { stream, pulled } = input(8)
      const script = yield* text(stream.pipe(archiveToSql({ command: readsLittle })))
      expect(script).toBe("SELECT 1;\n")
      // Every byte went by: a checksum taken on the way covers the whole object.
      expect(pulled.bytes).toBe(8 * 1024 * 1024)
    })
  )

  it.live("fails with pg_restore's reason when it fails, after the script it wrote", () =>
    Effect.gen(function* () {
      const { stream } = input(1)
      const received: Array<string> = []
      const exit = yield* stream.pipe(
        archiveToSql({ command: damaged, describeReason: (reason) => `${reason}; nothing was restored` }),
        Stream.decodeText(),
        Stream.runForEach((piece) => Effect.sync(() => received.push(piece))),
        Effect.exit
      )
      expect(received.join("")).toBe("CREATE TABLE t (id int);\n")
      expect(exit).toEqual(
        Exit.fail(
          new RestoreFailed({
            message:
              "pg_restore failed (exit code 1): could not read from input file: end of file; nothing was restored"
          })
        )
      )
    })
  )

  it.live("fails with the input's own error, not with the cut archive pg_restore would then see", () =>
    Effect.gen(function* () {
      const broken = Stream.concat(
        Stream.make(new Uint8Array(1024)),
        Stream.fail(new RestoreFailed({ message: "the object does not decompress" }))
      )
      // This stand-in waits for more input forever: only the stage's kill ends it.
      const exit = yield* broken.pipe(archiveToSql({ command: neverExits }), Stream.runDrain, Effect.exit)
      expect(exit).toEqual(Exit.fail(new RestoreFailed({ message: "the object does not decompress" })))
    })
  )

  it.live("names a pg_restore that cannot start", () =>
    Effect.gen(function* () {
      const { stream } = input(1)
      const error = yield* stream.pipe(archiveToSql({ command: join(dir, "missing") }), Stream.runDrain, Effect.flip)
      expect(error._tag).toBe("ToolUnavailable")
      expect(error.message).toMatch(/^cannot start pg_restore: /u)
    })
  )
})
