import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ControlPlane } from "@db-backup-operator/testing"
import { assert, layer } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, Stream } from "effect"
import { ConfigMap, KubeClient, type KubeClientShape, Secret } from "../src/index.ts"

// The client against a real kube-apiserver: every verb, the typed errors the server
// really produces, and each way of authenticating (client certificate, bearer token,
// exec plugin).

const kubectl = (args: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const result = yield* (yield* ControlPlane).kubectl(args)
    if (result.exitCode !== 0) return yield* Effect.die(new Error(`kubectl ${args.join(" ")}: ${result.stderr}`))
    return result.stdout.trim()
  })

/** A kubeconfig for the same server and CA with a different user entry. */
const kubeconfigWithUser = (server: string, caPem: string, user: string) => {
  const file = join(mkdtempSync(join(tmpdir(), "kubeconfig-")), "config")
  writeFileSync(
    file,
    [
      "apiVersion: v1",
      "kind: Config",
      "clusters:",
      "- name: test",
      "  cluster:",
      `    server: ${server}`,
      `    certificate-authority-data: ${Buffer.from(caPem).toString("base64")}`,
      "users:",
      "- name: test",
      "  user:",
      user,
      "contexts:",
      "- name: test",
      "  context: { cluster: test, user: test }",
      "current-context: test",
      ""
    ].join("\n")
  )
  return file
}

const clientFor = (file: string) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(KubeClient.layer({ _tag: "File", path: file }))
    return Context.get(context, KubeClient)
  })

const configMap = (namespace: string, name: string, data: Record<string, string>) => ({
  metadata: { name, namespace },
  data
})

const admin = Layer.unwrap(
  Effect.gen(function* () {
    const controlPlane = yield* ControlPlane
    return KubeClient.layer({ _tag: "File", path: controlPlane.kubeconfigPath })
  })
)

