import { createServer, type Socket, connect as tcpConnect } from "node:net"
import { ConfigMap, Connection, KubeClient, type KubeClientShape, Namespace, Resource } from "@db-backup-operator/kube"
import { UndiciTransport } from "@db-backup-operator/kube/undici"
import { ControlPlane } from "@db-backup-operator/testing"
import { assert, describe, layer } from "@effect/vitest"
import {
  Data,
  type Duration,
  Effect,
  Layer,
  Logger,
  Metric,
  Option,
  References,
  Schedule,
  Schema,
  Stream
} from "effect"
import { Caches, type Change, Reflector } from "../src/cache/index.ts"

// The reflector against a real kube-apiserver + etcd, one namespace per test. A
// restarted API server's watch cache starts at the current revision and etcd
// compacts every second, so a resourceVersion from before a restart expires (a
// test waits until a watch from it answers 410 rather than for a fixed time).

class NotYet extends Data.TaggedError("NotYet")<{ readonly message: string }> {}

/** Polls `check` every 100 ms until it returns true; fails naming `what` after `timeout`. */
const until = (what: string, check: Effect.Effect<boolean>, timeout: Duration.Input = "60 seconds") =>
  check.pipe(
    Effect.flatMap((ok) => (ok ? Effect.void : Effect.fail(new NotYet({ message: `timed out waiting for ${what}` })))),
    Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo({ duration: timeout })))
  )

/**
 * Whether a watch from `resourceVersion` is refused with 410 Gone (the version was
 * compacted, or is older than a restarted API server's watch cache). Any other
 * answer, including the API server still starting, means not yet.
 */
const expired = (kube: KubeClientShape, namespace: string, resourceVersion: string) =>
  kube.watch(ConfigMap, { namespace, resourceVersion, timeoutSeconds: 1 }).pipe(
    Stream.runDrain,
    Effect.as(false),
    Effect.catchTag("Gone", () => Effect.succeed(true)),
    Effect.catch(() => Effect.succeed(false))
  )

let namespaces = 0
/** A fresh namespace for one test. */
const freshNamespace = (prefix: string) =>
  Effect.gen(function* () {
    const kube = yield* KubeClient
    const name = `${prefix}-${++namespaces}-${Math.random().toString(36).slice(2, 7)}`
    yield* kube.create(Namespace, { metadata: { name } })
    return name
  })

const configMap = (
  namespace: string,
  name: string,
  data: Record<string, string> = {},
  labels?: Record<string, string>
) =>
  ({
    metadata: { name, namespace, ...(labels === undefined ? {} : { labels }) },
    data
  }) satisfies ConfigMap

const summary = (change: Change<ConfigMap>) =>
  `${change.type} ${change.object.metadata.name}${change.type === "Deleted" && change.finalStateUnknown ? "?" : ""}`

/** Collects the change stream of a reflector in the background (until the test's scope closes). */
const collect = (reflector: Reflector.Reflector<ConfigMap>, options?: { readonly replay?: boolean }) =>
  Effect.gen(function* () {
    const seen: Array<Change<ConfigMap>> = []
    yield* reflector.changes(options).pipe(
      Stream.runForEach((change) => Effect.sync(() => seen.push(change))),
      Effect.forkScoped
    )
    const has = (line: string) => Effect.sync(() => seen.map(summary).includes(line))
    return { seen, has, lines: () => seen.map(summary) }
  })

const names = (objects: ReadonlyArray<ConfigMap>) => objects.map((object) => object.metadata.name ?? "").toSorted()

const counter = (name: string, attributes: Record<string, string>) =>
  Effect.map(Metric.snapshot, (metrics) => {
    const found = metrics.find(
      (metric) =>
        metric.id === name && Object.entries(attributes).every(([key, value]) => metric.attributes?.[key] === value)
    )
    return found !== undefined && "count" in found.state ? Number(found.state.count) : 0
  })

