import { createServer, type Server, type Socket } from "node:net"
import { Context, Effect, Layer, Schema } from "effect"

/**
 * The attacker's PostgreSQL server, for tests that prove a client does not
 * hand it the password: it speaks just enough of the protocol to ask for the
 * password in cleartext, which is what a server impersonating the real one
 * (a wrong `dbHost`, or a man in the middle) does to steal it.
 *
 * Per connection: answers every `SSLRequest` and `GSSENCRequest` with `N` (no
 * TLS, no GSS encryption), reads the `StartupMessage`, sends
 * `AuthenticationCleartextPassword`, records the `PasswordMessage` it gets,
 * then sends a FATAL `ErrorResponse` and closes.
 */

/** The fake server could not listen. */
export class FakePostgresError extends Schema.TaggedError<FakePostgresError>()("FakePostgresError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

/** What a client sent in its StartupMessage. */
export interface FakePostgresStartup {
  readonly user: string | undefined
  readonly database: string | undefined
  readonly applicationName: string | undefined
}

/** A listening fake server and what it has seen so far. */
export interface FakePostgresShape {
  readonly host: string
  readonly port: number
  /** Every password received, in order (the cleartext a real client must never send it). */
  readonly passwords: Effect.Effect<ReadonlyArray<string>>
  /** TCP connections accepted so far. */
  readonly connections: Effect.Effect<number>
  /** `SSLRequest`s answered with `N` so far. */
  readonly sslRequests: Effect.Effect<number>
  /** StartupMessages received so far (a client that gave up after the `N` sends none). */
  readonly startups: Effect.Effect<ReadonlyArray<FakePostgresStartup>>
}

const host = "127.0.0.1"
const sslRequestCode = 80877103
const gssEncRequestCode = 80877104
const cancelRequestCode = 80877102
const protocol3 = 196608
// A startup packet is tiny; anything larger is not a PostgreSQL client.
const maxPacket = 64 * 1024

/** A backend message: type byte, Int32 length (itself included), body. */
const message = (type: string, body: Buffer): Buffer => {
  const header = Buffer.alloc(5)
  header.write(type, 0, "latin1")
  header.writeInt32BE(body.length + 4, 1)
  return Buffer.concat([header, body])
}

const int32 = (value: number): Buffer => {
  const buffer = Buffer.alloc(4)
  buffer.writeInt32BE(value, 0)
  return buffer
}

const cleartextPasswordRequest = message("R", int32(3))

const errorResponse = (text: string): Buffer =>
  message(
    "E",
    Buffer.concat([
      ...[
        ["S", "FATAL"],
        ["V", "FATAL"],
        ["C", "28P01"],
        ["M", text]
      ].map(([field, value]) => Buffer.from(`${field}${value}\0`, "utf8")),
      Buffer.from([0])
    ])
  )

/** NUL-terminated key/value pairs of a StartupMessage body. */
const startupParameters = (body: Buffer): Map<string, string> => {
  const parts = body.toString("utf8").split("\0")
  const parameters = new Map<string, string>()
  for (let i = 0; i + 1 < parts.length && parts[i] !== ""; i += 2) parameters.set(parts[i] ?? "", parts[i + 1] ?? "")
  return parameters
}

interface Recorded {
  passwords: Array<string>
  connections: number
  sslRequests: number
  startups: Array<FakePostgresStartup>
}

// One client: a small state machine over the bytes received so far.
const serve = (socket: Socket, recorded: Recorded): void => {
  let buffered = Buffer.alloc(0)
  let phase: "startup" | "password" | "done" = "startup"
  const finish = (text: string) => {
    phase = "done"
    socket.end(errorResponse(text))
  }
  socket.on("error", () => socket.destroy())
  socket.on("data", (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk])
    for (;;) {
      if (phase === "done") return
      if (phase === "startup") {
        // Untyped packets: Int32 length, Int32 code, rest.
        if (buffered.length < 8) return
        const length = buffered.readInt32BE(0)
        if (length < 8 || length > maxPacket) return finish("invalid startup packet length")
        if (buffered.length < length) return
        const code = buffered.readInt32BE(4)
        const body = buffered.subarray(8, length)
        buffered = buffered.subarray(length)
        if (code === sslRequestCode || code === gssEncRequestCode) {
          if (code === sslRequestCode) recorded.sslRequests += 1
          socket.write("N")
        } else if (code === cancelRequestCode) {
          socket.end()
          phase = "done"
        } else if (code === protocol3) {
          const parameters = startupParameters(body)
          recorded.startups.push({
            user: parameters.get("user"),
            database: parameters.get("database"),
            applicationName: parameters.get("application_name")
          })
          socket.write(cleartextPasswordRequest)
          phase = "password"
        } else {
          return finish("unsupported frontend protocol")
        }
      } else {
        // Typed messages: type byte, Int32 length, body.
        if (buffered.length < 5) return
        const type = String.fromCharCode(buffered[0] ?? 0)
        const length = buffered.readInt32BE(1)
        if (length < 4 || length > maxPacket) return finish("invalid message length")
        if (buffered.length < length + 1) return
        const body = buffered.subarray(5, length + 1)
        buffered = buffered.subarray(length + 1)
        if (type === "p") {
          const end = body.indexOf(0)
          recorded.passwords.push(body.subarray(0, end < 0 ? body.length : end).toString("utf8"))
          const user = recorded.startups.at(-1)?.user ?? ""
          return finish(`password authentication failed for user "${user}"`)
        }
        if (type === "X") {
          socket.end()
          phase = "done"
          return
        }
        return finish(`expected a password message, got "${type}"`)
      }
    }
  })
}

