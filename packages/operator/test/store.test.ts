import type { ConfigMap } from "@db-backup-operator/kube"
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Option } from "effect"
import { type Change, diff, eventChanges, Store } from "../src/cache/index.ts"

const cm = (
  name: string,
  resourceVersion: string,
  options: { readonly labels?: Record<string, string>; readonly uid?: string; readonly owner?: string } = {}
): ConfigMap => ({
  apiVersion: "v1",
  kind: "ConfigMap",
  metadata: {
    name,
    namespace: "ns",
    resourceVersion,
    uid: options.uid ?? `uid-${name}`,
    ...(options.labels === undefined ? {} : { labels: options.labels }),
    ...(options.owner === undefined
      ? {}
      : { ownerReferences: [{ apiVersion: "v1", kind: "Owner", name: options.owner, uid: `owner-${options.owner}` }] })
  },
  data: { v: resourceVersion }
})

// A readable summary of notifications: "Added ns/a@1", "Modified ns/a@1->2", "Deleted ns/a@1?" (? = final state unknown).
const summary = (changes: ReadonlyArray<Change<ConfigMap>>) =>
  changes.map((change) => {
    const key = `${change.object.metadata.namespace}/${change.object.metadata.name}`
    const version = change.object.metadata.resourceVersion
    if (change.type === "Modified") return `Modified ${key}@${change.old.metadata.resourceVersion}->${version}`
    if (change.type === "Deleted") return `Deleted ${key}@${version}${change.finalStateUnknown ? "?" : ""}`
    return `Added ${key}@${version}`
  })

const names = (objects: ReadonlyArray<ConfigMap>) => objects.map((object) => object.metadata.name ?? "").sort()

const byApp = (object: ConfigMap) => {
  const app = object.metadata.labels?.app
  return app === undefined ? [] : [app]
}

describe("diff (relist)", () => {
  it("emits Deleted for vanished keys, Added for new ones, Modified for changed ones, nothing for unchanged", () => {
    const current = new Map([
      ["ns/kept", cm("kept", "1")],
      ["ns/changed", cm("changed", "2")],
      ["ns/gone", cm("gone", "3")]
    ])
    const changes = diff(current, [cm("kept", "1"), cm("changed", "7"), cm("new", "8")])
    assert.deepStrictEqual(summary(changes), ["Deleted ns/gone@3?", "Modified ns/changed@2->7", "Added ns/new@8"])
  })

  it("reports a recreated object (same name, new uid) as Deleted then Added", () => {
    const current = new Map([["ns/a", cm("a", "1", { uid: "first" })]])
    const changes = diff(current, [cm("a", "5", { uid: "second" })])
    assert.deepStrictEqual(summary(changes), ["Deleted ns/a@1?", "Added ns/a@5"])
    assert.strictEqual(changes[0]?.object.metadata.uid, "first")
    assert.strictEqual(changes[1]?.object.metadata.uid, "second")
  })

  it("empties the cache when the list is empty, and fills an empty cache", () => {
    assert.deepStrictEqual(summary(diff(new Map([["ns/a", cm("a", "1")]]), [])), ["Deleted ns/a@1?"])
    assert.deepStrictEqual(summary(diff(new Map(), [cm("a", "1"), cm("b", "2")])), ["Added ns/a@1", "Added ns/b@2"])
    assert.deepStrictEqual(diff(new Map(), []), [])
  })
})

describe("eventChanges (watch)", () => {
  it("treats ADDED and MODIFIED as upserts and skips a version already cached", () => {
    assert.deepStrictEqual(summary(eventChanges(undefined, { type: "MODIFIED", object: cm("a", "1") })), [
      "Added ns/a@1"
    ])
    assert.deepStrictEqual(summary(eventChanges(cm("a", "1"), { type: "ADDED", object: cm("a", "2") })), [
      "Modified ns/a@1->2"
    ])
    assert.deepStrictEqual(eventChanges(cm("a", "2"), { type: "MODIFIED", object: cm("a", "2") }), [])
  })

  it("reports a DELETED event with the final state the server sent", () => {
    assert.deepStrictEqual(summary(eventChanges(cm("a", "1"), { type: "DELETED", object: cm("a", "4") })), [
      "Deleted ns/a@4"
    ])
    assert.deepStrictEqual(summary(eventChanges(undefined, { type: "DELETED", object: cm("a", "4") })), [
      "Deleted ns/a@4"
    ])
  })
})

