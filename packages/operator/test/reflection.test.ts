import type { ConfigMap } from "@db-backup-operator/kube"
import { KubeErrors } from "@db-backup-operator/kube"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Reflection from "../src/cache/Reflection.ts"
import * as Store from "../src/cache/Store.ts"
import { cm, summary } from "./fixtures/scriptedKube.ts"

describe("Reflection.apply", () => {
  it.effect("replaces the store with a list, emitting what changed since", () =>
    Effect.gen(function* () {
      const store = yield* Store.make<ConfigMap>()
      const first = yield* Reflection.apply(store, {
        _tag: "Listed",
        reason: "initial",
        objects: [cm("a", "1"), cm("b", "2")],
        resourceVersion: "10"
      })
      assert.deepStrictEqual(first.map(summary), ["Added ns/a@1", "Added ns/b@2"])
      const relisted = yield* Reflection.apply(store, {
        _tag: "Listed",
        reason: "relist",
        objects: [cm("b", "2"), cm("c", "3")],
        resourceVersion: "20"
      })
      assert.deepStrictEqual(relisted.map(summary), ["Deleted ns/a@1?", "Added ns/c@3"])
      assert.deepStrictEqual((yield* store.keys).toSorted(), ["ns/b", "ns/c"])
    })
  )

  it.effect("applies a watch event to its key", () =>
    Effect.gen(function* () {
      const store = yield* Store.make<ConfigMap>()
      yield* Reflection.apply(store, { _tag: "Watched", event: { type: "ADDED", object: cm("a", "1") } })
      const modified = yield* Reflection.apply(store, {
        _tag: "Watched",
        event: { type: "MODIFIED", object: cm("a", "2") }
      })
      assert.deepStrictEqual(modified.map(summary), ["Modified ns/a@1->2"])
      const deleted = yield* Reflection.apply(store, {
        _tag: "Watched",
        event: { type: "DELETED", object: cm("a", "3") }
      })
      assert.deepStrictEqual(deleted.map(summary), ["Deleted ns/a@3"])
      assert.strictEqual(yield* store.size, 0)
    })
  )

  it.effect("leaves the store alone for a malformed object", () =>
    Effect.gen(function* () {
      const store = yield* Store.make<ConfigMap>()
      yield* Reflection.apply(store, { _tag: "Watched", event: { type: "ADDED", object: cm("a", "1") } })
      const error = new KubeErrors.DecodeError({ kind: "ConfigMap", object: "ns/a", message: "ConfigMap ns/a: bad" })
      assert.deepStrictEqual(yield* Reflection.apply(store, { _tag: "Malformed", error, resourceVersion: "2" }), [])
      assert.deepStrictEqual(
        (yield* store.list()).map((object) => object.metadata.resourceVersion),
        ["1"]
      )
    })
  )
})
