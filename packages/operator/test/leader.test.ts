import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Exit, Fiber, Metric, Option, Scope } from "effect"
import { TestClock } from "effect/testing"
import { LeaderElection, LeaseLock } from "../src/leader/index.ts"

// The election's timing on the TestClock, against the in-memory lock (same
// concurrency rules as the API server). The real Lease path is exercised by
// leader.integration.test.ts.

const settle = Effect.forEach(Array.from({ length: 20 }), () => Effect.yieldNow, { discard: true })

/** Advances the TestClock one second at a time, letting the electors run in between. */
const advance = (seconds: number) =>
  Effect.forEach(Array.from({ length: seconds }), () => Effect.andThen(TestClock.adjust("1 second"), settle), {
    discard: true
  })

const base = { namespace: "ns", name: "lease", jitter: 0 } as const

/** An elector in its own scope, so a test can stop it (gracefully or not) on its own. */
const startElector = (
  lock: LeaseLock.LeaseLock,
  identity: string,
  options: { readonly releaseOnCancel?: boolean } = {}
) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    const election = yield* LeaderElection.makeWithLock({ ...base, identity, ...options }, lock).pipe(
      Scope.provide(scope)
    )
    yield* settle
    return { election, stop: Scope.close(scope, Exit.void) }
  })

const holder = (lock: LeaseLock.MemoryLeaseLock) =>
  Effect.map(lock.current, (current) => Option.map(current, (v) => v.record.holderIdentity))

const gauge = Metric.withAttributes(LeaderElection.masterStatus, { name: "lease" })

const freshMetrics = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.provideService(effect, Metric.MetricRegistry, new Map())

