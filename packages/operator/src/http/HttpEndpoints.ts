import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { Context, Data, Duration, Effect, FiberSet, Layer, Option, type Scope } from "effect"
import { PrometheusMetrics } from "effect/observability"

// Three fixed GET paths, served with node:http itself: effect's HttpServer for Node brings
// WebSocket, multipart and compression support along, 12 MiB of memory at start (measured:
// RSS after importing it, on top of effect's) for what a probe or a scrape never uses.

/**
 * The operator's HTTP endpoints, as controller-runtime serves them: Prometheus
 * `/metrics` on one address (default `:8080`), and `/healthz` + `/readyz` for the
 * kubelet's probes on another (default `:8081`).
 *
 * - `/healthz` answers 200 as long as the process serves requests (liveness).
 * - `/readyz` answers 200 only when every readiness check passes, else 503 with
 *   the failing checks named, in the API server's `[+]name ok` / `[-]name failed`
 *   format.
 */

/** A listen address; port 0 picks a free port (tests). */
export interface Address {
  /** Interface to bind; all interfaces when absent. */
  readonly host?: string
  readonly port: number
}

/** One readiness check, or several named ones (`{ caches: synced, leader: elected }`). */
export type Readiness = Effect.Effect<boolean> | { readonly [name: string]: Effect.Effect<boolean> }

export interface HttpEndpointsOptions {
  /** Where `/metrics` is served (default port 8080); `false` disables it. */
  readonly metrics?: Address | false
  /** Where `/healthz` and `/readyz` are served (default port 8081); `false` disables them. */
  readonly health?: Address | false
  /** Decides `/readyz`. A check that fails, dies or takes over `checkTimeout` counts as not ready. */
  readonly readiness: Readiness
  /** Default 5 seconds: the kubelet's probe timeout is 1 s by default, so a slow check is a failing one. */
  readonly checkTimeout?: Duration.Input
}

/** The base URLs the endpoints ended up on (`http://127.0.0.1:43127`), for tests and logs. */
export interface HttpEndpointsShape {
  readonly metricsUrl: Option.Option<string>
  readonly healthUrl: Option.Option<string>
}

/**
 * The running endpoints. Build with {@link HttpEndpoints.layer}.
 *
 * @example
 * ```ts
 * declare const cachesSynced: Effect.Effect<boolean>
 * declare const election: LeaderElection.LeaderElectionShape
 * const Http = HttpEndpoints.layer({ readiness: { caches: cachesSynced, leader: election.isLeader } })
 * ```
 */
export class HttpEndpoints extends Context.Service<HttpEndpoints, HttpEndpointsShape>()(
  "@db-backup-operator/operator/HttpEndpoints"
) {
  /** Serves the endpoints for as long as the layer lives. */
  static readonly layer = (options: HttpEndpointsOptions): Layer.Layer<HttpEndpoints, ServeError> => layer(options)
}

/** An endpoint could not listen on its address (the port is taken, the host is not this machine's). */
export class ServeError extends Data.TaggedError("ServeError")<{ readonly message: string; readonly cause: unknown }> {}

/** What a path answers. */
export interface Answer {
  readonly status: number
  readonly body: string
  readonly contentType: string
}

const text = (body: string, status = 200): Answer => ({ status, body, contentType: "text/plain; charset=utf-8" })

interface CheckResult {
  readonly name: string
  readonly ok: boolean
  readonly reason?: string
}

const runCheck = (
  name: string,
  check: Effect.Effect<boolean>,
  timeout: Duration.Duration
): Effect.Effect<CheckResult> =>
  check.pipe(
    Effect.timeoutOption(timeout),
    Effect.map((result): CheckResult => {
      if (Option.isNone(result)) return { name, ok: false, reason: "timed out" }
      return result.value ? { name, ok: true } : { name, ok: false }
    }),
    Effect.catchCause(() => Effect.succeed<CheckResult>({ name, ok: false, reason: "check failed" }))
  )

/**
 * Runs the readiness checks concurrently and renders the `/readyz` response.
 *
 * @example
 * ```ts
 * const response = yield* readyzResponse({ caches: Effect.succeed(true) }, Duration.seconds(5))
 * ```
 */
export const readyzResponse = (readiness: Readiness, timeout: Duration.Duration): Effect.Effect<Answer> => {
  const checks: ReadonlyArray<readonly [string, Effect.Effect<boolean>]> = Effect.isEffect(readiness)
    ? [["ready", readiness]]
    : Object.entries(readiness)
  return Effect.forEach(checks, ([name, check]) => runCheck(name, check, timeout), { concurrency: "unbounded" }).pipe(
    Effect.map((results) => {
      const ready = results.every((result) => result.ok)
      const lines = results.map((result) =>
        result.ok ? `[+]${result.name} ok` : `[-]${result.name} failed: ${result.reason ?? "not ready"}`
      )
      const body = `${lines.join("\n")}\nreadyz check ${ready ? "passed" : "failed"}\n`
      return text(body, ready ? 200 : 503)
    })
  )
}

