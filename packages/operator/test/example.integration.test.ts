import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ConfigMap, Event, KubeClient } from "@db-backup-operator/kube"
import { Conditions, Crd, EventRecorder, Manager } from "@db-backup-operator/operator"
import {
  adminKube,
  ControlPlane,
  eventually as eventuallyWith,
  freshNamespace as freshNamespaceWith
} from "@db-backup-operator/testing"
import { assert, layer } from "@effect/vitest"
import { type Duration, Effect, Layer, Metric } from "effect"
import { ConfigMapGenerator, crd } from "../examples/configmap-generator/ConfigMapGenerator.ts"
import { configMapGeneratorController, finalizer } from "../examples/configmap-generator/controller.ts"
import * as ControllerMetrics from "../src/controller/ControllerMetrics.ts"
import { holdsFor } from "./fixtures/holds.ts"

// The example operator (packages/operator/examples/configmap-generator) against a
// real kube-apiserver, with its generated CRD. No kube-controller-manager runs, so
// no garbage collector: ConfigMaps disappear only if the controller deletes them.

const crdFile = join(mkdtempSync(join(tmpdir(), "cmg-crd-")), Crd.fileName(crd))
writeFileSync(crdFile, Crd.toYaml(crd))

const KubeLive = adminKube

/** The example's controller, running in this process for the whole file. */
const OperatorLive = Layer.effectDiscard(
  Manager.run({ controllers: [configMapGeneratorController()], metrics: false, health: false }).pipe(
    Effect.provide(
      EventRecorder.layer({
        reportingController: "examples.db-backup-operator.dev/configmap-generator",
        reportingInstance: "example-test"
      })
    ),
    Effect.forkScoped
  )
)

const Env = OperatorLive.pipe(
  Layer.provideMerge(KubeLive),
  Layer.provideMerge(ControlPlane.layer({ controllerManager: false, crds: [crdFile] }))
)

const freshNamespace = freshNamespaceWith("cmg")

const eventually = <A, E, R>(what: string, probe: Effect.Effect<A | undefined, E, R>, timeout?: Duration.Input) =>
  eventuallyWith(what, probe, timeout === undefined ? {} : { timeout })

const configMaps = (namespace: string) =>
  Effect.gen(function* () {
    const kube = yield* KubeClient
    const listed = yield* kube.list(ConfigMap, { namespace })
    return listed.items.filter((cm) => cm.metadata.name !== "kube-root-ca.crt")
  })

const names = (objects: ReadonlyArray<{ readonly metadata: { readonly name?: string | undefined } }>) =>
  objects.map((object) => object.metadata.name ?? "").sort()

const generator = (namespace: string, name: string, spec: ConfigMapGenerator["spec"]) =>
  KubeClient.use((kube) => kube.create(ConfigMapGenerator, { metadata: { name, namespace }, spec }))

/** A create the client does not validate first: only the API server judges it. */
const rawCreate = (namespace: string, name: string, spec: unknown) =>
  KubeClient.use((kube) =>
    kube.request({
      method: "POST",
      path: `/apis/${ConfigMapGenerator.apiVersion}/namespaces/${namespace}/${ConfigMapGenerator.plural}`,
      body: { apiVersion: ConfigMapGenerator.apiVersion, kind: ConfigMapGenerator.kind, metadata: { name }, spec }
    })
  )

const getGenerator = (namespace: string, name: string) =>
  KubeClient.use((kube) => kube.get(ConfigMapGenerator, name, { namespace }))

const events = (namespace: string, reason: string) =>
  Effect.map(
    KubeClient.use((kube) => kube.list(Event, { namespace })),
    (listed) => listed.items.filter((event) => event.reason === reason)
  )

