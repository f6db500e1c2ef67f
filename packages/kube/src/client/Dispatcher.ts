import { Duration, Effect, type Scope } from "effect"
import { Agent, Client, Pool, type Dispatcher as Undici } from "undici"

/** How a connection pool made by {@link make} lets go of its requests. */
export interface Settings {
  /**
   * How long an abort of a request that is on the wire may wait for the
   * request's answer (see {@link abortOnceAnswered}); then it is sent anyway.
   * Default 5 seconds.
   */
  readonly abortGrace?: Duration.Input
  /** How long in-flight requests may finish when the pool is closed; then it is destroyed. Default 2 seconds. */
  readonly closeTimeout?: Duration.Input
}

/**
 * Wraps a request's handler so that an abort that arrives while the request is
 * on the wire and unanswered is held back until the answer's head arrives (the
 * stream is then reset and the caller sees the abort), or until `graceMillis`
 * pass. An abort before the request reaches a connection, or after its answer
 * began, goes through at once.
 *
 * Why: undici (8.13) aborts an HTTP/2 stream with `stream.close()` (NO_ERROR,
 * which node sends only once the stream's request side has finished writing)
 * and then destroys the stream at once, so a request aborted just after it was
 * written is never reset. The server answers it anyway, and node, not knowing
 * the stream any more, makes a new `ClientHttp2Stream` for the answer that no
 * one listens to or reads. When the pool is later destroyed, that stream fails
 * with `ClientDestroyedError` and, having no `error` listener, crashes the
 * process (in tests, such aborts made while other requests were being written
 * also left node spinning at 100% CPU). Once the answer has begun, the request
 * side has long been written, and the reset goes out.
 */
class AbortOnceAnswered implements Undici.DispatchHandler {
  readonly #handler: Undici.DispatchHandler
  readonly #graceMillis: number
  #controller: Undici.DispatchController | undefined
  #facade: Undici.DispatchController | undefined
  #onTheWire = false
  #answered = false
  #held: Error | undefined
  #timer: ReturnType<typeof setTimeout> | undefined

  constructor(handler: Undici.DispatchHandler, graceMillis: number) {
    this.#handler = handler
    this.#graceMillis = graceMillis
  }

  #abort(controller: Undici.DispatchController, reason: Error): void {
    if (!this.#onTheWire || this.#answered || controller.aborted) {
      controller.abort(reason)
      return
    }
    if (this.#held !== undefined) return
    this.#held = reason
    this.#timer = setTimeout(() => controller.abort(reason), this.#graceMillis)
    // The request itself keeps the connection (and the process) busy; this timer need not.
    this.#timer.unref()
  }

  #settle(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
  }

  onRequestStart(controller: Undici.DispatchController, context: unknown): void {
    this.#controller = controller
    const abort = (reason: Error) => this.#abort(controller, reason)
    const held = () => this.#held
    const facade: Undici.DispatchController = {
      get aborted() {
        return controller.aborted || held() !== undefined
      },
      get paused() {
        return controller.paused
      },
      get reason() {
        return controller.reason ?? held() ?? null
      },
      get rawHeaders() {
        return controller.rawHeaders ?? null
      },
      get rawTrailers() {
        return controller.rawTrailers ?? null
      },
      abort,
      pause: () => controller.pause(),
      resume: () => controller.resume()
    }
    this.#facade = facade
    // An abort from inside this call (a signal that fired while the request was
    // queued) goes through: undici opens the stream only after this returns.
    this.#handler.onRequestStart?.(facade, context)
    this.#onTheWire = true
  }

  onRequestUpgrade(
    controller: Undici.DispatchController,
    statusCode: number,
    headers: Parameters<NonNullable<Undici.DispatchHandler["onRequestUpgrade"]>>[2],
    socket: Parameters<NonNullable<Undici.DispatchHandler["onRequestUpgrade"]>>[3]
  ): void {
    this.#answered = true
    this.#settle()
    this.#handler.onRequestUpgrade?.(this.#facade ?? controller, statusCode, headers, socket)
  }

  onResponseStarted(): void {
    this.#handler.onResponseStarted?.()
  }

  onResponseStart(
    controller: Undici.DispatchController,
    statusCode: number,
    headers: Parameters<NonNullable<Undici.DispatchHandler["onResponseStart"]>>[2],
    statusMessage?: string
  ): void {
    // 1xx heads are interim: the answer is still to come.
    if (statusCode >= 200) {
      this.#answered = true
      const held = this.#held
      if (held !== undefined) {
        this.#settle()
        const real = this.#controller ?? controller
        // The caller hears of the abort through onResponseError, as for any abort.
        real.abort(held)
        return
      }
    }
    this.#handler.onResponseStart?.(this.#facade ?? controller, statusCode, headers, statusMessage)
  }

  onResponseData(controller: Undici.DispatchController, chunk: Buffer): void {
    this.#handler.onResponseData?.(this.#facade ?? controller, chunk)
  }

  onResponseEnd(
    controller: Undici.DispatchController,
    trailers: Parameters<NonNullable<Undici.DispatchHandler["onResponseEnd"]>>[1]
  ): void {
    this.#settle()
    this.#handler.onResponseEnd?.(this.#facade ?? controller, trailers)
  }

  onResponseError(controller: Undici.DispatchController, error: Error): void {
    this.#settle()
    this.#handler.onResponseError?.(this.#facade ?? controller, error)
  }

  onBodySent(chunk: Buffer): void {
    this.#handler.onBodySent?.(chunk)
  }

  onRequestSent(): void {
    this.#handler.onRequestSent?.()
  }
}

