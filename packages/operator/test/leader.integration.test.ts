import { KubeClient, Lease, Namespace } from "@db-backup-operator/kube"
import { ControlPlane } from "@db-backup-operator/testing"
import { assert, layer } from "@effect/vitest"
import { Clock, Effect, Exit, Layer, Metric, Random, Scope } from "effect"
import { LeaderElection, type LeaderElectionOptions } from "../src/leader/index.ts"
import { holdsFor } from "./fixtures/holds.ts"

// Two electors on one real Lease: exactly one leads; a graceful stop hands over
// within a retry period; a crash (no release) hands over after about one lease
// duration. Default client-go timings (15 s / 10 s / 2 s).

const KubeLive = Layer.unwrap(
  Effect.map(ControlPlane, (plane) => KubeClient.layer({ _tag: "File", path: plane.kubeconfigPath }))
)
const Env = KubeLive.pipe(Layer.provideMerge(ControlPlane.layer({ controllerManager: false })))

const freshNamespace = Effect.gen(function* () {
  const kube = yield* KubeClient
  const name = `leader-${(yield* Random.nextIntBetween(0, 1_000_000)).toString(36)}`
  yield* kube.create(Namespace, { metadata: { name } })
  return name
})

/** An elector in its own scope, so the test can stop one (gracefully or as a crash) on its own. */
const startElector = (options: LeaderElectionOptions) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    const election = yield* LeaderElection.make(options).pipe(Scope.provide(scope))
    return { election, stop: Scope.close(scope, Exit.void) }
  })

const elapsedSince = (start: number) => Effect.map(Clock.currentTimeMillis, (now) => (now - start) / 1000)

layer(Env, { timeout: "180 seconds", excludeTestServices: true })("leader election on a real Lease", (it) => {
  it.effect(
    "one leader; graceful handover within a retry period; crash handover within a lease duration",
    () =>
      Effect.gen(function* () {
        const kube = yield* KubeClient
        const namespace = yield* freshNamespace
        const options = { namespace, name: "operator-lock" }
        // a releases gracefully on stop; b "crashes" (its scope closes without releasing).
        const a = yield* startElector({ ...options, identity: "a" })
        yield* a.election.awaitLeadership
        const b = yield* startElector({ ...options, identity: "b", releaseOnCancel: false })

        // Exactly one leads, and goes on leading: 5 s span two of b's acquire attempts (every
        // 2 s plus up to 20% jitter) and two of a's renewals, where a double leader would show.
        yield* holdsFor(
          "a leads and b waits",
          Effect.map(Effect.all([a.election.isLeader, b.election.isLeader]), ([x, y]) => x && !y),
          "5 seconds"
        )
        const lease = yield* kube.get(Lease, "operator-lock", { namespace })
        assert.strictEqual(lease.spec?.holderIdentity, "a")
        assert.strictEqual(lease.spec?.leaseDurationSeconds, 15)
        assert.match(lease.spec?.renewTime ?? "", /\.\d{6}Z$/u)
        const gauge = Metric.withAttributes(LeaderElection.masterStatus, { name: "operator-lock" })
        assert.strictEqual((yield* Metric.value(gauge)).value, 1)

        // Graceful: a releases on stop, and b takes over at its next retry (2 s + up to 20% jitter).
        const stopped = yield* Clock.currentTimeMillis
        yield* a.stop
        const released = yield* kube.get(Lease, "operator-lock", { namespace })
        assert.strictEqual(released.spec?.holderIdentity ?? "", "")
        yield* b.election.awaitLeadership
        const graceful = yield* elapsedSince(stopped)
        assert.isAtMost(graceful, 3.5, `graceful handover took ${graceful} s`)

        // Crash: b stops renewing without releasing. c waits one lease duration from when it
        // last saw the Lease change (at most a retry period before the crash), then takes over.
        const c = yield* startElector({ ...options, identity: "c" })
        // While b renews, c stays a standby: 3 s span at least one of c's acquire attempts.
        yield* holdsFor(
          "c waits while b renews",
          Effect.map(c.election.isLeader, (leading) => !leading),
          "3 seconds"
        )
        const crashed = yield* Clock.currentTimeMillis
        yield* b.stop
        assert.strictEqual((yield* kube.get(Lease, "operator-lock", { namespace })).spec?.holderIdentity, "b")
        yield* c.election.awaitLeadership
        const crash = yield* elapsedSince(crashed)
        assert.isAtLeast(crash, 12, `crash handover after only ${crash} s`)
        assert.isAtMost(crash, 20, `crash handover took ${crash} s`)
        const taken = yield* kube.get(Lease, "operator-lock", { namespace })
        assert.strictEqual(taken.spec?.holderIdentity, "c")
        assert.strictEqual(taken.spec?.leaseTransitions, 2)
        yield* c.stop
      }),
    120_000
  )
})
