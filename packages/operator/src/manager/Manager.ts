import type { KubeClient } from "@db-backup-operator/kube"
import { Effect, Layer } from "effect"
import { Caches } from "../cache/Caches.ts"
import type { Timing } from "../cache/Reflector.ts"
import { type Controller, HardStop } from "../controller/Controller.ts"
import { type Address, HttpEndpoints, type ServeError } from "../http/HttpEndpoints.ts"
import {
  type LeaderElectionConfigError,
  type LeaderElectionOptions,
  type LeadershipLost,
  make as makeLeaderElection
} from "../leader/LeaderElection.ts"

export interface Options<R> {
  readonly controllers: ReadonlyArray<Controller<R>>
  /**
   * The namespaces the Manager watches (default: all). Every cache of a
   * namespaced kind, the controllers' primaries as well as their owned and
   * watched kinds, covers exactly these, with one watch per namespace; the
   * operator then needs list and watch there only.
   */
  readonly namespaces?: ReadonlyArray<string> | undefined
  /** Campaign on this Lease and reconcile only while leading. Without it, reconcile at once. */
  readonly leaderElection?: LeaderElectionOptions
  /** `/metrics` (default port 8080); `false` disables it. */
  readonly metrics?: Address | false
  /** `/healthz` and `/readyz` (default port 8081); `false` disables them. */
  readonly health?: Address | false
  /** Reflector timing for every shared cache (tests shrink it). */
  readonly cacheTiming?: Timing
}

export type ManagerError = LeadershipLost | LeaderElectionConfigError | ServeError

/**
 * Runs controllers the way controller-runtime's Manager does: one shared cache
 * per kind and selector over the Manager's namespaces, optional leader election on a Lease, `/metrics`,
 * `/healthz` and `/readyz` (ready = caches synced; with leader election, a
 * standby is ready too, as in controller-runtime, so rolling updates and
 * disruption budgets work). Everything it starts lives as long as the returned Effect.
 *
 * - Interrupting it (SIGTERM under {@link runMain}) stops intake and lets
 *   in-flight reconciles finish within each queue's drain timeout (default 30 s),
 *   then releases the Lease so a standby takes over at once.
 * - Losing the Lease interrupts in-flight reconciles at once (another replica may
 *   already be acting) and fails with `LeadershipLost`, so the process exits
 *   non-zero and is restarted as a fresh candidate.
 *
 * Pass just the controllers for the defaults (`:8080` metrics, `:8081` probes,
 * no leader election).
 *
 * @example
 * ```ts
 * declare const widgets: Controller.Controller<never>
 * const program = Manager.run({
 *   controllers: [widgets],
 *   namespaces: ["team-a", "team-b"],
 *   leaderElection: { namespace: "widget-system", name: "widget-operator" }
 * }).pipe(Effect.provide(KubeClient.layer({ _tag: "Default" })))
 * Manager.runMain(program)
 * ```
 */
export const run = <R>(
  options: Options<R> | ReadonlyArray<Controller<R>>
): Effect.Effect<void, ManagerError, Exclude<R, Caches> | KubeClient> => {
  const { controllers, namespaces, leaderElection, metrics, health, cacheTiming }: Options<R> = isControllers(options)
    ? { controllers: options }
    : options
  return Effect.gen(function* () {
    // Names label every metric and log line: two controllers must not share one (as controller-runtime).
    const duplicate = controllers.find(
      (controller, i) => controllers.findIndex((c) => c.name === controller.name) !== i
    )
    if (duplicate !== undefined) return yield* Effect.die(new Error(`two controllers are named "${duplicate.name}"`))
    const caches = yield* Caches.make({
      ...(namespaces === undefined ? {} : { namespaces }),
      ...(cacheTiming === undefined ? {} : { timing: cacheTiming })
    })
    const election = leaderElection === undefined ? undefined : yield* makeLeaderElection(leaderElection)
    // Vacuously synced before any controller asked for a cache: require at least one.
    const cachesReady = Effect.zipWith(
      caches.isSynced,
      caches.descriptions,
      (synced, started) => synced && (started.length > 0 || controllers.length === 0)
    )
    yield* Layer.build(
      HttpEndpoints.layer({
        ...(metrics === undefined ? {} : { metrics }),
        ...(health === undefined ? {} : { health }),
        // A standby is ready: it serves its purpose by waiting. Were it not, a Deployment's rolling
        // update could never make progress (the new Pod starts as a standby) and a PodDisruptionBudget
        // would count every standby as disrupted. The leader is ready once its caches have synced.
        readiness: {
          caches:
            election === undefined
              ? cachesReady
              : Effect.flatMap(election.isLeader, (leading) => (leading ? cachesReady : Effect.succeed(true)))
        }
      })
    )
    const names = controllers.map((controller) => controller.name).join(", ")
    const runAll = Effect.forEach(controllers, (controller) => Effect.scoped(controller.run), {
      concurrency: "unbounded",
      discard: true
    }).pipe(
      Effect.provideService(Caches, caches),
      Effect.onInterrupt(() => Effect.logInfo(`stopped controllers ${names}`))
    )
    if (election === undefined) {
      yield* Effect.logInfo(`starting controllers ${names}`)
      yield* runAll
      return
    }
    yield* Effect.logInfo(`waiting to lead ${election.lease} as ${election.identity}`)
    // From the moment leadership is gone, a reconcile still running could race the new
    // leader: interrupt them at once rather than draining.
    const hardStop = Effect.asVoid(election.awaitLoss)
    yield* election.whileLeader(
      Effect.andThen(
        Effect.logInfo(`leading ${election.lease}: starting controllers ${names}`),
        runAll.pipe(Effect.provideService(HardStop, hardStop))
      )
    )
  }).pipe(
    Effect.scoped,
    Effect.onInterrupt(() => Effect.logInfo("shut down")),
    Effect.annotateLogs({ component: "manager" })
  )
}

const isControllers = <R>(
  options: Options<R> | ReadonlyArray<Controller<R>>
): options is ReadonlyArray<Controller<R>> => Array.isArray(options)