layer(Env, { timeout: "180 seconds", excludeTestServices: true })("example: ConfigMapGenerator operator", (it) => {
  it.effect("the generated CRD is accepted and enforces bounds, defaults and the CEL rule", () =>
    Effect.gen(function* () {
      const { kubectl } = yield* ControlPlane
      const established = yield* kubectl([
        "get",
        "crd",
        crd.metadata.name,
        "-o",
        `jsonpath={.status.conditions[?(@.type=="Established")].status}`
      ])
      assert.strictEqual(established.stdout.trim(), "True", established.stderr)
      const namespace = yield* freshNamespace
      // Raw requests, so only the API server judges them (the Schema would refuse replicas: 9 client-side).
      const badKey = yield* Effect.flip(rawCreate(namespace, "bad-key", { data: { "not a key!": "x" } }))
      assert.strictEqual(badKey._tag, "Invalid")
      assert.include(badKey.message, "data keys must be valid ConfigMap keys")
      const tooMany = yield* Effect.flip(rawCreate(namespace, "too-many", { data: {}, replicas: 9 }))
      assert.strictEqual(tooMany._tag, "Invalid")
      assert.include(tooMany.message, "spec.replicas")
      const defaulted = yield* generator(namespace, "defaulted", { data: { a: "1" } })
      assert.strictEqual(defaulted.spec.replicas, 1)
    })
  )

  it.effect("creates the ConfigMaps with a controller reference, reports Ready, records an Event", () =>
    Effect.gen(function* () {
      const namespace = yield* freshNamespace
      const created = yield* generator(namespace, "app", { data: { color: "blue", size: "m" }, replicas: 3 })
      const children = yield* eventually(
        "3 ConfigMaps",
        Effect.map(configMaps(namespace), (items) => (items.length === 3 ? items : undefined))
      )
      assert.deepStrictEqual(names(children), ["app-0", "app-1", "app-2"])
      for (const child of children) {
        assert.deepStrictEqual(child.data, { color: "blue", size: "m" })
        const owner = child.metadata.ownerReferences?.[0]
        assert.strictEqual(owner?.uid, created.metadata.uid)
        assert.strictEqual(owner?.controller, true)
        assert.strictEqual(owner?.kind, "ConfigMapGenerator")
      }
      const ready = yield* eventually(
        "Ready=True",
        Effect.map(getGenerator(namespace, "app"), (g) =>
          Conditions.isTrue(g.status?.conditions, "Ready") ? g : undefined
        )
      )
      assert.strictEqual(ready.status?.observedGeneration, 1)
      assert.deepStrictEqual(ready.status?.configMaps, ["app-0", "app-1", "app-2"])
      assert.deepStrictEqual(ready.metadata.finalizers, [finalizer])
      const synced = yield* eventually(
        "a ConfigMapsSynced Event",
        Effect.map(events(namespace, "ConfigMapsSynced"), (found) => (found.length > 0 ? found : undefined))
      )
      assert.strictEqual(synced[0]?.regarding?.name, "app")
      assert.strictEqual(synced[0]?.reportingInstance, "example-test")
    })
  )

  it.effect("a spec change updates the data and deletes ConfigMaps beyond replicas", () =>
    Effect.gen(function* () {
      const kube = yield* KubeClient
      const namespace = yield* freshNamespace
      yield* generator(namespace, "app", { data: { color: "blue" }, replicas: 3 })
      yield* eventually(
        "3 ConfigMaps",
        Effect.map(configMaps(namespace), (items) => (items.length === 3 ? items : undefined))
      )
      yield* kube.mergePatch(
        ConfigMapGenerator,
        "app",
        { spec: { data: { color: "red", shape: "round" }, replicas: 1 } },
        {
          namespace
        }
      )
      const children = yield* eventually(
        "one ConfigMap with the new data",
        Effect.map(configMaps(namespace), (items) =>
          items.length === 1 && items[0]?.data?.color === "red" ? items : undefined
        )
      )
      assert.deepStrictEqual(names(children), ["app-0"])
      // Server-side apply removed the key the spec no longer has.
      assert.deepStrictEqual(children[0]?.data, { color: "red", shape: "round" })
      const updated = yield* eventually(
        "observedGeneration 2",
        Effect.map(getGenerator(namespace, "app"), (g) => (g.status?.observedGeneration === 2 ? g : undefined))
      )
      assert.deepStrictEqual(updated.status?.configMaps, ["app-0"])
    })
  )

  it.effect("an owned ConfigMap that is deleted is recreated, and one that is edited is restored", () =>
    Effect.gen(function* () {
      const kube = yield* KubeClient
      const namespace = yield* freshNamespace
      yield* generator(namespace, "app", { data: { color: "blue" }, replicas: 2 })
      const [first] = yield* eventually(
        "2 ConfigMaps",
        Effect.map(configMaps(namespace), (items) => (items.length === 2 ? items : undefined))
      )
      yield* kube.delete(ConfigMap, "app-0", { namespace })
      const recreated = yield* eventually(
        "app-0 recreated",
        Effect.map(configMaps(namespace), (items) =>
          items.find((cm) => cm.metadata.name === "app-0" && cm.metadata.uid !== first?.metadata.uid)
        )
      )
      assert.deepStrictEqual(recreated.data, { color: "blue" })
      yield* kube.mergePatch(ConfigMap, "app-1", { data: { color: "green" } }, { namespace })
      yield* eventually(
        "app-1 restored",
        Effect.map(configMaps(namespace), (items) =>
          items.find((cm) => cm.metadata.name === "app-1" && cm.data?.color === "blue")
        )
      )
    })
  )

  it.effect("deleting the generator runs its finalizer: ConfigMaps deleted, Event recorded, object gone", () =>
    Effect.gen(function* () {
      const kube = yield* KubeClient
      const namespace = yield* freshNamespace
      yield* generator(namespace, "app", { data: { color: "blue" }, replicas: 2 })
      yield* eventually(
        "finalizer and 2 ConfigMaps",
        Effect.gen(function* () {
          const g = yield* getGenerator(namespace, "app")
          const items = yield* configMaps(namespace)
          return g.metadata.finalizers?.includes(finalizer) === true && items.length === 2 ? items : undefined
        })
      )
      yield* kube.delete(ConfigMapGenerator, "app", { namespace })
      yield* eventually(
        "the generator gone",
        getGenerator(namespace, "app").pipe(
          Effect.as(undefined),
          Effect.catchTag("NotFound", () => Effect.succeed(true))
        )
      )
      assert.deepStrictEqual(yield* configMaps(namespace), [])
      const cleaned = yield* eventually(
        "a CleanedUp Event",
        Effect.map(events(namespace, "CleanedUp"), (found) => (found.length > 0 ? found : undefined))
      )
      assert.strictEqual(cleaned[0]?.note, "deleted 2 ConfigMap(s)")
    })
  )

  it.effect("a ConfigMap the API server rejects sets Ready=False and is not retried", () =>
    Effect.gen(function* () {
      const namespace = yield* freshNamespace
      const terminal = Metric.withAttributes(ControllerMetrics.terminalReconcileErrors, {
        controller: "configmapgenerator"
      })
      const before = (yield* Metric.value(terminal)).count
      // A ConfigMap holds at most 1 MiB; the custom resource may be larger.
      yield* generator(namespace, "huge", { data: { blob: "x".repeat(1_100_000) } })
      const failed = yield* eventually(
        "Ready=False",
        Effect.map(getGenerator(namespace, "huge"), (g) =>
          Conditions.isFalse(g.status?.conditions, "Ready") ? g : undefined
        )
      )
      assert.strictEqual(Conditions.findCondition(failed.status?.conditions, "Ready")?.reason, "ConfigMapRejected")
      // Retried only when the object changes. Adding the finalizer is one such change (the
      // first attempt sees the object without it), so exactly two attempts, then none.
      const attempts = Effect.map(Metric.value(terminal), (state) => state.count - before)
      yield* eventually(
        "the second attempt, caused by the finalizer's addition",
        Effect.map(attempts, (count) => (count >= 2 ? count : undefined))
      )
      // Then no third: a retried error would come back on the work queue's backoff (5 ms,
      // doubling), nine times within the 3 s this watches.
      yield* holdsFor(
        "a terminal error is not retried",
        Effect.map(attempts, (count) => count === 2),
        "3 seconds"
      )
      assert.deepStrictEqual(yield* configMaps(namespace), [])
    })
  )
})