const listen = (recorded: Recorded, sockets: Set<Socket>) =>
  Effect.callback<Server, FakePostgresError>((resume) => {
    const server = createServer((socket) => {
      recorded.connections += 1
      sockets.add(socket)
      socket.once("close", () => sockets.delete(socket))
      serve(socket, recorded)
    })
    server.once("error", (cause) =>
      resume(Effect.fail(new FakePostgresError({ message: `cannot listen on ${host}: ${cause.message}`, cause })))
    )
    // Port 0: the kernel picks a free port atomically, so no other listener can take it meanwhile.
    server.listen({ host, port: 0, exclusive: true }, () => resume(Effect.succeed(server)))
  })

const close = (server: Server, sockets: Set<Socket>) =>
  Effect.callback<void>((resume) => {
    for (const socket of sockets) socket.destroy()
    server.close(() => resume(Effect.void))
  })

const make = Effect.gen(function* () {
  const recorded: Recorded = { passwords: [], connections: 0, sslRequests: 0, startups: [] }
  const sockets = new Set<Socket>()
  const server = yield* Effect.acquireRelease(listen(recorded, sockets), (server) => close(server, sockets))
  const address = server.address()
  if (typeof address !== "object" || address === null) {
    return yield* new FakePostgresError({ message: "the fake server has no TCP address" })
  }
  return FakePostgres.of({
    host,
    port: address.port,
    passwords: Effect.sync(() => [...recorded.passwords]),
    connections: Effect.sync(() => recorded.connections),
    sslRequests: Effect.sync(() => recorded.sslRequests),
    startups: Effect.sync(() => [...recorded.startups])
  })
})

/**
 * A fake PostgreSQL server on 127.0.0.1 (a free port) that declines TLS and
 * asks every client for its password in cleartext, recording what it gets.
 * Closed, with every connection, when the layer is released.
 *
 * @example
 * ```ts
 * const program = Effect.gen(function* () {
 *   const fake = yield* FakePostgres
 *   // ...point a client with sslmode=require at fake.host:fake.port...
 *   assert.deepStrictEqual(yield* fake.passwords, [])   // it never got the password
 * }).pipe(Effect.provide(FakePostgres.layer))
 * ```
 */
export class FakePostgres extends Context.Service<FakePostgres, FakePostgresShape>()(
  "@db-backup-operator/testing/FakePostgres"
) {
  static readonly layer: Layer.Layer<FakePostgres, FakePostgresError> = Layer.effect(FakePostgres, make)
}