describe("LeaderElection", () => {
  it.effect("acquires a free Lease at once and reports it", () =>
    freshMetrics(
      Effect.gen(function* () {
        const lock = yield* LeaseLock.memory()
        const { election } = yield* startElector(lock, "a")
        assert.isTrue(yield* election.isLeader)
        assert.deepStrictEqual(yield* election.leader, Option.some("a"))
        const record = yield* lock.current
        assert.isTrue(Option.isSome(record))
        if (Option.isSome(record)) {
          assert.strictEqual(record.value.record.leaseDurationSeconds, 15)
          assert.strictEqual(record.value.record.leaseTransitions, 0)
        }
        assert.strictEqual((yield* Metric.value(gauge)).value, 1)
      })
    )
  )

  it.effect("renews every retry period, keeping the acquire time", () =>
    Effect.gen(function* () {
      const lock = yield* LeaseLock.memory()
      yield* startElector(lock, "a")
      const first = Option.getOrThrow(yield* lock.current)
      yield* advance(2)
      const second = Option.getOrThrow(yield* lock.current)
      assert.notStrictEqual(second.resourceVersion, first.resourceVersion)
      assert.strictEqual(second.record.acquireTime, first.record.acquireTime)
      assert.notStrictEqual(second.record.renewTime, first.record.renewTime)
    })
  )

  it.effect("exactly one of two candidates leads", () =>
    Effect.gen(function* () {
      const lock = yield* LeaseLock.memory()
      const a = yield* startElector(lock, "a")
      const b = yield* startElector(lock, "b")
      yield* advance(30)
      assert.isTrue(yield* a.election.isLeader)
      assert.isFalse(yield* b.election.isLeader)
      assert.deepStrictEqual(yield* b.election.leader, Option.some("a"))
    })
  )

  it.effect("a graceful stop releases the Lease and the follower takes over at its next retry", () =>
    Effect.gen(function* () {
      const lock = yield* LeaseLock.memory()
      const a = yield* startElector(lock, "a")
      const b = yield* startElector(lock, "b")
      yield* advance(5)
      yield* a.stop
      const released = Option.getOrThrow(yield* lock.current)
      assert.strictEqual(released.record.holderIdentity, "")
      assert.strictEqual(released.record.leaseDurationSeconds, 1)
      yield* advance(2)
      assert.isTrue(yield* b.election.isLeader)
      assert.deepStrictEqual(yield* holder(lock), Option.some("b"))
      assert.strictEqual(Option.getOrThrow(yield* lock.current).record.leaseTransitions, 1)
    })
  )

  it.effect("after a crash the follower waits one lease duration from its last observed change", () =>
    Effect.gen(function* () {
      const lock = yield* LeaseLock.memory()
      const a = yield* startElector(lock, "a", { releaseOnCancel: false })
      const b = yield* startElector(lock, "b")
      yield* advance(6)
      yield* a.stop // no release: the Lease still names "a"
      assert.deepStrictEqual(yield* holder(lock), Option.some("a"))
      // b last saw the record change at most one retry period before the crash.
      yield* advance(13)
      assert.isFalse(yield* b.election.isLeader)
      yield* advance(6)
      assert.isTrue(yield* b.election.isLeader)
      assert.deepStrictEqual(yield* holder(lock), Option.some("b"))
    })
  )

  it.effect("ignores the remote renewTime: a Lease changing within its duration is never taken", () =>
    Effect.gen(function* () {
      const lock = yield* LeaseLock.memory()
      // A holder whose clock is far behind ours keeps renewing with ancient timestamps.
      const stale = { acquireTime: "2000-01-01T00:00:00.000000Z", renewTime: "2000-01-01T00:00:00.000000Z" }
      let version = (yield* lock.create({
        holderIdentity: "skewed",
        leaseDurationSeconds: 15,
        leaseTransitions: 0,
        ...stale
      })).resourceVersion
      const b = yield* startElector(lock, "b")
      for (let i = 0; i < 10; i++) {
        yield* advance(5)
        version = (yield* lock.update(
          { holderIdentity: "skewed", leaseDurationSeconds: 15, leaseTransitions: 0, ...stale },
          version
        )).resourceVersion
      }
      assert.isFalse(yield* b.election.isLeader)
    })
  )

  it.effect("loses leadership when renewals fail for the renew deadline, interrupting leader-only work", () =>
    freshMetrics(
      Effect.gen(function* () {
        const lock = yield* LeaseLock.memory()
        const a = yield* startElector(lock, "a")
        const interrupted = yield* Deferred.make<void>()
        const work = yield* a.election
          .whileLeader(Effect.never.pipe(Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined))))
          .pipe(Effect.forkChild)
        yield* settle
        yield* lock.setUnavailable(true)
        // The last renewal succeeded at t=0; the next attempt starts at t=2 and gives up at t=12.
        yield* advance(11)
        assert.isTrue(yield* a.election.isLeader)
        yield* advance(2)
        assert.isFalse(yield* a.election.isLeader)
        const exit = yield* Fiber.await(work)
        assert.isTrue(Exit.isFailure(exit))
        if (Exit.isFailure(exit)) {
          const error = exit.cause.reasons.find((r) => r._tag === "Fail")
          assert.strictEqual(error?._tag === "Fail" ? error.error._tag : undefined, "LeadershipLost")
        }
        assert.isTrue(yield* Deferred.isDone(interrupted))
        assert.strictEqual((yield* Metric.value(gauge)).value, 0)
        const lost = yield* a.election.awaitLoss
        assert.include(lost.message, "renew")
        // Lost is final, even once the API server is back.
        yield* lock.setUnavailable(false)
        yield* advance(5)
        assert.isFalse(yield* a.election.isLeader)
      })
    )
  )

  // A frozen process (SIGSTOP, a paused VM) runs nothing while time passes: when it resumes its clock
  // has jumped and its timers are all due at once. Modelled with a clock of its own that jumps ahead
  // while its sleeps stay on the TestClock.
  it.effect("a leader frozen past its Lease stops leading at its first step after it resumes", () =>
    freshMetrics(
      Effect.gen(function* () {
        const lock = yield* LeaseLock.memory()
        const base = yield* Clock.Clock
        let frozenMillis = 0
        const nanos = () => BigInt(frozenMillis) * 1_000_000n
        const frozenClock: Clock.Clock = {
          currentTimeMillisUnsafe: () => base.currentTimeMillisUnsafe() + frozenMillis,
          currentTimeMillis: Effect.sync(() => base.currentTimeMillisUnsafe() + frozenMillis),
          currentTimeNanosUnsafe: () => base.currentTimeNanosUnsafe() + nanos(),
          currentTimeNanos: Effect.sync(() => base.currentTimeNanosUnsafe() + nanos()),
          monotonicTimeNanosUnsafe: () => base.monotonicTimeNanosUnsafe() + nanos(),
          monotonicTimeNanos: Effect.sync(() => base.monotonicTimeNanosUnsafe() + nanos()),
          sleep: (duration) => base.sleep(duration)
        }
        const a = yield* startElector(lock, "a").pipe(Effect.provideService(Clock.Clock, frozenClock))
        yield* advance(3)
        assert.isTrue(yield* a.election.isLeader)
        // Frozen for 20 s, and meanwhile a standby took the expired Lease over.
        frozenMillis = 20_000
        const current = Option.getOrThrow(yield* lock.current)
        const time = "2000-01-01T00:00:00.000000Z"
        yield* lock.update(
          {
            holderIdentity: "b",
            leaseDurationSeconds: 15,
            acquireTime: time,
            renewTime: time,
            leaseTransitions: current.record.leaseTransitions + 1
          },
          current.resourceVersion
        )
        // Its next renewal step is at most one retry period after it resumes: there it must give up,
        // not keep leading (and reconciling) for another renew deadline while "b" leads too.
        yield* advance(2)
        assert.isFalse(yield* a.election.isLeader)
        assert.include((yield* a.election.awaitLoss).message, "renew")
        assert.strictEqual((yield* Metric.value(gauge)).value, 0)
        assert.deepStrictEqual(yield* holder(lock), Option.some("b"))
      })
    )
  )

  it.effect("rides out failures shorter than the renew deadline", () =>
    Effect.gen(function* () {
      const lock = yield* LeaseLock.memory()
      const a = yield* startElector(lock, "a")
      yield* lock.setUnavailable(true)
      yield* advance(9)
      yield* lock.setUnavailable(false)
      yield* advance(10)
      assert.isTrue(yield* a.election.isLeader)
    })
  )

  it.effect("whileLeader waits for leadership and returns the effect's result", () =>
    Effect.gen(function* () {
      const lock = yield* LeaseLock.memory()
      const a = yield* startElector(lock, "a")
      const b = yield* startElector(lock, "b")
      const work = yield* b.election.whileLeader(Effect.succeed("done")).pipe(Effect.forkChild)
      yield* advance(4)
      assert.isUndefined(work.pollUnsafe())
      yield* a.stop
      yield* advance(3)
      assert.strictEqual(yield* Fiber.join(work), "done")
    })
  )

  it.effect("awaitLeadership fails once the elector stops without having led", () =>
    Effect.gen(function* () {
      const lock = yield* LeaseLock.memory()
      yield* startElector(lock, "a")
      const b = yield* startElector(lock, "b")
      const waiting = yield* b.election.awaitLeadership.pipe(Effect.flip, Effect.forkChild)
      yield* settle
      yield* b.stop
      const error = yield* Fiber.join(waiting)
      assert.strictEqual(error._tag, "LeadershipLost")
    })
  )

  it.effect("rejects inconsistent timings", () =>
    Effect.gen(function* () {
      const lock = yield* LeaseLock.memory()
      const error = yield* LeaderElection.makeWithLock(
        { ...base, leaseDuration: "10 seconds", renewDeadline: "10 seconds" },
        lock
      ).pipe(Effect.flip)
      assert.strictEqual(error._tag, "LeaderElectionConfigError")
      const tight = yield* LeaderElection.makeWithLock(
        { ...base, renewDeadline: "2 seconds", retryPeriod: "2 seconds" },
        lock
      ).pipe(Effect.flip)
      assert.include(tight.message, "retryPeriod")
    })
  )
})
