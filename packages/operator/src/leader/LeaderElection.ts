import { randomUUID } from "node:crypto"
import { hostname } from "node:os"
import type { KubeClient } from "@db-backup-operator/kube"
import {
  Clock,
  Context,
  Deferred,
  Duration,
  Effect,
  Layer,
  Metric,
  Option,
  Random,
  Ref,
  Schedule,
  Schema,
  type Scope,
  Stream,
  SubscriptionRef
} from "effect"
import { formatMicroTime } from "../helpers/time.ts"
import * as LeaseLock from "./LeaseLock.ts"

/**
 * Leader election on a `coordination.k8s.io/v1` Lease with client-go's algorithm
 * and defaults (15 s lease, 10 s renew deadline, 2 s retry period):
 *
 * - a candidate takes the Lease when it is free, or when it has not changed for a
 *   whole lease duration *by the candidate's own clock* (remote timestamps are
 *   never compared with local time, so clock skew between nodes does not matter);
 * - every write carries the resourceVersion it was computed from: two candidates
 *   can never both win;
 * - the leader renews every retry period; if it cannot renew for the renew
 *   deadline (shorter than the lease duration, so it stops before anyone else may
 *   start), leadership is lost for good: effects run with `whileLeader` are
 *   interrupted and fail with {@link LeadershipLost}, and the process is expected
 *   to exit (as controller-runtime's manager does);
 * - closing the elector's scope releases the Lease (empty holder, 1 s duration) so
 *   a successor takes over at its next retry instead of after a lease duration.
 */

/** Leadership ended: lost (renewals failed) or given up (the elector stopped). */
export class LeadershipLost extends Schema.TaggedError<LeadershipLost>()("LeadershipLost", {
  message: Schema.String,
  lease: Schema.String,
  identity: Schema.String
}) {}

/** The timings are inconsistent (as client-go, which panics on the same checks). */
export class LeaderElectionConfigError extends Schema.TaggedError<LeaderElectionConfigError>()(
  "LeaderElectionConfigError",
  { message: Schema.String }
) {}

export interface LeaderElectionOptions {
  /** Namespace of the Lease. */
  readonly namespace: string
  /** Name of the Lease; also the `name` label of `leader_election_master_status`. */
  readonly name: string
  /** This candidate; default `<hostname>_<random uuid>` (unique per process, as controller-runtime). */
  readonly identity?: string
  /** How long a Lease stays valid without renewal (default 15 seconds). */
  readonly leaseDuration?: Duration.Input
  /** How long the leader keeps retrying a failed renewal before giving up (default 10 seconds). */
  readonly renewDeadline?: Duration.Input
  /** Time between attempts to acquire or renew (default 2 seconds). */
  readonly retryPeriod?: Duration.Input
  /**
   * Acquire attempts wait `retryPeriod * (1 + random * jitter)` (default 0.2). client-go
   * uses 1.2; a smaller jitter lets a successor take over a released Lease sooner.
   */
  readonly jitter?: number
  /** Release the Lease when the scope closes (default true). false simulates a crash. */
  readonly releaseOnCancel?: boolean
}

/**
 * @example
 * ```ts
 * declare const runControllers: Effect.Effect<void>
 * const program = Effect.gen(function* () {
 *   const election = yield* LeaderElection.LeaderElection
 *   yield* election.whileLeader(runControllers)   // fails with LeadershipLost if the Lease is lost
 * })
 * ```
 */
export interface LeaderElectionShape {
  readonly identity: string
  /** `namespace/name` of the Lease. */
  readonly lease: string
  /** Whether this process leads right now. */
  readonly isLeader: Effect.Effect<boolean>
  /** The current leadership, then every change. */
  readonly changes: Stream.Stream<boolean>
  /** The holder this candidate last observed (itself when leading). */
  readonly leader: Effect.Effect<Option.Option<string>>
  /** Waits until this process leads; fails if the elector stopped first. */
  readonly awaitLeadership: Effect.Effect<void, LeadershipLost>
  /** Completes with the reason once leadership has ended (lost, or the elector stopped). */
  readonly awaitLoss: Effect.Effect<LeadershipLost>
  /**
   * Waits for leadership, then runs `effect`; if leadership ends first, `effect` is
   * interrupted and the result is `LeadershipLost`.
   */
  readonly whileLeader: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | LeadershipLost, R>
}

/** controller-runtime's (client-go's) metric: 1 while this process leads the named lease. */
export const masterStatus = Metric.gauge("leader_election_master_status", {
  description:
    "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease. Please make sure to group by name."
})

/** `<hostname>_<uuid>`: distinct for every process, readable in `kubectl get lease`. */
export const defaultIdentity = (): string => `${hostname()}_${randomUUID()}`

