import { KubeClient, type KubeClientShape, Resource, type WriteOptions } from "@db-backup-operator/kube"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { Status } from "../src/helpers/index.ts"
import { dyingKube } from "./fixtures/kube.ts"

// What patchStatus sends (and when it sends nothing), against a recording client.
// The API server's side is checked in helpers.integration.test.ts.

const Widget = Resource.custom({
  group: "example.com",
  version: "v1",
  kind: "Widget",
  plural: "widgets",
  namespaced: true,
  spec: Schema.Struct({ size: Schema.Int }),
  status: Schema.Struct({
    observedGeneration: Schema.optionalKey(Schema.Int),
    phase: Schema.optionalKey(Schema.String),
    lastRun: Schema.optionalKey(Schema.Struct({ at: Schema.String, ok: Schema.Boolean }))
  })
})
type Widget = Resource.Type<typeof Widget>

interface Patch {
  readonly name: string
  readonly body: unknown
  readonly options: WriteOptions | undefined
}

const recording = () => {
  const patches: Array<Patch> = []
  const client: KubeClientShape = {
    ...dyingKube("not used by patchStatus"),
    mergePatch: (resource, name, body, options) => {
      patches.push({ name, body, options })
      return KubeClient.decodeObject(resource, { metadata: { name, namespace: "ns" }, spec: { size: 1 } })
    }
  }
  return { layer: Layer.succeed(KubeClient, client), patches }
}

const widget: Widget = {
  metadata: { name: "w", namespace: "ns", generation: 3, resourceVersion: "41" },
  spec: { size: 1 },
  status: { observedGeneration: 3, phase: "Ready", lastRun: { at: "t1", ok: true } }
}

describe("Status.patchStatus", () => {
  it.effect("sends nothing when the status is what was read", () =>
    Effect.gen(function* () {
      const fake = recording()
      const result = yield* Status.patchStatus(Widget, widget, {
        phase: "Ready",
        lastRun: { at: "t1", ok: true }
      }).pipe(Effect.provide(fake.layer))
      assert.strictEqual(result, widget)
      assert.strictEqual(fake.patches.length, 0)
    })
  )

  it.effect("patches the status subresource with only the difference and the generation", () =>
    Effect.gen(function* () {
      const fake = recording()
      const newer: Widget = { ...widget, metadata: { ...widget.metadata, generation: 4 } }
      yield* Status.patchStatus(Widget, newer, { phase: "Ready", lastRun: { at: "t2", ok: true } }).pipe(
        Effect.provide(fake.layer)
      )
      assert.deepStrictEqual(fake.patches, [
        {
          name: "w",
          body: { status: { observedGeneration: 4, lastRun: { at: "t2" } } },
          options: { subresource: "status", namespace: "ns" }
        }
      ])
    })
  )

  it.effect("deletes fields left out, and can lock on the resourceVersion", () =>
    Effect.gen(function* () {
      const fake = recording()
      yield* Status.patchStatus(Widget, widget, { phase: "Failed" }, { optimisticLock: true, fieldManager: "w" }).pipe(
        Effect.provide(fake.layer)
      )
      assert.deepStrictEqual(fake.patches[0]?.body, {
        metadata: { resourceVersion: "41" },
        status: { phase: "Failed", lastRun: null }
      })
      assert.deepStrictEqual(fake.patches[0]?.options, { subresource: "status", namespace: "ns", fieldManager: "w" })
    })
  )

  it.effect("writes a first status, and refuses an object without a name", () =>
    Effect.gen(function* () {
      const fake = recording()
      const fresh: Widget = { metadata: { name: "w", namespace: "ns", generation: 1 }, spec: { size: 1 } }
      yield* Status.patchStatus(Widget, fresh, { phase: "Pending" }).pipe(Effect.provide(fake.layer))
      assert.deepStrictEqual(fake.patches[0]?.body, { status: { phase: "Pending", observedGeneration: 1 } })
      const error = yield* Effect.flip(
        Status.patchStatus(Widget, { metadata: {}, spec: { size: 1 } }, { phase: "x" }).pipe(Effect.provide(fake.layer))
      )
      assert.strictEqual(error._tag, "BadRequest")
    })
  )
})
