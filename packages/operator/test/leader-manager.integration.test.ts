import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { ConfigMap, Event, KubeClient, Lease } from "@db-backup-operator/kube"
import { Crd } from "@db-backup-operator/operator"
import {
  adminKube,
  ControlPlane,
  type Daemon,
  eventually as eventuallyWith,
  freePorts,
  freshNamespace as freshNamespaceWith,
  startDaemon
} from "@db-backup-operator/testing"
import { NodeServices } from "@effect/platform-node"
import { assert, layer } from "@effect/vitest"
import { Clock, type Duration, Effect, Layer, Result } from "effect"
import { ConfigMapGenerator, crd } from "../examples/configmap-generator/ConfigMapGenerator.ts"

// Two (or three) replicas of the example operator as real processes
// (examples/configmap-generator/main.ts), campaigning on one Lease with
// client-go's timings (15 s lease, 10 s renew deadline, 2 s retry period).

const mainPath = fileURLToPath(new URL("../examples/configmap-generator/main.ts", import.meta.url))
const leaseName = "configmap-generator"

const crdFile = join(mkdtempSync(join(tmpdir(), "cmg-crd-")), Crd.fileName(crd))
writeFileSync(crdFile, Crd.toYaml(crd))

const KubeLive = adminKube
const Env = Layer.mergeAll(KubeLive, NodeServices.layer).pipe(
  Layer.provideMerge(ControlPlane.layer({ controllerManager: false, crds: [crdFile] }))
)

const freshNamespace = freshNamespaceWith("lm")

const eventually = <A, E, R>(what: string, probe: Effect.Effect<A | undefined, E, R>, timeout?: Duration.Input) =>
  eventuallyWith(what, probe, timeout === undefined ? {} : { timeout })

const httpStatus = (url: string) =>
  Effect.tryPromise(async () => (await fetch(url)).status).pipe(Effect.orElseSucceed(() => 0))

interface Replica {
  readonly identity: string
  readonly daemon: Daemon
  readonly healthUrl: string
  readonly signal: (signal: "SIGTERM" | "SIGKILL") => Effect.Effect<void>
  /** Waits for the process to end; its exit code, or the signal that ended it. */
  readonly exitStatus: Effect.Effect<string, Error>
  readonly log: Effect.Effect<string>
}

/** Starts one replica of the example operator as its own process group, stopped with the test. */
const startReplica = (namespace: string, identity: string) =>
  Effect.gen(function* () {
    const plane = yield* ControlPlane
    const [metricsPort, healthPort] = yield* freePorts(2)
    const daemon = yield* startDaemon({
      name: `${namespace}-${identity}`,
      dir: plane.dir,
      command: process.execPath,
      args: [mainPath],
      env: {
        KUBECONFIG: plane.kubeconfigPath,
        WATCH_NAMESPACES: namespace,
        LEADER_ELECT: "true",
        LEASE_NAMESPACE: namespace,
        POD_NAME: identity,
        METRICS_PORT: String(metricsPort),
        HEALTH_PORT: String(healthPort)
      }
    })
    const healthUrl = `http://127.0.0.1:${healthPort}`
    yield* eventually(
      `${identity} serving /healthz`,
      Effect.map(httpStatus(`${healthUrl}/healthz`), (s) => (s === 200 ? s : undefined))
    )
    const replica: Replica = {
      identity,
      daemon,
      healthUrl,
      signal: (signal) =>
        Effect.sync(() => {
          try {
            process.kill(-daemon.pid, signal)
          } catch {
            // already gone
          }
        }),
      exitStatus: Effect.gen(function* () {
        yield* eventually(
          `${identity} to exit`,
          Effect.map(daemon.isRunning, (running) => (running ? undefined : true)),
          "40 seconds"
        )
        const ended = yield* Effect.result(daemon.ensureRunning)
        if (Result.isSuccess(ended)) return "still running"
        return /exited with code \d+|SIG[A-Z]+/u.exec(ended.failure.message)?.[0] ?? ended.failure.message
      }),
      log: daemon.logTail(2000)
    }
    return replica
  })

const holder = (namespace: string) =>
  KubeClient.use((kube) => kube.get(Lease, leaseName, { namespace })).pipe(
    Effect.map((lease) => lease.spec?.holderIdentity ?? ""),
    Effect.catchTag("NotFound", () => Effect.succeed(""))
  )

const awaitHolder = (namespace: string, identity: string, timeout: Duration.Input = "30 seconds") =>
  eventually(
    `Lease held by ${identity}`,
    Effect.map(holder(namespace), (h) => (h === identity ? h : undefined)),
    timeout
  )

const elapsedSince = (start: number) => Effect.map(Clock.currentTimeMillis, (now) => (now - start) / 1000)

const controllerStarted = /controller configmapgenerator started/u

/** Reporting instances of this namespace's ConfigMapsSynced Events. */
const reporters = (namespace: string) =>
  Effect.map(
    KubeClient.use((kube) => kube.list(Event, { namespace })),
    (listed) =>
      new Set(listed.items.filter((e) => e.reason === "ConfigMapsSynced").map((e) => e.reportingInstance ?? ""))
  )

const configMapData = (namespace: string, name: string) =>
  KubeClient.use((kube) => kube.get(ConfigMap, name, { namespace })).pipe(
    Effect.map((cm) => cm.data),
    Effect.catchTag("NotFound", () => Effect.succeed(undefined))
  )