/**
 * The elector of this process. {@link LeaderElection.layer} starts it on a Lease;
 * the campaign runs as long as the layer.
 *
 * @example
 * ```ts
 * const Election = LeaderElection.layer({ namespace: "backup-system", name: "backup-operator" })
 * const program = LeaderElection.use((election) => election.whileLeader(runControllers))
 * program.pipe(Effect.provide(Election), Effect.provide(KubeLive))
 * ```
 */
export class LeaderElection extends Context.Service<LeaderElection, LeaderElectionShape>()(
  "@db-backup-operator/operator/LeaderElection"
) {
  /** `leader_election_master_status{name}`: 1 while this process leads the named Lease, else 0. */
  static readonly masterStatus = masterStatus

  /** `<hostname>_<uuid>`, the default identity. */
  static readonly defaultIdentity = defaultIdentity

  /** Campaigns on a real Lease while the layer lives; releases it on teardown. */
  static readonly layer = (
    options: LeaderElectionOptions
  ): Layer.Layer<LeaderElection, LeaderElectionConfigError, KubeClient> => Layer.effect(LeaderElection, make(options))

  /** Campaigns on a real Lease in the current Scope. */
  static readonly make = (
    options: LeaderElectionOptions
  ): Effect.Effect<LeaderElectionShape, LeaderElectionConfigError, KubeClient | Scope.Scope> => make(options)

  /** Campaigns on any {@link LeaseLock.LeaseLock} (e.g. `LeaseLock.memory()` in tests) in the current Scope. */
  static readonly makeWithLock = (
    options: LeaderElectionOptions,
    lock: LeaseLock.LeaseLock
  ): Effect.Effect<LeaderElectionShape, LeaderElectionConfigError, Scope.Scope> => makeWithLock(options, lock)
}

interface Observed {
  readonly versioned: LeaseLock.VersionedRecord
  /** Our clock when the record last changed (or we wrote it): the start of its validity. */
  readonly at: number
}

interface Timing {
  readonly leaseDuration: Duration.Duration
  readonly renewDeadline: Duration.Duration
  readonly retryPeriod: Duration.Duration
  readonly leaseDurationSeconds: number
  readonly jitter: number
}

const timingOf = (options: LeaderElectionOptions): Effect.Effect<Timing, LeaderElectionConfigError> => {
  const leaseDuration = Duration.fromInputUnsafe(options.leaseDuration ?? "15 seconds")
  const renewDeadline = Duration.fromInputUnsafe(options.renewDeadline ?? "10 seconds")
  const retryPeriod = Duration.fromInputUnsafe(options.retryPeriod ?? "2 seconds")
  const jitter = options.jitter ?? 0.2
  const leaseDurationSeconds = Math.floor(Duration.toSeconds(leaseDuration))
  const fail = (message: string) => Effect.fail(new LeaderElectionConfigError({ message }))
  if (leaseDurationSeconds < 1) return fail("leaseDuration must be at least 1 second")
  if (!Duration.isGreaterThan(leaseDuration, renewDeadline))
    return fail("leaseDuration must be greater than renewDeadline")
  if (Duration.toMillis(renewDeadline) <= Duration.toMillis(retryPeriod) * 1.2) {
    return fail("renewDeadline must be greater than 1.2 x retryPeriod")
  }
  if (Duration.toMillis(retryPeriod) <= 0) return fail("retryPeriod must be positive")
  if (jitter < 0) return fail("jitter must not be negative")
  return Effect.succeed({ leaseDuration, renewDeadline, retryPeriod, leaseDurationSeconds, jitter })
}

/**
 * Starts campaigning on `lock` in the current Scope and returns the elector. Use
 * {@link make} for a real Lease; this one is for a custom or in-memory lock.
 *
 * @example
 * ```ts
 * const lock = yield* LeaseLock.memory()
 * const election = yield* LeaderElection.makeWithLock({ namespace: "ns", name: "lease" }, lock)
 * yield* election.awaitLeadership
 * ```
 */
