import { Condition, Job, type KubeObject } from "@db-backup-operator/kube"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { TestClock } from "effect/testing"
import { Conditions, Events, KubeTime, MergePatch, Owners } from "../src/helpers/index.ts"
import { Lru } from "../src/helpers/lru.ts"
import { KeyedTokenBucket } from "../src/helpers/tokenBucket.ts"

const t0 = Date.parse("2025-01-01T00:00:00Z")
const t1 = Date.parse("2025-01-01T00:05:00Z")

describe("Conditions.setCondition (metav1 rules)", () => {
  const ready = {
    type: "Ready",
    status: "False",
    reason: "Pending",
    message: "waiting",
    observedGeneration: 1
  } as const

  it("appends a new condition stamped with now", () => {
    const conditions = Conditions.setCondition(undefined, ready, t0)
    assert.deepStrictEqual(conditions, [{ ...ready, lastTransitionTime: "2025-01-01T00:00:00Z" }])
  })

  it("keeps lastTransitionTime while the status stays, updating reason, message and generation in place", () => {
    const first = Conditions.setCondition(
      Conditions.setCondition(undefined, { type: "Other", status: "True", reason: "Fine", message: "" }, t0),
      ready,
      t0
    )
    const next = Conditions.setCondition(
      first,
      { type: "Ready", status: "False", reason: "SecretMissing", message: "no secret", observedGeneration: 2 },
      t1
    )
    assert.deepStrictEqual(
      next.map((c) => c.type),
      ["Other", "Ready"]
    )
    assert.deepStrictEqual(Conditions.findCondition(next, "Ready"), {
      type: "Ready",
      status: "False",
      reason: "SecretMissing",
      message: "no secret",
      observedGeneration: 2,
      lastTransitionTime: "2025-01-01T00:00:00Z"
    })
  })

  it("moves lastTransitionTime when the status changes", () => {
    const first = Conditions.setCondition(undefined, ready, t0)
    const next = Conditions.setCondition(first, { ...ready, status: "True", reason: "Succeeded" }, t1)
    assert.strictEqual(Conditions.findCondition(next, "Ready")?.lastTransitionTime, "2025-01-01T00:05:00Z")
    assert.isTrue(Conditions.isTrue(next, "Ready"))
    assert.isFalse(Conditions.isFalse(next, "Ready"))
  })

  it("honours an explicit lastTransitionTime only on a transition", () => {
    const first = Conditions.setCondition(undefined, ready, t0)
    const same = Conditions.setCondition(first, { ...ready, lastTransitionTime: "2030-01-01T00:00:00Z" }, t1)
    assert.strictEqual(same, first)
    const changed = Conditions.setCondition(
      first,
      { ...ready, status: "Unknown", lastTransitionTime: "2030-01-01T00:00:00Z" },
      t1
    )
    assert.strictEqual(changed[0]?.lastTransitionTime, "2030-01-01T00:00:00Z")
  })

  it("returns the same array when nothing changed, so status writes can be skipped", () => {
    const first = Conditions.setCondition(undefined, ready, t0)
    assert.strictEqual(Conditions.setCondition(first, ready, t1), first)
    assert.notStrictEqual(Conditions.setCondition(first, { ...ready, message: "still waiting" }, t1), first)
  })

  it("drops observedGeneration when the new condition has none", () => {
    const first = Conditions.setCondition(undefined, ready, t0)
    const next = Conditions.setCondition(
      first,
      { type: "Ready", status: "False", reason: "Pending", message: "waiting" },
      t1
    )
    assert.isFalse("observedGeneration" in (next[0] ?? {}))
  })

  it("finds, tests and removes conditions", () => {
    const conditions = Conditions.setCondition(undefined, ready, t0)
    assert.isUndefined(Conditions.findCondition(conditions, "Missing"))
    assert.isFalse(Conditions.isTrue(undefined, "Ready"))
    assert.isTrue(Conditions.isFalse(conditions, "Ready"))
    assert.deepStrictEqual(Conditions.removeCondition(conditions, "Ready"), [])
    assert.strictEqual(Conditions.removeCondition(conditions, "Missing"), conditions)
  })

  it.effect("setConditionNow reads the Clock", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(t1)
      const conditions = yield* Conditions.setConditionNow([], ready)
      assert.strictEqual(conditions[0]?.lastTransitionTime, "2025-01-01T00:05:00Z")
    })
  )
})