describe("Store", () => {
  it.effect("gets, lists, filters and counts objects by namespace/name", () =>
    Effect.gen(function* () {
      const store = yield* Store.make<ConfigMap>()
      yield* store.apply({ type: "ADDED", object: cm("a", "1", { labels: { app: "x" } }) })
      yield* store.apply({ type: "ADDED", object: cm("b", "2") })
      assert.strictEqual(yield* store.size, 2)
      assert.deepStrictEqual(yield* store.keys, ["ns/a", "ns/b"])
      const a = yield* store.reader.get("ns/a")
      assert.isTrue(Option.isSome(a))
      assert.strictEqual(Option.getOrUndefined(a)?.metadata.resourceVersion, "1")
      assert.isTrue(Option.isNone(yield* store.get("ns/missing")))
      assert.deepStrictEqual(names(yield* store.list()), ["a", "b"])
      assert.deepStrictEqual(names(yield* store.list((o) => o.metadata.labels?.app === "x")), ["a"])
      yield* store.apply({ type: "MODIFIED", object: cm("a", "3") })
      assert.strictEqual(Option.getOrUndefined(yield* store.get("ns/a"))?.metadata.resourceVersion, "3")
      yield* store.apply({ type: "DELETED", object: cm("a", "4") })
      assert.isTrue(Option.isNone(yield* store.get("ns/a")))
      assert.strictEqual(yield* store.size, 1)
    })
  )

  it.effect("keeps an index current through adds, updates and deletes", () =>
    Effect.gen(function* () {
      const store = yield* Store.make<ConfigMap>()
      yield* store.addIndex("app", byApp)
      yield* store.apply({ type: "ADDED", object: cm("a", "1", { labels: { app: "x" } }) })
      yield* store.apply({ type: "ADDED", object: cm("b", "1", { labels: { app: "x" } }) })
      yield* store.apply({ type: "ADDED", object: cm("c", "1") })
      assert.deepStrictEqual(names(yield* store.byIndex("app", "x")), ["a", "b"])
      yield* store.apply({ type: "MODIFIED", object: cm("b", "2", { labels: { app: "y" } }) })
      assert.deepStrictEqual(names(yield* store.byIndex("app", "x")), ["a"])
      assert.deepStrictEqual(names(yield* store.byIndex("app", "y")), ["b"])
      yield* store.apply({ type: "DELETED", object: cm("a", "3") })
      assert.deepStrictEqual(yield* store.byIndex("app", "x"), [])
      assert.deepStrictEqual(yield* store.indexValues("app"), ["y"])
      assert.deepStrictEqual(yield* store.byIndex("app", "nothing"), [])
    })
  )

  it.effect("builds an index added later from the objects already cached, e.g. by owner uid", () =>
    Effect.gen(function* () {
      const store = yield* Store.make<ConfigMap>()
      yield* store.replace([
        cm("a", "1", { owner: "o1" }),
        cm("b", "1", { owner: "o1" }),
        cm("c", "1", { owner: "o2" })
      ])
      yield* store.addIndex("owner", (o) => (o.metadata.ownerReferences ?? []).map((ref) => ref.uid))
      assert.deepStrictEqual(names(yield* store.byIndex("owner", "owner-o1")), ["a", "b"])
      assert.deepStrictEqual(names(yield* store.byIndex("owner", "owner-o2")), ["c"])
    })
  )

  it.effect("leaves an object out of an index whose indexer throws", () =>
    Effect.gen(function* () {
      const store = yield* Store.make<ConfigMap>()
      yield* store.addIndex("fragile", (o) => {
        if (o.metadata.name === "bad") throw new Error("boom")
        return ["all"]
      })
      yield* store.replace([cm("good", "1"), cm("bad", "1")])
      assert.deepStrictEqual(names(yield* store.byIndex("fragile", "all")), ["good"])
      assert.strictEqual(yield* store.size, 2)
    })
  )

  it.effect("dies with a clear message when reading an index that was never added", () =>
    Effect.gen(function* () {
      const store = yield* Store.make<ConfigMap>()
      const exit = yield* Effect.exit(store.byIndex("nope", "x"))
      assert.isTrue(Exit.isFailure(exit) && Cause.hasDies(exit.cause))
      if (Exit.isFailure(exit)) assert.include(String(Cause.squash(exit.cause)), 'no index "nope"')
    })
  )

  it.effect("replace applies the relist diff and returns its notifications", () =>
    Effect.gen(function* () {
      const store = yield* Store.make<ConfigMap>()
      yield* store.addIndex("app", byApp)
      const initial = yield* store.replace([
        cm("a", "1", { labels: { app: "x" } }),
        cm("b", "1", { labels: { app: "x" } }),
        cm("c", "1")
      ])
      assert.deepStrictEqual(summary(initial), ["Added ns/a@1", "Added ns/b@1", "Added ns/c@1"])
      const relisted = yield* store.replace([cm("b", "1", { labels: { app: "x" } }), cm("c", "5"), cm("d", "6")])
      assert.deepStrictEqual(summary(relisted), ["Deleted ns/a@1?", "Modified ns/c@1->5", "Added ns/d@6"])
      assert.deepStrictEqual(names(yield* store.list()), ["b", "c", "d"])
      assert.deepStrictEqual(names(yield* store.byIndex("app", "x")), ["b"])
    })
  )
})