layer(admin.pipe(Layer.provideMerge(ControlPlane.layer({ controllerManager: false }))), {
  excludeTestServices: true,
  timeout: "120 seconds"
})("KubeClient against a real API server", (it) => {
  it.effect("create, get, list with pages, merge/JSON patch, server-side apply, delete", () =>
    Effect.gen(function* () {
      const kube = yield* KubeClient
      yield* kubectl(["create", "namespace", "verbs"])
      for (const i of [1, 2, 3, 4, 5]) yield* kube.create(ConfigMap, configMap("verbs", `cm-${i}`, { i: String(i) }))
      const got = yield* kube.get(ConfigMap, "cm-3", { namespace: "verbs" })
      assert.deepStrictEqual(got.data, { i: "3" })
      assert.isString(got.metadata.uid)

      const listed = yield* kube.list(ConfigMap, { namespace: "verbs", limit: 2 })
      assert.deepStrictEqual(
        listed.items.map((item) => item.metadata.name),
        ["cm-1", "cm-2", "cm-3", "cm-4", "cm-5"]
      )
      assert.isAbove(Number(listed.resourceVersion), 0)

      const merged = yield* kube.mergePatch(ConfigMap, "cm-1", { data: { extra: "yes" } }, { namespace: "verbs" })
      assert.deepStrictEqual(merged.data, { i: "1", extra: "yes" })
      const patched = yield* kube.jsonPatch(
        ConfigMap,
        "cm-1",
        [
          { op: "test", path: "/data/extra", value: "yes" },
          { op: "remove", path: "/data/extra" }
        ],
        { namespace: "verbs" }
      )
      assert.deepStrictEqual(patched.data, { i: "1" })

      // Fields the ConfigMap Schema does not model survive our writes (a patch never replaces).
      yield* kubectl(["-n", "verbs", "patch", "configmap", "cm-2", "--type=merge", "-p", '{"binaryData":{"b":"AAE="}}'])
      yield* kube.mergePatch(ConfigMap, "cm-2", { data: { touched: "1" } }, { namespace: "verbs" })
      assert.strictEqual(yield* kubectl(["-n", "verbs", "get", "cm", "cm-2", "-o", "jsonpath={.binaryData.b}"]), "AAE=")

      const applied = yield* kube.apply(
        ConfigMap,
        "applied",
        { metadata: { name: "applied", namespace: "verbs" }, data: { owner: "a" } },
        { namespace: "verbs", fieldManager: "manager-a" }
      )
      assert.deepStrictEqual(applied.data, { owner: "a" })
      const conflict = yield* kube
        .apply(
          ConfigMap,
          "applied",
          { metadata: { name: "applied", namespace: "verbs" }, data: { owner: "b" } },
          { namespace: "verbs", fieldManager: "manager-b" }
        )
        .pipe(Effect.flip)
      assert.strictEqual(conflict._tag, "Conflict")
      const forced = yield* kube.apply(
        ConfigMap,
        "applied",
        { metadata: { name: "applied", namespace: "verbs" }, data: { owner: "b" } },
        { namespace: "verbs", fieldManager: "manager-b", force: true }
      )
      assert.deepStrictEqual(forced.data, { owner: "b" })

      yield* kube.delete(ConfigMap, "cm-5", { namespace: "verbs", propagationPolicy: "Background" })
      const gone = yield* kube.get(ConfigMap, "cm-5", { namespace: "verbs" }).pipe(Effect.flip)
      assert.strictEqual(gone._tag, "NotFound")
    })
  )

  it.effect("getMetadata reads a Secret's labels and annotations; the server sends no data with them", () =>
    Effect.gen(function* () {
      const kube = yield* KubeClient
      yield* kubectl(["create", "namespace", "metadata-only"])
      yield* kubectl(["-n", "metadata-only", "create", "secret", "generic", "s", "--from-literal=password=hunter2"])
      yield* kubectl(["-n", "metadata-only", "annotate", "secret", "s", "example.com/usable-by=team-a"])
      const metadata = yield* kube.getMetadata(Secret, "s", { namespace: "metadata-only" })
      assert.strictEqual(metadata.annotations?.["example.com/usable-by"], "team-a")
      assert.strictEqual(metadata.name, "s")
      // What getMetadata asks for: the server answers with a PartialObjectMetadata, no data.
      const raw = yield* kube.request({
        method: "GET",
        path: "/api/v1/namespaces/metadata-only/secrets/s",
        accept: "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
      })
      assert.strictEqual((raw as { kind?: string }).kind, "PartialObjectMetadata")
      assert.notInclude(JSON.stringify(raw), Buffer.from("hunter2").toString("base64"))
      const missing = yield* kube.getMetadata(Secret, "nope", { namespace: "metadata-only" }).pipe(Effect.flip)
      assert.strictEqual(missing._tag, "NotFound")
    })
  )

  it.effect("the server's errors arrive typed: AlreadyExists, Invalid with field causes, Conflict", () =>
    Effect.gen(function* () {
      const kube = yield* KubeClient
      yield* kubectl(["create", "namespace", "errors"])
      const cm = yield* kube.create(ConfigMap, configMap("errors", "one", {}))
      const exists = yield* kube.create(ConfigMap, configMap("errors", "one", {})).pipe(Effect.flip)
      assert.strictEqual(exists._tag, "AlreadyExists")

      const invalid = yield* kube.create(ConfigMap, configMap("errors", "Not_A_Name", {})).pipe(Effect.flip)
      assert.strictEqual(invalid._tag, "Invalid")
      if (invalid._tag === "Invalid") assert.strictEqual(invalid.causes[0]?.field, "metadata.name")

      // A stale resourceVersion and a uid precondition that does not match are both conflicts.
      yield* kube.mergePatch(ConfigMap, "one", { data: { a: "1" } }, { namespace: "errors" })
      const stale = yield* kube
        .mergePatch(
          ConfigMap,
          "one",
          { metadata: { resourceVersion: cm.metadata.resourceVersion }, data: { a: "2" } },
          { namespace: "errors" }
        )
        .pipe(Effect.flip)
      assert.strictEqual(stale._tag, "Conflict")
      const precondition = yield* kube
        .delete(ConfigMap, "one", {
          namespace: "errors",
          preconditions: { uid: "00000000-0000-0000-0000-000000000000" }
        })
        .pipe(Effect.flip)
      assert.strictEqual(precondition._tag, "Conflict")
    })
  )

  it.effect("watch delivers changes from a resourceVersion, with bookmarks requested", () =>
    Effect.gen(function* () {
      const kube = yield* KubeClient
      yield* kubectl(["create", "namespace", "watching"])
      const start = yield* kube.list(ConfigMap, { namespace: "watching" })
      const fiber = yield* kube
        .watch(ConfigMap, { namespace: "watching", resourceVersion: start.resourceVersion, timeoutSeconds: 30 })
        .pipe(
          Stream.filter((event) => event.type !== "BOOKMARK"),
          Stream.take(3),
          Stream.runCollect,
          Effect.forkChild({ startImmediately: true })
        )
      // No waiting for the watch to open: from `start.resourceVersion` it delivers every change made
      // since, whether made before or after the request reaches the server.
      yield* kube.create(ConfigMap, configMap("watching", "w", { v: "1" }))
      yield* kube.mergePatch(ConfigMap, "w", { data: { v: "2" } }, { namespace: "watching" })
      yield* kube.delete(ConfigMap, "w", { namespace: "watching" })
      const events = yield* Fiber.join(fiber)
      assert.deepStrictEqual(
        [...events].map((event) => (event.type === "MALFORMED" ? event.type : `${event.type} ${event.object.data?.v}`)),
        ["ADDED 1", "MODIFIED 2", "DELETED 2"]
      )
    })
  )

  it.effect("authenticates with a bearer token and with an exec plugin; RBAC denials are Forbidden", () =>
    Effect.gen(function* () {
      const controlPlane = yield* ControlPlane
      yield* kubectl(["create", "namespace", "auth"])
      yield* kubectl(["-n", "auth", "create", "serviceaccount", "reader"])
      yield* kubectl(["-n", "auth", "create", "role", "reader", "--verb=get,list", "--resource=configmaps"])
      yield* kubectl(["-n", "auth", "create", "rolebinding", "reader", "--role=reader", "--serviceaccount=auth:reader"])
      yield* kubectl(["-n", "auth", "create", "configmap", "visible", "--from-literal=k=v"])
      const token = yield* kubectl(["-n", "auth", "create", "token", "reader"])

      const check = (client: KubeClientShape) =>
        Effect.gen(function* () {
          const visible = yield* client.get(ConfigMap, "visible", { namespace: "auth" })
          assert.deepStrictEqual(visible.data, { k: "v" })
          const denied = yield* client.list(Secret, { namespace: "auth" }).pipe(Effect.flip)
          assert.strictEqual(denied._tag, "Forbidden")
        })

      yield* Effect.scoped(
        Effect.flatMap(
          clientFor(kubeconfigWithUser(controlPlane.server, controlPlane.caPem, `    token: ${token}`)),
          check
        )
      )

      // An exec credential plugin (as cloud providers ship): prints an ExecCredential with the token.
      const credential = JSON.stringify({
        apiVersion: "client.authentication.k8s.io/v1",
        kind: "ExecCredential",
        status: { token }
      })
      const plugin = join(mkdtempSync(join(tmpdir(), "exec-plugin-")), "credential.json")
      writeFileSync(plugin, credential)
      const exec = [
        "    exec:",
        "      apiVersion: client.authentication.k8s.io/v1",
        "      command: cat",
        `      args: ["${plugin}"]`,
        "      interactiveMode: Never"
      ].join("\n")
      yield* Effect.scoped(
        Effect.flatMap(clientFor(kubeconfigWithUser(controlPlane.server, controlPlane.caPem, exec)), check)
      )

      const rejected = yield* Effect.scoped(
        Effect.flatMap(
          clientFor(kubeconfigWithUser(controlPlane.server, controlPlane.caPem, "    token: not-a-token")),
          (client) => client.get(ConfigMap, "visible", { namespace: "auth" }).pipe(Effect.flip)
        )
      )
      assert.strictEqual(rejected._tag, "Unauthorized")
    })
  )
})
