import { createServer, type Server } from "node:net"
import { Effect, Schema } from "effect"

/** No free TCP port could be reserved on the loopback interface. */
export class PortError extends Schema.TaggedError<PortError>()("PortError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

const listen = Effect.callback<Server, PortError>((resume) => {
  const server = createServer()
  server.unref()
  server.once("error", (cause) => resume(Effect.fail(new PortError({ message: "cannot reserve a port", cause }))))
  server.listen({ host: "127.0.0.1", port: 0, exclusive: true }, () => resume(Effect.succeed(server)))
})

const close = (server: Server) =>
  Effect.callback<void>((resume) => {
    server.close(() => resume(Effect.void))
  })

// Held open until every port of one call is known, so a call never returns the same port twice.
const reserve = Effect.acquireRelease(listen, close).pipe(
  Effect.flatMap((server) => {
    const address = server.address()
    return typeof address === "object" && address !== null
      ? Effect.succeed(address.port)
      : Effect.fail(new PortError({ message: "listener has no TCP port" }))
  })
)

/**
 * `count` distinct TCP ports on 127.0.0.1 that were free a moment ago: the kernel
 * picks them for throwaway listeners, closed again before the ports are returned.
 *
 * @example
 * ```ts
 * const [clientPort, peerPort] = yield* freePorts(2)
 * ```
 */
export const freePorts = (count: number): Effect.Effect<ReadonlyArray<number>, PortError> =>
  Effect.scoped(Effect.forEach(Array.from({ length: count }), () => reserve))

/**
 * One free TCP port on 127.0.0.1 (see {@link freePorts}).
 *
 * @example
 * ```ts
 * const port = yield* freePort
 * ```
 */
export const freePort: Effect.Effect<number, PortError> = freePorts(1).pipe(
  Effect.flatMap((ports) =>
    ports[0] === undefined ? Effect.fail(new PortError({ message: "no port reserved" })) : Effect.succeed(ports[0])
  )
)
