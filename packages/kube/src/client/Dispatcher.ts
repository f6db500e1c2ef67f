import { NodeHttpClient } from "@effect/platform-node"
import { Duration, Effect, Layer } from "effect"
import { Agent } from "undici"

/**
 * An undici connection pool that is closed gracefully: in-flight requests may
 * finish (at most `closeTimeout`) before the pool is destroyed. Destroying it at
 * once fails every HTTP/2 stream still open, including responses already received
 * but not read, and such a failure has no listener left: an uncaught exception.
 *
 * @example
 * ```ts
 * const http = NodeHttpClient.layerUndiciNoDispatcher.pipe(Layer.provide(Dispatcher.layer({ connect: { ca } })))
 * ```
 */
export const layer = (
  options: Agent.Options,
  closeTimeout: Duration.Input = Duration.seconds(2)
): Layer.Layer<NodeHttpClient.Dispatcher> =>
  Layer.effect(
    NodeHttpClient.Dispatcher,
    Effect.acquireRelease(
      Effect.sync(() => new Agent(options)),
      (agent) =>
        Effect.promise(() => agent.close()).pipe(
          Effect.timeout(closeTimeout),
          Effect.ignore,
          Effect.andThen(Effect.promise(() => agent.destroy().catch(() => undefined)))
        )
    )
  )