describe("Condition schema", () => {
  const valid = {
    type: "backup.example.com/Ready",
    status: "True",
    reason: "Succeeded",
    message: "",
    lastTransitionTime: "2025-01-01T00:00:00Z"
  }
  const decode = Schema.decodeUnknownOption(Condition)

  it("accepts metav1 conditions and rejects what the API would", () => {
    assert.isTrue(decode(valid)._tag === "Some")
    assert.isTrue(decode({ ...valid, status: "Maybe" })._tag === "None")
    assert.isTrue(decode({ ...valid, reason: "not camel case" })._tag === "None")
    assert.isTrue(decode({ ...valid, reason: "" })._tag === "None")
    assert.isTrue(decode({ ...valid, type: "-bad" })._tag === "None")
    assert.isTrue(decode({ ...valid, observedGeneration: -1 })._tag === "None")
  })

  it("emits the patterns into JSON Schema (for the CRD)", () => {
    const document = JSON.stringify(Schema.toJsonSchemaDocument(Condition))
    assert.include(document, "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    assert.include(document, '"enum":["True","False","Unknown"]')
  })
})

describe("Owners", () => {
  const owner: KubeObject = {
    apiVersion: "example.com/v1",
    kind: "Widget",
    metadata: { name: "w", namespace: "ns", uid: "uid-1" }
  }

  it.effect("builds a controller reference", () =>
    Effect.gen(function* () {
      const reference = yield* Owners.controllerReference(owner)
      assert.deepStrictEqual(reference, {
        apiVersion: "example.com/v1",
        kind: "Widget",
        name: "w",
        uid: "uid-1",
        controller: true,
        blockOwnerDeletion: true
      })
      // List items often lack apiVersion/kind: the Resource supplies them.
      const fromResource = yield* Owners.controllerReference({ metadata: { name: "j", uid: "uid-2" } }, Job)
      assert.strictEqual(fromResource.apiVersion, "batch/v1")
      assert.strictEqual(fromResource.kind, "Job")
    })
  )

  it.effect("refuses owners that cannot be referenced", () =>
    Effect.gen(function* () {
      const noKind = yield* Effect.flip(Owners.controllerReference({ metadata: { name: "w", uid: "u" } }))
      assert.strictEqual(noKind._tag, "InvalidOwner")
      const unsaved = yield* Effect.flip(Owners.controllerReference({ ...owner, metadata: { name: "w" } }))
      assert.include(unsaved.message, "uid")
    })
  )

  it.effect("finds the controller and compares owners by uid", () =>
    Effect.gen(function* () {
      const reference = yield* Owners.controllerReference(owner)
      const child: KubeObject = {
        metadata: {
          name: "child",
          ownerReferences: [{ apiVersion: "v1", kind: "ConfigMap", name: "other", uid: "uid-9" }, reference]
        }
      }
      assert.deepStrictEqual(Owners.controllerOf(child), reference)
      assert.isTrue(Owners.isControlledBy(child, owner))
      // Same name, new uid: a recreated owner does not control the old child.
      assert.isFalse(Owners.isControlledBy(child, { ...owner, metadata: { ...owner.metadata, uid: "uid-new" } }))
      assert.isFalse(Owners.isControlledBy({ metadata: { name: "orphan" } }, owner))
      assert.isUndefined(Owners.controllerOf({ metadata: { ownerReferences: [{ ...reference, controller: false }] } }))
    })
  )

  it.effect("withControllerReference keeps other owners and refuses a second controller", () =>
    Effect.gen(function* () {
      const plain = { apiVersion: "v1", kind: "ConfigMap", name: "cm", uid: "uid-9" }
      const child: KubeObject = { metadata: { name: "child", ownerReferences: [plain] } }
      const references = yield* Owners.withControllerReference(child, owner)
      assert.strictEqual(references.length, 2)
      const again = yield* Owners.withControllerReference({ metadata: { ownerReferences: references } }, owner)
      assert.strictEqual(again.length, 2)
      const other = { ...owner, metadata: { ...owner.metadata, name: "w2", uid: "uid-2" } }
      const error = yield* Effect.flip(
        Owners.withControllerReference({ metadata: { ownerReferences: references } }, other)
      )
      assert.strictEqual(error._tag, "AlreadyOwned")
    })
  )
})

describe("MergePatch.createMergePatch", () => {
  it("diffs objects member by member and replaces arrays whole", () => {
    assert.isUndefined(MergePatch.createMergePatch({ a: 1, b: [1, 2] }, { b: [1, 2], a: 1 }))
    assert.deepStrictEqual(MergePatch.createMergePatch({ a: 1, b: { c: 2, d: 3 } }, { a: 1, b: { c: 4 } }), {
      b: { c: 4, d: null }
    })
    assert.deepStrictEqual(MergePatch.createMergePatch({ list: [1, 2] }, { list: [1] }), { list: [1] })
    assert.deepStrictEqual(MergePatch.createMergePatch({}, { nested: { x: 1 } }), { nested: { x: 1 } })
    assert.deepStrictEqual(MergePatch.createMergePatch({ gone: 1, kept: undefined }, {}), { gone: null })
  })
})

describe("KubeTime", () => {
  it("formats Time with seconds and MicroTime with microseconds", () => {
    assert.strictEqual(KubeTime.formatTime(t0 + 123), "2025-01-01T00:00:00Z")
    assert.strictEqual(KubeTime.formatMicroTime(t0 + 123), "2025-01-01T00:00:00.123000Z")
    assert.strictEqual(KubeTime.parseTime("2025-01-01T00:00:00.123000Z"), t0 + 123)
    assert.isUndefined(KubeTime.parseTime(null))
  })
})

describe("Lru and KeyedTokenBucket", () => {
  it("forgets the least recently used entry", () => {
    const lru = new Lru<string, number>(2)
    lru.set("a", 1)
    lru.set("b", 2)
    lru.get("a")
    lru.set("c", 3)
    assert.isTrue(lru.has("a"))
    assert.isFalse(lru.has("b"))
    assert.strictEqual(lru.size, 2)
  })

  it("allows a burst per key, then one per refill interval", () => {
    const bucket = new KeyedTokenBucket({ burst: 3, refillMillis: 1000, capacity: 10 })
    const taken = [1, 2, 3, 4].map(() => bucket.take("a", 0))
    assert.deepStrictEqual(taken, [true, true, true, false])
    assert.isTrue(bucket.take("b", 0))
    assert.isFalse(bucket.take("a", 999))
    assert.isTrue(bucket.take("a", 1000))
    assert.isFalse(bucket.take("a", 1000))
  })
})

describe("Events", () => {
  it("truncates notes to 1 KiB without splitting characters", () => {
    const ascii = Events.truncateUtf8("x".repeat(2000), 1024)
    assert.strictEqual(new TextEncoder().encode(ascii).length, 1024)
    assert.isTrue(ascii.endsWith("..."))
    const wide = Events.truncateUtf8("é".repeat(1000), 1024)
    assert.isAtMost(new TextEncoder().encode(wide).length, 1024)
    assert.isFalse(wide.includes("\uFFFD"))
    assert.strictEqual(Events.truncateUtf8("short", 1024), "short")
  })
})
