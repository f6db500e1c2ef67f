import type { KubeClient } from "@db-backup-operator/kube"
import { Effect, Layer, type Scope } from "effect"
import type { HttpServerError } from "effect/http"
import { Caches } from "../cache/Caches.ts"
import type { Timing } from "../cache/Reflector.ts"
import type { Controller } from "../controller/Controller.ts"
import { type Address, HttpEndpoints } from "../http/HttpEndpoints.ts"
import {
  type LeaderElectionConfigError,
  type LeaderElectionOptions,
  type LeadershipLost,
  make as makeLeaderElection
} from "../leader/LeaderElection.ts"

export interface Options<R> {
  readonly controllers: ReadonlyArray<Controller<R>>
  /** Campaign on this Lease and reconcile only while leading. Without it, reconcile at once. */
  readonly leaderElection?: LeaderElectionOptions
  /** `/metrics` (default port 8080); `false` disables it. */
  readonly metrics?: Address | false
  /** `/healthz` and `/readyz` (default port 8081); `false` disables them. */
  readonly health?: Address | false
  /** Reflector timing for every shared cache (tests shrink it). */
  readonly cacheTiming?: Timing
}

export type ManagerError = LeadershipLost | LeaderElectionConfigError | HttpServerError.ServeError

/**
 * Runs controllers the way controller-runtime's Manager does: one shared cache
 * per kind and selector, optional leader election on a Lease (losing it fails
 * with `LeadershipLost`, so the process exits non-zero and a fresh replica takes
 * over), `/metrics`, `/healthz` and `/readyz` (ready = caches synced and, with
 * leader election, elected). Interrupting it (SIGTERM under `NodeRuntime.runMain`)
 * stops intake and lets in-flight reconciles finish within each queue's drain
 * timeout, then releases the Lease.
 *
 * @example
 * ```ts
 * const program = Manager.run({
 *   controllers: [widgets],
 *   leaderElection: { namespace: "widget-system", name: "widget-operator" }
 * }).pipe(Effect.scoped, Effect.provide(Kube.layer({ _tag: "Default" })))
 * NodeRuntime.runMain(program)
 * ```
 */
export const run = <R>(
  options: Options<R>
): Effect.Effect<void, ManagerError, Exclude<R, Caches> | KubeClient | Scope.Scope> =>
  Effect.gen(function* () {
    const caches = yield* Caches.make(options.cacheTiming)
    const election =
      options.leaderElection === undefined ? undefined : yield* makeLeaderElection(options.leaderElection)
    // Vacuously synced before any controller asked for a cache: require at least one.
    const cachesReady = Effect.zipWith(
      caches.isSynced,
      caches.descriptions,
      (synced, started) => synced && (started.length > 0 || options.controllers.length === 0)
    )
    yield* Layer.build(
      HttpEndpoints.layer({
        ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
        ...(options.health === undefined ? {} : { health: options.health }),
        readiness: election === undefined ? { caches: cachesReady } : { caches: cachesReady, leader: election.isLeader }
      })
    )
    const controllers = Effect.forEach(options.controllers, (controller) => Effect.scoped(controller.run), {
      concurrency: "unbounded",
      discard: true
    }).pipe(Effect.provideService(Caches, caches))
    if (election === undefined) {
      yield* controllers
      return
    }
    yield* Effect.logInfo(`waiting to lead ${election.lease} as ${election.identity}`)
    yield* election.whileLeader(Effect.andThen(Effect.logInfo(`leading ${election.lease}`), controllers))
  }).pipe(Effect.annotateLogs({ component: "manager" }))