export const makeWithLock = Effect.fn("LeaderElection.make")(function* (
  options: LeaderElectionOptions,
  lock: LeaseLock.LeaseLock
): Effect.fn.Return<LeaderElectionShape, LeaderElectionConfigError, Scope.Scope> {
  const timing = yield* timingOf(options)
  const identity = options.identity ?? defaultIdentity()
  const releaseOnCancel = options.releaseOnCancel ?? true
  const gauge = Metric.withAttributes(masterStatus, { name: options.name })
  const leading = yield* SubscriptionRef.make(false)
  const observedRef = yield* Ref.make<Option.Option<Observed>>(Option.none())
  const ended = yield* Deferred.make<LeadershipLost>()
  const annotate = Effect.annotateLogs({ lease: lock.description, identity })

  const holds = (observed: Option.Option<Observed>): observed is Option.Some<Observed> =>
    Option.isSome(observed) && observed.value.versioned.record.holderIdentity === identity
  const isValid = (observed: Observed, now: number): boolean =>
    observed.at + observed.versioned.record.leaseDurationSeconds * 1000 > now
  const observe = (versioned: LeaseLock.VersionedRecord, at: number) =>
    Ref.set(observedRef, Option.some({ versioned, at }))
  // Our clock when an attempt that left us holding the Lease began: the renew deadline runs from there.
  const renewedAt = yield* Ref.make(0)
  const hold = (versioned: LeaseLock.VersionedRecord, at: number) =>
    Effect.andThen(observe(versioned, at), Ref.set(renewedAt, at))

  const desired = (now: number): LeaseLock.LeaderElectionRecord => ({
    holderIdentity: identity,
    leaseDurationSeconds: timing.leaseDurationSeconds,
    acquireTime: formatMicroTime(now),
    renewTime: formatMicroTime(now),
    leaseTransitions: 0
  })

  /** One attempt, as client-go's `tryAcquireOrRenew`: true when we hold the Lease afterwards. */
  const tryAcquireOrRenew: Effect.Effect<boolean> = Effect.gen(function* () {
    const now = yield* Clock.currentTimeMillis
    const record = desired(now)
    const before = yield* Ref.get(observedRef)

    // 1. Fast path: we lead and our view is fresh, so update on top of it directly.
    if (holds(before) && isValid(before.value, now)) {
      const previous = before.value.versioned
      const renewed = yield* Effect.result(
        lock.update(
          { ...record, acquireTime: previous.record.acquireTime, leaseTransitions: previous.record.leaseTransitions },
          previous.resourceVersion
        )
      )
      if (renewed._tag === "Success") {
        yield* hold(renewed.success, now)
        return true
      }
      yield* Effect.logDebug("optimistic renewal failed, reading the Lease", renewed.failure)
    }

    // 2. Read the record, or create the Lease.
    const read = yield* Effect.result(lock.get)
    if (read._tag === "Failure") {
      yield* Effect.logWarning("cannot read the Lease", read.failure)
      return false
    }
    if (Option.isNone(read.success)) {
      const created = yield* Effect.result(lock.create(record))
      if (created._tag === "Failure") {
        yield* Effect.logDebug("cannot create the Lease", created.failure)
        return false
      }
      yield* hold(created.success, now)
      return true
    }
    const current = read.success.value

    // 3. Its validity runs from when WE saw it change, whatever its renewTime says.
    const seen = yield* Ref.get(observedRef)
    if (Option.isNone(seen) || seen.value.versioned.resourceVersion !== current.resourceVersion) {
      yield* observe(current, now)
    }
    const observed = yield* Ref.get(observedRef)
    if (
      current.record.holderIdentity !== "" &&
      Option.isSome(observed) &&
      isValid(observed.value, now) &&
      !holds(observed)
    ) {
      return false
    }

    // 4. Free, expired, or ours: write it, on top of exactly the version we read.
    const next = holds(observed)
      ? { ...record, acquireTime: current.record.acquireTime, leaseTransitions: current.record.leaseTransitions }
      : { ...record, leaseTransitions: current.record.leaseTransitions + 1 }
    const written = yield* Effect.result(lock.update(next, current.resourceVersion))
    if (written._tag === "Failure") {
      yield* Effect.logDebug("cannot update the Lease", written.failure)
      return false
    }
    yield* hold(written.success, now)
    return true
  })

  // Every attempt is bounded: the client's own retries must not outlast the renew deadline.
  const attempt = tryAcquireOrRenew.pipe(
    Effect.timeoutOption(timing.renewDeadline),
    Effect.map((result) => Option.getOrElse(result, () => false))
  )

  const jittered = Schedule.spaced(timing.retryPeriod).pipe(
    Schedule.modifyDelay((meta) => Effect.map(Random.next, (r) => Duration.times(meta.duration, 1 + r * timing.jitter)))
  )

  const acquire = attempt.pipe(Effect.repeat({ schedule: jittered, until: (acquired) => acquired }))

  // One renewal: retry every retryPeriod until it succeeds, giving up renewDeadline after the retry
  // period that follows the last successful renewal (client-go's timing). That deadline is read from the
  // clock, not only left to a timer started with the renewal: a process frozen past it (SIGSTOP, a
  // paused VM, a stalled node) stops leading at its first renewal step after it resumes, instead of
  // renewing in vain (and reconciling) for a whole renewDeadline while a standby may already lead.
  const renewOnce = Effect.gen(function* () {
    const deadline =
      (yield* Ref.get(renewedAt)) + Duration.toMillis(timing.retryPeriod) + Duration.toMillis(timing.renewDeadline)
    const remaining = deadline - (yield* Clock.currentTimeMillis)
    if (remaining <= 0) return false
    return yield* attempt.pipe(
      Effect.repeat({ schedule: Schedule.spaced(timing.retryPeriod), until: (renewed) => renewed }),
      Effect.timeoutOption(Duration.millis(remaining)),
      Effect.map(Option.isSome)
    )
  })
  const renewLoop = renewOnce.pipe(Effect.repeat({ schedule: Schedule.spaced(timing.retryPeriod), while: (ok) => ok }))

  const end = (message: string) =>
    Deferred.succeed(ended, new LeadershipLost({ message, lease: lock.description, identity }))

  const setLeading = (value: boolean) =>
    Effect.andThen(SubscriptionRef.set(leading, value), Metric.update(gauge, value ? 1 : 0))

  const releaseRecord = (versioned: LeaseLock.VersionedRecord, now: number) =>
    lock.update(
      {
        holderIdentity: "",
        leaseDurationSeconds: 1,
        acquireTime: formatMicroTime(now),
        renewTime: formatMicroTime(now),
        leaseTransitions: versioned.record.leaseTransitions
      },
      versioned.resourceVersion
    )

  // Empty holder and a 1 s duration: the next candidate takes over at its next retry.
  // If a renewal was in flight when we were stopped, our resourceVersion may be stale:
  // re-read, and release only if the Lease is still ours.
  const release = Effect.gen(function* () {
    const observed = yield* Ref.get(observedRef)
    if (!holds(observed)) return
    const now = yield* Clock.currentTimeMillis
    yield* releaseRecord(observed.value.versioned, now).pipe(
      Effect.asVoid,
      Effect.catchTag("Conflict", () =>
        Effect.flatMap(lock.get, (current) =>
          Option.isSome(current) && current.value.record.holderIdentity === identity
            ? Effect.asVoid(releaseRecord(current.value, now))
            : Effect.void
        )
      ),
      Effect.timeout(timing.renewDeadline),
      Effect.tap(() => Effect.logInfo("released the Lease")),
      Effect.catchCause((cause) => Effect.logWarning("cannot release the Lease", cause))
    )
  })

  const campaign = Effect.gen(function* () {
    yield* Effect.logInfo("attempting to acquire the Lease")
    yield* acquire
    yield* setLeading(true)
    yield* Effect.logInfo("acquired the Lease: leading")
    yield* renewLoop
    yield* setLeading(false)
    yield* end(`failed to renew the Lease ${lock.description} within the renew deadline`)
    yield* Effect.logError("leadership lost: failed to renew the Lease within the renew deadline")
  }).pipe(
    Effect.onInterrupt(() =>
      Effect.gen(function* () {
        const wasLeading = yield* SubscriptionRef.get(leading)
        yield* setLeading(false)
        yield* end(`stopped campaigning for the Lease ${lock.description}`)
        if (wasLeading && releaseOnCancel) yield* release
      })
    ),
    annotate
  )

  yield* Metric.update(gauge, 0)
  yield* Effect.forkScoped(campaign)

  const lost = (reason: LeadershipLost) => Effect.fail(reason)
  const awaitLoss = Deferred.await(ended)
  const awaitLeadership: Effect.Effect<void, LeadershipLost> = Effect.raceFirst(
    SubscriptionRef.changes(leading).pipe(
      Stream.filter((value) => value),
      Stream.take(1),
      Stream.runDrain
    ),
    Effect.flatMap(awaitLoss, lost)
  )

  const shape: LeaderElectionShape = {
    identity,
    lease: lock.description,
    isLeader: SubscriptionRef.get(leading),
    changes: SubscriptionRef.changes(leading),
    leader: Effect.map(Ref.get(observedRef), (observed) =>
      Option.filter(
        Option.map(observed, (o) => o.versioned.record.holderIdentity),
        (holder) => holder !== ""
      )
    ),
    awaitLeadership,
    awaitLoss,
    whileLeader: (effect) => Effect.andThen(awaitLeadership, Effect.raceFirst(effect, Effect.flatMap(awaitLoss, lost)))
  }
  return shape
})

/**
 * Campaigns on the Lease `options.namespace/options.name` in the current Scope.
 *
 * @example
 * ```ts
 * const election = yield* LeaderElection.make({ namespace: "backup-system", name: "backup-operator" })
 * ```
 */
export const make = (
  options: LeaderElectionOptions
): Effect.Effect<LeaderElectionShape, LeaderElectionConfigError, KubeClient | Scope.Scope> =>
  Effect.flatMap(LeaseLock.kube(options), (lock) => makeWithLock(options, lock))