/**
 * A TCP proxy to the API server that can freeze the connections open at that
 * moment: they stay open but pass no more bytes, as a watch behind a dead NAT
 * entry or a hung load balancer. New connections work normally.
 */
const stallingProxy = (target: URL) =>
  Effect.gen(function* () {
    const open = new Set<{ readonly client: Socket; readonly upstream: Socket }>()
    const server = createServer((client) => {
      const upstream = tcpConnect(Number(target.port), target.hostname)
      const pair = { client, upstream }
      open.add(pair)
      client.pipe(upstream)
      upstream.pipe(client)
      const close = () => {
        open.delete(pair)
        client.destroy()
        upstream.destroy()
      }
      client.on("error", close).on("close", close)
      upstream.on("error", close).on("close", close)
    })
    const port = yield* Effect.acquireRelease(
      Effect.callback<number>((resume) => {
        server.listen(0, "127.0.0.1", () => {
          const address = server.address()
          resume(Effect.succeed(typeof address === "object" && address !== null ? address.port : 0))
        })
      }),
      () =>
        Effect.sync(() => {
          for (const { client, upstream } of open) {
            client.destroy()
            upstream.destroy()
          }
          server.close()
        })
    )
    const freeze = Effect.sync(() => {
      for (const { client, upstream } of open) {
        upstream.unpipe(client)
        client.unpipe(upstream)
        upstream.pause()
        client.pause()
      }
      return open.size
    })
    return { url: `https://127.0.0.1:${port}`, freeze }
  })

/** A KubeClient that reaches the API server through `server` instead (same credentials). */
const clientVia = (kubeconfigPath: string, server: string) =>
  Effect.gen(function* () {
    const connection = yield* Connection.resolve({ _tag: "File", path: kubeconfigPath })
    // Built into the caller's Scope (the client must outlive this function), and
    // fresh: KubeClient.layer's HTTP client is already built in this context and would be
    // reused. HTTP/1.1 so that each watch has its own connection: over HTTP/2 all
    // requests share one connection, and a dead one is only dropped by undici's PING
    // check (every 60 s), whatever the reflector does. That is the HTTP client's job.
    const http = yield* Layer.build(
      Layer.fresh(UndiciTransport.layer({ connect: { ...connection.tls }, allowH2: false }))
    )
    return yield* KubeClient.make({ ...connection, server }).pipe(Effect.provideContext(http))
  })

/** Captures log lines ("Level message") of everything run inside, besides the usual output. */
const capturingLogs = Effect.gen(function* () {
  const lines: Array<string> = []
  const capture = Logger.make((options) => {
    const message = Array.isArray(options.message) ? options.message.map(String).join(" ") : String(options.message)
    lines.push(`${options.logLevel} ${message}`)
  })
  const loggers = yield* References.CurrentLoggers
  return { lines, loggers: new Set([...loggers, capture]) }
})

const Env = Layer.unwrap(
  Effect.gen(function* () {
    const controlPlane = yield* ControlPlane
    return KubeClient.layer({ _tag: "File", path: controlPlane.kubeconfigPath })
  })
).pipe(
  Layer.provideMerge(
    ControlPlane.layer({ controllerManager: false, extraApiServerArgs: ["--etcd-compaction-interval=1s"] })
  )
)