const isDestroyed = (dispatcher: Undici): boolean => "destroyed" in dispatcher && dispatcher.destroyed === true

/**
 * An undici interceptor that never aborts a request between writing it and
 * the start of its answer: such an abort waits for the answer's head, or for
 * `grace`. What that avoids is told at `AbortOnceAnswered`. Upgrades (which
 * hand their socket over) are left alone.
 *
 * @example
 * ```ts
 * import { Dispatcher } from "@db-backup-operator/kube/undici"
 * import { Agent } from "undici"
 * const dispatcher = new Agent().compose(Dispatcher.abortOnceAnswered("5 seconds"))
 * ```
 */
export const abortOnceAnswered = (grace: Duration.Input): Undici.DispatcherComposeInterceptor => {
  const graceMillis = Duration.toMillis(Duration.fromInputUnsafe(grace))
  return (dispatch) => (options, handler) =>
    options.upgrade ? dispatch(options, handler) : dispatch(options, new AbortOnceAnswered(handler, graceMillis))
}

/**
 * An undici connection pool (an `Agent`) for the scope: requests aborted on
 * the wire wait for their answer ({@link abortOnceAnswered}), and on release
 * in-flight requests may finish (at most `closeTimeout`) before every
 * connection is destroyed. The Agent forgets its per-origin pools once
 * `close()` starts, so a later `Agent.destroy()` would reach none of them:
 * they are tracked here and destroyed themselves.
 *
 * @example
 * ```ts
 * import { Dispatcher } from "@db-backup-operator/kube/undici"
 * declare const ca: string
 * const dispatcher = yield* Dispatcher.make({ connect: { ca } })
 * ```
 */
export const make = (options: Agent.Options = {}, settings: Settings = {}): Effect.Effect<Undici, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const pools = new Set<Undici>()
      const factory = (origin: string | URL, poolOptions: Pool.Options): Undici => {
        for (const pool of pools) if (isDestroyed(pool)) pools.delete(pool)
        const pool =
          options.factory !== undefined
            ? options.factory(origin, poolOptions)
            : poolOptions.connections === 1
              ? new Client(origin, poolOptions)
              : new Pool(origin, poolOptions)
        pools.add(pool)
        return pool
      }
      return { agent: new Agent({ ...options, factory }), pools }
    }),
    ({ agent, pools }) =>
      Effect.promise(() => agent.close().catch(() => undefined)).pipe(
        Effect.timeout(settings.closeTimeout ?? Duration.seconds(2)),
        Effect.ignore,
        Effect.andThen(
          Effect.promise(() =>
            Promise.all(
              [agent, ...pools].map((dispatcher) =>
                isDestroyed(dispatcher) ? undefined : dispatcher.destroy().catch(() => undefined)
              )
            )
          )
        )
      )
  ).pipe(Effect.map(({ agent }) => agent.compose(abortOnceAnswered(settings.abortGrace ?? Duration.seconds(5)))))
