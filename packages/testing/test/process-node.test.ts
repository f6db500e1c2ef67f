import { KubeClient, type KubeClientShape, KubeErrors, type Pod } from "@db-backup-operator/kube"
import { NodeServices } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Effect, FileSystem, Layer, Result } from "effect"
import { containerArgv, expandReferences, lookPath, mappedCommand } from "../src/node/command.ts"
import { resolveEnv } from "../src/node/env.ts"
import { logTail, terminationMessage } from "../src/node/logs.ts"
import { type ContainerStatusJson, podPhase, podStatus, waitingStatus } from "../src/node/podStatus.ts"

describe("image mapping and argv", () => {
  it("maps an image exactly, then without digest and tag (a registry port is not a tag)", () => {
    const map = { "registry:5000/runner": "node main.ts", "runner:dev": "dev-runner" }
    assert.deepStrictEqual(mappedCommand(map, "registry:5000/runner:1.2@sha256:abc"), ["node", "main.ts"])
    assert.deepStrictEqual(mappedCommand(map, "runner:dev"), ["dev-runner"])
    assert.isUndefined(mappedCommand(map, "runner:prod"))
    assert.isUndefined(mappedCommand(map, "registry:5000/other"))
  })

  it("expands $(VAR) like the kubelet", () => {
    const env = { A: "x", B: "y z" }
    assert.strictEqual(expandReferences("$(A)-$(B)", env), "x-y z")
    assert.strictEqual(expandReferences("$(MISSING)", env), "$(MISSING)")
    assert.strictEqual(expandReferences("$$(A) $$ $", env), "$(A) $ $")
    assert.strictEqual(expandReferences("$(A", env), "$(A")
    assert.strictEqual(expandReferences("cost: $5", env), "cost: $5")
  })

  it("builds argv: mapped command unless the container sets one, then args", () => {
    const map = { runner: "node /repo/main.ts" }
    const argv = (container: Parameters<typeof containerArgv>[0]) => containerArgv(container, map, { NAME: "db" })
    assert.deepStrictEqual(Result.getOrThrow(argv({ name: "c", image: "runner", args: ["--db=$(NAME)"] })), [
      "node",
      "/repo/main.ts",
      "--db=db"
    ])
    assert.deepStrictEqual(
      Result.getOrThrow(argv({ name: "c", image: "runner", command: ["/bin/echo"], args: ["a b"] })),
      ["/bin/echo", "a b"]
    )
    assert.deepStrictEqual(Result.getOrThrow(argv({ name: "c", image: "busybox", command: ["/bin/true"] })), [
      "/bin/true"
    ])
    const missing = argv({ name: "c", image: "busybox", args: ["x"] })
    assert.isTrue(Result.isFailure(missing))
    if (Result.isFailure(missing)) assert.include(missing.failure, 'image "busybox" has no mapping')
  })

  it.effect("looks executables up in the container's PATH with runc's wording", () =>
    Effect.gen(function* () {
      assert.strictEqual(yield* lookPath("sh", { path: "/nonexistent:/bin", cwd: "/" }), "/bin/sh")
      const error = yield* lookPath("no-such-tool", { path: "/bin", cwd: "/" }).pipe(Effect.flip)
      assert.strictEqual(error, 'exec: "no-such-tool": executable file not found in $PATH')
    })
  )
})

const pod = (env: NonNullable<Pod["spec"]["containers"][number]["env"]>): Pod => ({
  metadata: { name: "job-1-abcde", namespace: "ns", uid: "u-1", labels: { app: "backup" } },
  spec: { nodeName: "process-node", containers: [{ name: "main", image: "runner", env }] }
})

/** A KubeClient that only serves GETs of the given objects (by plural/name). */
const fakeKube = (objects: Record<string, unknown>) => {
  const unsupported = () => Effect.die("not used by this test")
  const client: KubeClientShape = {
    server: "https://fake",
    get: (resource, name) => {
      const raw = objects[`${resource.plural}/${name}`]
      return raw === undefined
        ? Effect.fail(new KubeErrors.NotFound({ message: `${resource.plural} "${name}" not found`, request: "GET" }))
        : KubeClient.decodeObject(resource, raw)
    },
    getMetadata: unsupported,
    list: unsupported,
    watch: () => unsupported() as never,
    create: unsupported,
    mergePatch: unsupported,
    jsonPatch: unsupported,
    apply: unsupported,
    delete: unsupported,
    request: unsupported
  }
  return Layer.succeed(KubeClient, client)
}

