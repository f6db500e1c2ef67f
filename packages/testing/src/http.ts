import { Dispatcher } from "@db-backup-operator/kube/undici"
import { NodeHttpClient } from "@effect/platform-node"
import { Effect, type Scope } from "effect"
import { HttpClient } from "effect/http"
import { NotReady } from "./poll.ts"

/** TLS material for {@link tlsHttpClient}: trusted CA and an optional client certificate. */
export interface TlsOptions {
  readonly ca: string
  readonly cert?: string | undefined
  readonly key?: string | undefined
}

/**
 * An undici-backed `HttpClient` trusting `ca` and presenting a client
 * certificate, with its own connection pool closed with the scope. Built
 * directly rather than as a layer, so it never shares (layer memoization) a
 * client configured for something else.
 *
 * @example
 * ```ts
 * declare const caPem: string, clientCertPem: string, clientKeyPem: string
 * const client = yield* tlsHttpClient({ ca: caPem, cert: clientCertPem, key: clientKeyPem })
 * ```
 */
export const tlsHttpClient = (tls: TlsOptions): Effect.Effect<HttpClient.HttpClient, never, Scope.Scope> =>
  Effect.gen(function* () {
    // The kube client's pool: a probe cut off by its timeout is an abort of an HTTP/2 request
    // that may still be unanswered, which a plain undici Agent turns into a crash on release.
    const dispatcher = yield* Dispatcher.make({
      connect: {
        ca: tls.ca,
        ...(tls.cert === undefined ? {} : { cert: tls.cert }),
        ...(tls.key === undefined ? {} : { key: tls.key })
      }
    })
    return yield* NodeHttpClient.makeUndici.pipe(Effect.provideService(NodeHttpClient.Dispatcher, dispatcher))
  })

/**
 * A readiness probe: `GET url` answering 2xx within 2 seconds, else {@link NotReady}
 * with the status or error (and the start of the body).
 *
 * @example
 * ```ts
 * import type { HttpClient } from "effect/http"
 * import { waitUntilReady } from "./poll.ts"
 * declare const client: HttpClient.HttpClient
 * declare const server: string
 * const onTimeout = (why: string) => new Error(`not ready: ${why}`)
 * yield* waitUntilReady(probeOk(client, `${server}/readyz`), { timeout: "60 seconds", onTimeout })
 * ```
 */
export const probeOk = (client: HttpClient.HttpClient, url: string): Effect.Effect<string, NotReady> =>
  // Scoped: a probe cut off by its timeout aborts its request when the probe ends, not
  // whenever its response is garbage-collected.
  HttpClient.withScope(client)
    .get(url)
    .pipe(
      Effect.flatMap((response) =>
        Effect.flatMap(response.text, (body) =>
          response.status >= 200 && response.status < 300
            ? Effect.succeed(body)
            : Effect.fail(new NotReady({ reason: `GET ${url}: ${response.status} ${body.slice(0, 300)}` }))
        )
      ),
      Effect.timeoutOrElse({
        duration: "2 seconds",
        orElse: () => Effect.fail(new NotReady({ reason: `GET ${url}: no answer within 2 seconds` }))
      }),
      Effect.catchTag("HttpClientError", (e) => Effect.fail(new NotReady({ reason: `GET ${url}: ${e.message}` }))),
      Effect.scoped
    )