type Routes = ReadonlyMap<string, Effect.Effect<Answer>>

const metricsRoutes: Routes = new Map([
  [
    "/metrics",
    Effect.map(
      PrometheusMetrics.format(),
      (body): Answer => ({ status: 200, body, contentType: "text/plain; version=0.0.4; charset=utf-8" })
    )
  ]
])

const healthRoutes = (readiness: Readiness, timeout: Duration.Duration): Routes =>
  new Map([
    ["/healthz", Effect.succeed(text("ok\n"))],
    ["/readyz", readyzResponse(readiness, timeout)]
  ])

const urlOf = (address: AddressInfo): string =>
  `http://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}`

/** Listens on `address` and serves `routes` until the scope closes; returns the base URL. */
const listen = (address: Address, routes: Routes, paths: string): Effect.Effect<string, ServeError, Scope.Scope> =>
  Effect.gen(function* () {
    // Answers run as fibers of this scope: closing it interrupts any still running.
    const run = yield* FiberSet.makeRuntime<never, void, never>()
    const respond = (request: IncomingMessage, response: ServerResponse) => {
      const route = request.method === "GET" ? routes.get((request.url ?? "/").split("?", 1)[0] ?? "/") : undefined
      const answer = route ?? Effect.succeed(text("not found\n", 404))
      const fiber = run(
        Effect.map(answer, ({ status, body, contentType }) => {
          response.writeHead(status, { "content-type": contentType, "content-length": Buffer.byteLength(body) })
          response.end(body)
        })
      )
      fiber.addObserver(() => {
        if (!response.headersSent) response.writeHead(503).end()
      })
    }
    const server = createServer(respond)
    const bound = yield* Effect.acquireRelease(
      Effect.callback<AddressInfo, ServeError>((resume) => {
        const failed = (error: Error) =>
          resume(
            Effect.fail(
              new ServeError({
                message: `cannot serve ${paths} on ${address.host ?? ""}:${address.port}: ${error.message}`,
                cause: error
              })
            )
          )
        server.once("error", failed)
        server.listen({ port: address.port, ...(address.host === undefined ? {} : { host: address.host }) }, () => {
          server.removeListener("error", failed)
          resume(Effect.succeed(server.address() as AddressInfo))
        })
      }),
      () =>
        Effect.callback<void>((resume) => {
          server.close(() => resume(Effect.void))
          // Probes and scrapes keep their connections open; they need no goodbye.
          server.closeAllConnections()
        })
    )
    const url = urlOf(bound)
    yield* Effect.logInfo(`serving ${paths} on ${url}`)
    return url
  })

const defaultMetrics: Address = { port: 8080 }
const defaultHealth: Address = { port: 8081 }

/**
 * Serves the endpoints for as long as the layer lives. When metrics and health
 * share a (non-zero) port, one server answers all three paths.
 *
 * @example
 * ```ts
 * const Http = HttpEndpoints.layer({
 *   readiness: { caches: cachesSynced, leader: election.isLeader }
 * })
 * ```
 */
const layer = (options: HttpEndpointsOptions): Layer.Layer<HttpEndpoints, ServeError> =>
  Layer.effect(
    HttpEndpoints,
    Effect.gen(function* () {
      const timeout = Duration.fromInputUnsafe(options.checkTimeout ?? "5 seconds")
      const metrics = options.metrics === undefined ? defaultMetrics : options.metrics
      const health = options.health === undefined ? defaultHealth : options.health
      const probes = healthRoutes(options.readiness, timeout)
      const shared =
        metrics !== false &&
        health !== false &&
        metrics.port !== 0 &&
        metrics.port === health.port &&
        metrics.host === health.host
      if (shared) {
        const url = yield* listen(metrics, new Map([...metricsRoutes, ...probes]), "/metrics, /healthz, /readyz")
        return { metricsUrl: Option.some(url), healthUrl: Option.some(url) }
      }
      const metricsUrl =
        metrics === false ? Option.none<string>() : Option.some(yield* listen(metrics, metricsRoutes, "/metrics"))
      const healthUrl =
        health === false ? Option.none<string>() : Option.some(yield* listen(health, probes, "/healthz, /readyz"))
      return { metricsUrl, healthUrl }
    })
  )