const secret = {
  metadata: { name: "db", namespace: "ns" },
  data: { password: Buffer.from("s3cret pass").toString("base64") }
}
const configMap = { metadata: { name: "settings", namespace: "ns" }, data: { host: "db.local" } }

describe("env resolution", () => {
  const options = { base: { PATH: "/usr/bin" }, hostIP: "127.0.0.1" }

  it.effect("resolves values, Secret and ConfigMap keys, fieldRefs, and $(VAR) in order", () =>
    Effect.gen(function* () {
      const p = pod([
        { name: "PGPASSWORD", valueFrom: { secretKeyRef: { name: "db", key: "password" } } },
        { name: "PGHOST", valueFrom: { configMapKeyRef: { name: "settings", key: "host" } } },
        { name: "POD", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
        { name: "NS", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
        { name: "APP", valueFrom: { fieldRef: { fieldPath: "metadata.labels['app']" } } },
        { name: "IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
        { name: "URL", value: "postgres://$(PGHOST)/$(NS)?$(LATER)" },
        { name: "LATER", value: "x" },
        { name: "OPT", valueFrom: { secretKeyRef: { name: "absent", key: "k", optional: true } } }
      ])
      const container = p.spec.containers[0]
      assert.isDefined(container)
      if (container === undefined) return
      const env = yield* resolveEnv(p, container, options).pipe(
        Effect.provide(fakeKube({ "secrets/db": secret, "configmaps/settings": configMap }))
      )
      assert.deepStrictEqual(env, {
        PATH: "/usr/bin",
        PGPASSWORD: "s3cret pass",
        PGHOST: "db.local",
        POD: "job-1-abcde",
        NS: "ns",
        APP: "backup",
        IP: "127.0.0.1",
        URL: "postgres://db.local/ns?$(LATER)",
        LATER: "x"
      })
    })
  )

  it.effect("fails with the kubelet's messages for a missing Secret, ConfigMap or key", () =>
    Effect.gen(function* () {
      const messageFor = (env: Parameters<typeof pod>[0]) => {
        const p = pod(env)
        const container = p.spec.containers[0]
        if (container === undefined) return Effect.die("no container")
        return resolveEnv(p, container, options).pipe(
          Effect.provide(fakeKube({ "secrets/db": secret, "configmaps/settings": configMap })),
          Effect.flip,
          Effect.map((error) => error.message)
        )
      }
      assert.strictEqual(
        yield* messageFor([{ name: "P", valueFrom: { secretKeyRef: { name: "x", key: "password" } } }]),
        'secret "x" not found'
      )
      assert.strictEqual(
        yield* messageFor([{ name: "P", valueFrom: { secretKeyRef: { name: "db", key: "user" } } }]),
        "couldn't find key user in Secret ns/db"
      )
      assert.strictEqual(
        yield* messageFor([{ name: "P", valueFrom: { configMapKeyRef: { name: "nope", key: "host" } } }]),
        'configmap "nope" not found'
      )
      assert.strictEqual(
        yield* messageFor([{ name: "P", valueFrom: { configMapKeyRef: { name: "settings", key: "port" } } }]),
        "couldn't find key port in ConfigMap ns/settings"
      )
    })
  )
})

const terminated = (name: string, exitCode: number): ContainerStatusJson => ({
  ...waitingStatus({ name, image: "i" }),
  state: { terminated: { exitCode, reason: exitCode === 0 ? "Completed" : "Error", finishedAt: "t" } }
})
const running = (name: string): ContainerStatusJson => ({
  ...waitingStatus({ name, image: "i" }),
  ready: true,
  started: true,
  state: { running: { startedAt: "t" } }
})
const backingOff = (name: string): ContainerStatusJson => ({
  ...terminated(name, 1),
  lastState: terminated(name, 1).state,
  state: { waiting: { reason: "CrashLoopBackOff" } }
})

describe("pod status", () => {
  it("computes the phase like the kubelet", () => {
    const waiting = waitingStatus({ name: "a", image: "i" })
    assert.strictEqual(podPhase("Never", [waiting], false), "Pending")
    assert.strictEqual(podPhase("Never", [running("a"), terminated("b", 0)], false), "Running")
    assert.strictEqual(podPhase("Never", [terminated("a", 0), terminated("b", 0)], false), "Succeeded")
    assert.strictEqual(podPhase("Never", [terminated("a", 0), terminated("b", 2)], false), "Failed")
    assert.strictEqual(podPhase("OnFailure", [terminated("a", 1)], false), "Running")
    assert.strictEqual(podPhase("OnFailure", [backingOff("a")], false), "Running")
    assert.strictEqual(podPhase("Always", [terminated("a", 0)], false), "Running")
    // Torn down: whatever did not finish with 0 fails the Pod.
    assert.strictEqual(podPhase("Always", [terminated("a", 143)], true), "Failed")
    assert.strictEqual(podPhase("Never", [waiting], true), "Failed")
    assert.strictEqual(podPhase("Never", [terminated("a", 0)], true), "Succeeded")
  })

  it("reports conditions and keeps transition times while a status holds", () => {
    const base = { restartPolicy: "Never", terminal: false, startTime: "t0", hostIP: "127.0.0.1" }
    const first = podStatus({
      ...base,
      containers: [waitingStatus({ name: "a", image: "i" })],
      previousConditions: [],
      now: "t1"
    })
    const ready = first.conditions.find((c) => c.type === "Ready")
    assert.deepStrictEqual(ready, {
      type: "Ready",
      status: "False",
      reason: "ContainersNotReady",
      message: "containers with unready status: [a]",
      lastProbeTime: null,
      lastTransitionTime: "t1"
    })
    const second = podStatus({ ...base, containers: [running("a")], previousConditions: first.conditions, now: "t2" })
    assert.strictEqual(second.phase, "Running")
    assert.deepStrictEqual(
      second.conditions.map((c) => [c.type, c.status, c.lastTransitionTime]),
      [
        ["PodReadyToStartContainers", "True", "t1"],
        ["Initialized", "True", "t1"],
        ["Ready", "True", "t2"],
        ["ContainersReady", "True", "t2"],
        ["PodScheduled", "True", "t1"]
      ]
    )
    const done = podStatus({
      ...base,
      containers: [terminated("a", 0)],
      previousConditions: second.conditions,
      now: "t3"
    })
    assert.strictEqual(done.phase, "Succeeded")
    assert.strictEqual(done.conditions.find((c) => c.type === "Ready")?.reason, "PodCompleted")
    assert.deepStrictEqual(
      [done.podIP, done.hostIP, done.podIPs, done.startTime],
      ["127.0.0.1", "127.0.0.1", [{ ip: "127.0.0.1" }], "t0"]
    )
  })
})

describe("termination message", () => {
  it("keeps the last 80 lines of at most 2 KiB of a log", () => {
    const lines = Array.from({ length: 100 }, (_, i) => `line ${i}`).join("\n")
    const tail = logTail(new TextEncoder().encode(`${lines}\n`))
    assert.strictEqual(tail.split("\n").length, 80)
    assert.isTrue(tail.endsWith("line 99"))
    assert.isAtMost(logTail(new TextEncoder().encode("x".repeat(5000))).length, 2048)
  })

  it.effect("reads the file (4 KiB at most), falling back to the log only when asked and failed", () =>
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped()
      const messageFile = `${dir}/termination-log`
      const logFile = `${dir}/0.log`
      yield* fs.writeFileString(logFile, "starting\npg_dump: error: connection refused\n")
      yield* fs.writeFileString(messageFile, "")
      const read = (policy: string | undefined, exitCode: number) =>
        terminationMessage({ messageFile, logFile, policy, exitCode })
      assert.strictEqual(yield* read("File", 1), "")
      assert.strictEqual(yield* read("FallbackToLogsOnError", 0), "")
      assert.strictEqual(yield* read("FallbackToLogsOnError", 1), "starting\npg_dump: error: connection refused")
      yield* fs.writeFileString(messageFile, "y".repeat(5000))
      assert.strictEqual((yield* read("FallbackToLogsOnError", 1)).length, 4096)
    }).pipe(Effect.provide(NodeServices.layer))
  )
})