layer(Env, { timeout: "5 minutes", excludeTestServices: true })("Reflector against a real API server", (it) => {
  describe("list and watch", () => {
    it.effect("syncs the initial list, then sees creates, updates and deletes", () =>
      Effect.gen(function* () {
        const kube = yield* KubeClient
        const ns = yield* freshNamespace("sync")
        yield* kube.create(ConfigMap, configMap(ns, "a", { v: "1" }))
        yield* kube.create(ConfigMap, configMap(ns, "b", { v: "1" }))
        const reflector = yield* Reflector.make({ resource: ConfigMap, namespace: ns })
        yield* reflector.synced
        assert.deepStrictEqual(names(yield* reflector.store.list()), ["a", "b"])
        const changes = yield* collect(reflector, { replay: false })

        yield* kube.create(ConfigMap, configMap(ns, "c", { v: "1" }))
        yield* kube.mergePatch(ConfigMap, "a", { data: { v: "2" } }, { namespace: ns })
        yield* kube.delete(ConfigMap, "b", { namespace: ns })
        yield* until("the three changes", changes.has("Deleted b"))
        assert.deepStrictEqual(changes.lines(), ["Added c", "Modified a", "Deleted b"])
        const a = yield* reflector.store.get(`${ns}/a`)
        assert.strictEqual(Option.getOrUndefined(a)?.data?.v, "2")
        assert.deepStrictEqual(names(yield* reflector.store.list()), ["a", "c"])
        // The watch's resourceVersion follows the last event.
        const version = yield* reflector.resourceVersion
        assert.isTrue(Option.isSome(version))
      })
    )

    it.effect("filters by label selector, and drops objects that stop matching", () =>
      Effect.gen(function* () {
        const kube = yield* KubeClient
        const ns = yield* freshNamespace("labels")
        yield* kube.create(ConfigMap, configMap(ns, "in", {}, { app: "cached" }))
        yield* kube.create(ConfigMap, configMap(ns, "out", {}, { app: "other" }))
        const reflector = yield* Reflector.make({ resource: ConfigMap, namespace: ns, labelSelector: "app=cached" })
        yield* reflector.synced
        assert.deepStrictEqual(names(yield* reflector.store.list()), ["in"])
        const changes = yield* collect(reflector, { replay: false })

        yield* kube.create(ConfigMap, configMap(ns, "later", {}, { app: "cached" }))
        yield* kube.create(ConfigMap, configMap(ns, "ignored", {}, { app: "other" }))
        yield* kube.mergePatch(ConfigMap, "in", { metadata: { labels: { app: "moved" } } }, { namespace: ns })
        yield* until("the relabelled object to leave the cache", changes.has("Deleted in"))
        assert.deepStrictEqual(changes.lines(), ["Added later", "Deleted in"])
        assert.deepStrictEqual(names(yield* reflector.store.list()), ["later"])
      })
    )

    it.effect("logs and skips objects that do not match the Schema, naming the object and field", () =>
      Effect.gen(function* () {
        const kube = yield* KubeClient
        const ns = yield* freshNamespace("malformed")
        // A narrower view of ConfigMaps: `data.size` must be a numeric string.
        const Sized = Resource.make({
          group: "",
          version: "v1",
          kind: "ConfigMap",
          plural: "configmaps",
          namespaced: true,
          fields: { data: Schema.Struct({ size: Schema.FiniteFromString }) }
        })
        yield* kube.create(ConfigMap, configMap(ns, "broken-early", { size: "large" }))
        const logs = yield* capturingLogs
        const reflector = yield* Reflector.make({ resource: Sized, namespace: ns }).pipe(
          Effect.provideService(References.CurrentLoggers, logs.loggers)
        )
        yield* reflector.synced
        assert.strictEqual(yield* reflector.store.size, 0)
        yield* kube.create(ConfigMap, configMap(ns, "broken-late", { size: "huge" }))
        yield* kube.create(ConfigMap, configMap(ns, "fine", { size: "3" }))
        yield* until(
          "the valid object",
          Effect.map(reflector.store.keys, (keys) => keys.includes(`${ns}/fine`))
        )
        const skipped = logs.lines.filter((line) => line.includes("skipping malformed object"))
        assert.strictEqual(skipped.length, 2, skipped.join("\n"))
        assert.include(skipped[0] ?? "", `${ns}/broken-early`)
        assert.include(skipped[1] ?? "", `${ns}/broken-late`)
        assert.include(skipped[1] ?? "", "size")
        assert.strictEqual(Option.getOrUndefined(yield* reflector.store.get(`${ns}/fine`))?.data.size, 3)
      })
    )
  })

  describe("shared caches", () => {
    it.effect("cover exactly the Manager's namespaces, one watch each; cluster-scoped kinds cluster-wide", () =>
      Effect.gen(function* () {
        const kube = yield* KubeClient
        const [a, b, outside] = [
          yield* freshNamespace("ns-a"),
          yield* freshNamespace("ns-b"),
          yield* freshNamespace("ns-c")
        ]
        for (const ns of [a, b, outside]) yield* kube.create(ConfigMap, configMap(ns, "settings", {}))
        const caches = yield* Caches.make({ namespaces: [b, a, a] })
        const configMaps = yield* caches.get(ConfigMap, { labelSelector: "!skip" })
        const namespaces = yield* caches.get(Namespace)
        assert.isTrue(yield* caches.waitForSync({ timeout: "30 seconds" }))
        const sorted = [a, b].sort()
        assert.strictEqual(configMaps.description, `ConfigMap namespaces=${sorted.join(",")} labels=!skip`)
        assert.deepStrictEqual(
          (yield* configMaps.list((cm) => cm.metadata.name === "settings")).map((cm) => cm.metadata.namespace).sort(),
          sorted
        )
        assert.isTrue(Option.isSome(yield* configMaps.get(`${b}/settings`)))
        assert.isTrue(Option.isNone(yield* configMaps.get(`${outside}/settings`)), "not watched, so not cached")
        assert.deepStrictEqual(yield* caches.descriptions, [
          ...sorted.map((ns) => `ConfigMap namespace=${ns} labels=!skip`),
          "Namespace all-namespaces"
        ])
        assert.isTrue((yield* namespaces.list()).some((ns) => ns.metadata.name === outside))
      })
    )

    it.effect("gives every caller of one kind and selector the same cache, and waits for all to sync", () =>
      Effect.gen(function* () {
        const kube = yield* KubeClient
        const ns = yield* freshNamespace("shared")
        yield* kube.create(ConfigMap, configMap(ns, "plain", {}))
        yield* kube.create(ConfigMap, configMap(ns, "tagged", {}, { tier: "gold" }))
        const caches = yield* Caches.make({ namespaces: [ns] })
        const first = yield* caches.get(ConfigMap)
        const second = yield* caches.get(ConfigMap, {})
        const gold = yield* caches.get(ConfigMap, { labelSelector: "tier=gold" })
        assert.strictEqual(first, second)
        assert.notStrictEqual(first, gold)
        assert.isTrue(yield* caches.waitForSync({ timeout: "30 seconds" }))
        assert.isTrue(yield* caches.isSynced)
        assert.deepStrictEqual(names(yield* first.list()), ["plain", "tagged"])
        assert.deepStrictEqual(names(yield* gold.list()), ["tagged"])
        assert.deepStrictEqual(yield* caches.descriptions, [
          `ConfigMap namespace=${ns}`,
          `ConfigMap namespace=${ns} labels=tier=gold`
        ])
      })
    )
  })

  describe("resilience", () => {
    it.effect("survives an API server restart without missing a change or a deletion made meanwhile", () =>
      Effect.gen(function* () {
        const kube = yield* KubeClient
        const controlPlane = yield* ControlPlane
        const ns = yield* freshNamespace("restart")
        yield* kube.create(ConfigMap, configMap(ns, "kept", { v: "1" }))
        yield* kube.create(ConfigMap, configMap(ns, "doomed", { v: "1" }))
        const reflector = yield* Reflector.make({ resource: ConfigMap, namespace: ns })
        yield* reflector.synced
        const changes = yield* collect(reflector, { replay: false })

        yield* controlPlane.restartApiServer
        // Right after the restart, while the reflector is still reconnecting.
        yield* kube.delete(ConfigMap, "doomed", { namespace: ns })
        yield* kube.mergePatch(ConfigMap, "kept", { data: { v: "2" } }, { namespace: ns })
        yield* kube.create(ConfigMap, configMap(ns, "new", { v: "1" }))

        yield* until(
          "the cache to catch up",
          Effect.map(reflector.store.list(), (objects) => names(objects).join() === "kept,new")
        )
        const kept = yield* reflector.store.get(`${ns}/kept`)
        assert.strictEqual(Option.getOrUndefined(kept)?.data?.v, "2")
        const lines = changes.lines().map((line) => line.replace(/\?$/u, ""))
        assert.includeMembers(lines, ["Deleted doomed", "Modified kept", "Added new"])
      })
    )

    it.effect("relists when its resourceVersion has expired, emitting Deleted for objects gone meanwhile", () =>
      Effect.gen(function* () {
        const kube = yield* KubeClient
        const controlPlane = yield* ControlPlane
        const ns = yield* freshNamespace("expired")
        for (const name of ["a", "b", "c"]) yield* kube.create(ConfigMap, configMap(ns, name, { v: "1" }))
        // A snapshot, as a reflector that stopped watching here would hold it.
        const snapshot = yield* kube.list(ConfigMap, { namespace: ns })
        yield* kube.delete(ConfigMap, "a", { namespace: ns })
        yield* kube.mergePatch(ConfigMap, "b", { data: { v: "2" } }, { namespace: ns })
        yield* kube.create(ConfigMap, configMap(ns, "d", { v: "1" }))
        for (let i = 0; i < 20; i++) {
          yield* kube.mergePatch(ConfigMap, "c", { data: { v: String(i + 2) } }, { namespace: ns })
        }
        // A restarted API server's watch cache starts after these writes, and etcd
        // has compacted them: the snapshot's resourceVersion is now too old.
        yield* controlPlane.restartApiServer
        yield* until("the snapshot's resourceVersion to expire", expired(kube, ns, snapshot.resourceVersion))

        const reflector = yield* Reflector.make({
          resource: ConfigMap,
          namespace: ns,
          resume: { resourceVersion: snapshot.resourceVersion, objects: snapshot.items }
        })
        const changes = yield* collect(reflector, { replay: false })
        yield* until(
          "the relist",
          Effect.map(reflector.store.list(), (objects) => names(objects).join() === "b,c,d")
        )
        assert.includeMembers(changes.lines(), ["Deleted a?", "Modified b", "Modified c", "Added d"])
        const deletedA = changes.seen.find((change) => change.type === "Deleted" && change.object.metadata.name === "a")
        assert.strictEqual(deletedA?.object.data?.v, "1", "the last state the cache saw")
        const relists = yield* counter("reflector_relists_total", { cache: reflector.description })
        assert.isAtLeast(relists, 1)
      })
    )

    it.effect("restarts a stalled watch through its watchdog", () =>
      Effect.gen(function* () {
        const kube = yield* KubeClient
        const controlPlane = yield* ControlPlane
        const ns = yield* freshNamespace("stall")
        const proxy = yield* stallingProxy(new URL(controlPlane.server))
        const viaProxy = yield* clientVia(controlPlane.kubeconfigPath, proxy.url)
        const reflector = yield* Reflector.make({ resource: ConfigMap, namespace: ns, watchdog: "3 seconds" }).pipe(
          Effect.provideService(KubeClient, viaProxy)
        )
        yield* reflector.synced
        const changes = yield* collect(reflector, { replay: false })
        yield* kube.create(ConfigMap, configMap(ns, "before", {}))
        yield* until("the object created before the stall", changes.has("Added before"))

        const frozen = yield* proxy.freeze
        assert.isAtLeast(frozen, 1)
        yield* kube.create(ConfigMap, configMap(ns, "during", {}))
        // Only a new watch can deliver this: the old connection passes nothing.
        yield* until("the object created during the stall", changes.has("Added during"), "45 seconds")
        const restarts = yield* counter("reflector_watch_restarts_total", {
          cache: reflector.description,
          reason: "watchdog"
        })
        assert.isAtLeast(restarts, 1)
      })
    )
  })
})