layer(Env, { timeout: "180 seconds", excludeTestServices: true })("leader election across processes", (it) => {
  it.effect("only the leader reconciles; SIGKILL of the leader hands over within about one lease duration", () =>
    Effect.gen(function* () {
      const kube = yield* KubeClient
      const namespace = yield* freshNamespace
      const a = yield* startReplica(namespace, "replica-a")
      yield* awaitHolder(namespace, "replica-a")
      const b = yield* startReplica(namespace, "replica-b")

      yield* kube.create(ConfigMapGenerator, {
        metadata: { name: "app", namespace },
        spec: { data: { color: "blue" }, replicas: 2 }
      })
      yield* eventually(
        "ConfigMaps from the leader",
        Effect.map(configMapData(namespace, "app-1"), (data) => (data?.color === "blue" ? data : undefined))
      )
      yield* eventually(
        "an Event",
        Effect.map(reporters(namespace), (r) => (r.size > 0 ? r : undefined))
      )
      // Only a reconciled: b never started its controller, and every Event names a.
      assert.deepStrictEqual([...(yield* reporters(namespace))], ["replica-a"])
      assert.match(yield* a.log, controllerStarted)
      assert.notMatch(yield* b.log, controllerStarted)
      assert.strictEqual(yield* httpStatus(`${a.healthUrl}/readyz`), 200)
      // A standby is ready (a rolling update waits for the new Pod to be ready, and it starts as one).
      assert.strictEqual(yield* httpStatus(`${b.healthUrl}/readyz`), 200)

      // A crash: nothing is released, b must wait out the lease duration (15 s) from its last renewal.
      const killed = yield* Clock.currentTimeMillis
      yield* a.signal("SIGKILL")
      yield* awaitHolder(namespace, "replica-b", "30 seconds")
      const handover = yield* elapsedSince(killed)
      assert.isAtLeast(handover, 10, `took over after only ${handover} s`)
      assert.isAtMost(handover, 20, `handover took ${handover} s`)

      // b now reconciles: a spec change reaches the ConfigMaps, reported by b.
      yield* kube.mergePatch(ConfigMapGenerator, "app", { spec: { data: { color: "red" } } }, { namespace })
      yield* eventually(
        "ConfigMaps updated by the new leader",
        Effect.map(configMapData(namespace, "app-0"), (data) => (data?.color === "red" ? data : undefined))
      )
      const after = yield* eventually(
        "an Event from b",
        Effect.map(reporters(namespace), (r) => (r.has("replica-b") ? r : undefined))
      )
      assert.deepStrictEqual([...after].sort(), ["replica-a", "replica-b"])
      yield* eventually(
        "b ready",
        Effect.map(httpStatus(`${b.healthUrl}/readyz`), (s) => (s === 200 ? s : undefined))
      )
      const took = yield* elapsedSince(killed)
      yield* Effect.logInfo(`SIGKILL handover: Lease after ${handover} s, reconciling after ${took} s`)
    })
  )

  it.effect("SIGTERM of the leader releases the Lease; the standby takes over within a few seconds", () =>
    Effect.gen(function* () {
      const namespace = yield* freshNamespace
      const a = yield* startReplica(namespace, "replica-a")
      yield* awaitHolder(namespace, "replica-a")
      const b = yield* startReplica(namespace, "replica-b")
      yield* eventually(
        "a ready",
        Effect.map(httpStatus(`${a.healthUrl}/readyz`), (s) => (s === 200 ? s : undefined))
      )

      const stopped = yield* Clock.currentTimeMillis
      yield* a.signal("SIGTERM")
      yield* awaitHolder(namespace, "replica-b", "10 seconds")
      const handover = yield* elapsedSince(stopped)
      assert.isAtMost(handover, 5, `handover took ${handover} s`)
      assert.strictEqual(yield* a.exitStatus, "exited with code 0")
      assert.match(yield* a.log, /released the Lease/u)
      yield* eventually(
        "b ready",
        Effect.map(httpStatus(`${b.healthUrl}/readyz`), (s) => (s === 200 ? s : undefined))
      )
      assert.match(yield* b.log, controllerStarted)
    })
  )

  it.effect("a leader whose Lease is taken exits with code 1", () =>
    Effect.gen(function* () {
      const kube = yield* KubeClient
      const namespace = yield* freshNamespace
      const a = yield* startReplica(namespace, "replica-a")
      yield* awaitHolder(namespace, "replica-a")
      yield* eventually(
        "a ready",
        Effect.map(httpStatus(`${a.healthUrl}/readyz`), (s) => (s === 200 ? s : undefined))
      )

      const stolen = yield* Clock.currentTimeMillis
      yield* kube.mergePatch(Lease, leaseName, { spec: { holderIdentity: "thief" } }, { namespace })
      assert.strictEqual(yield* a.exitStatus, "exited with code 1")
      const took = yield* elapsedSince(stolen)
      // It notices at its next renewal (2 s) and gives up at the renew deadline (10 s).
      assert.isAtMost(took, 15, `exit took ${took} s`)
      assert.match(yield* a.log, /LeadershipLost|leadership lost/u)
      assert.strictEqual(yield* holder(namespace), "thief", "a lost Lease is not released")
    })
  )
})
