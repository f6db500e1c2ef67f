import { NodeServices } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, FileSystem, Result, Stream } from "effect"
import { readLog, tailOffset } from "../src/node/logStream.ts"
import { LogRegistry } from "../src/node/logs.ts"
import { serviceEnv } from "../src/node/ProcessNode.ts"
import { PodIPs } from "../src/node/podIPs.ts"
import { createArgs, envArgs, securityArgs } from "../src/node/podmanRuntime.ts"
import type { NodeContainer, NodePod } from "../src/node/podSpec.ts"
import type { ContainerStart } from "../src/node/runtime.ts"

const pod = (container: Partial<NodeContainer> = {}, spec: Partial<NodePod["spec"]> = {}): NodePod => ({
  metadata: { name: "web-1", namespace: "ns", uid: "u-1" },
  spec: { containers: [{ name: "main", image: "localhost/app:1", ...container }], ...spec }
})

const image = { id: "abc123", imageID: "localhost/app@sha256:00", user: "65532:65532" }

const start = (p: NodePod, env: Record<string, string> = {}): ContainerStart => ({
  pod: p,
  container: p.spec.containers[0] ?? { name: "main", image: "localhost/app:1" },
  restartCount: 2,
  env,
  podDir: "/pods/ns_web-1_u-1",
  workDir: "/pods/ns_web-1_u-1/work",
  messageFile: "/pods/ns_web-1_u-1/containers/main/termination-log",
  logFile: "/pods/ns_web-1_u-1/containers/main/2.log",
  mounts: [{ hostPath: "/pods/ns_web-1_u-1/volumes/token", containerPath: "/var/run/secrets/x", readOnly: true }]
})

describe("podman command line", () => {
  it("passes env values through podman's environment, never its argv", () => {
    const { args, podmanEnv } = envArgs({ PASSWORD: "s3cr3t", PATH: "/app/bin", "my.var": "x" })
    assert.deepStrictEqual(args, ["--env=PASSWORD", "--env=PATH=/app/bin", "--env=my.var"])
    assert.deepStrictEqual(podmanEnv, { PASSWORD: "s3cr3t", "my.var": "x" })
  })

  it("builds the create command: name, labels, never a pull, host network, mounts, entrypoint and args", () => {
    const p = pod(
      { command: ["/app", "--user=$(USER_NAME)"], args: ["serve", "$(POD_IP):8080"], workingDir: "/data" },
      { hostname: "custom" }
    )
    const created = createArgs(start(p, { PASSWORD: "s3cr3t", USER_NAME: "ann", POD_IP: "127.9.1.1" }), image, {
      "example/node": "n1"
    })
    assert.isTrue(Result.isSuccess(created))
    if (Result.isFailure(created)) return
    const { args, podmanEnv } = created.success
    assert.strictEqual(args[0], "create")
    assert.include(args, "--name=k8s_main_web-1_ns_u-1_2")
    assert.include(args, "--label=io.kubernetes.pod.uid=u-1")
    assert.include(args, "--label=example/node=n1")
    assert.include(args, "--pull=never")
    assert.include(args, "--network=host")
    assert.include(args, "--hostname=custom")
    assert.include(args, "--workdir=/data")
    assert.include(
      args,
      "--mount=type=bind,source=/pods/ns_web-1_u-1/containers/main/termination-log,destination=/dev/termination-log"
    )
    assert.include(
      args,
      "--mount=type=bind,source=/pods/ns_web-1_u-1/volumes/token,destination=/var/run/secrets/x,ro=true"
    )
    assert.include(args, '--entrypoint=["/app","--user=ann"]')
    assert.deepStrictEqual(args.slice(-3), ["abc123", "serve", "127.9.1.1:8080"])
    assert.isFalse(args.some((arg) => arg.includes("s3cr3t")))
    assert.strictEqual(podmanEnv.PASSWORD, "s3cr3t")
  })

  it("maps the security context, container over Pod", () => {
    const p = pod(
      {
        securityContext: {
          runAsUser: 1000,
          readOnlyRootFilesystem: true,
          allowPrivilegeEscalation: false,
          capabilities: { drop: ["ALL"], add: ["NET_BIND_SERVICE"] },
          seccompProfile: { type: "RuntimeDefault" }
        }
      },
      { securityContext: { runAsUser: 5, runAsGroup: 2000, fsGroup: 3000, runAsNonRoot: true } }
    )
    const args = Result.getOrThrow(securityArgs(p, p.spec.containers[0] ?? { name: "", image: "" }, image))
    assert.deepStrictEqual(args, [
      "--user=1000:2000",
      "--group-add=3000",
      "--read-only",
      "--read-only-tmpfs=false",
      "--cap-drop=all",
      "--cap-add=net_bind_service",
      "--security-opt=no-new-privileges"
    ])
    // No seccomp profile: the kubelet's default, Unconfined.
    assert.deepStrictEqual(Result.getOrThrow(securityArgs(pod(), { name: "main", image: "i" }, image)), [
      "--security-opt=seccomp=unconfined"
    ])
    // Only a group: the image's user with that group.
    const groupOnly = pod({}, { securityContext: { runAsGroup: 7 } })
    assert.include(Result.getOrThrow(securityArgs(groupOnly, { name: "main", image: "i" }, image)), "--user=65532:7")
  })

  it("refuses runAsNonRoot with the kubelet's messages", () => {
    const nonRoot = pod({}, { securityContext: { runAsNonRoot: true } })
    const container = nonRoot.spec.containers[0] ?? { name: "", image: "" }
    const messageFor = (user: string, p = nonRoot) => {
      const result = securityArgs(p, container, { user })
      return Result.isFailure(result) ? `${result.failure.reason}: ${result.failure.message}` : "allowed"
    }
    const where = '(pod: "web-1_ns(u-1)", container: main)'
    assert.strictEqual(
      messageFor(""),
      `CreateContainerConfigError: container has runAsNonRoot and image will run as root ${where}`
    )
    assert.strictEqual(
      messageFor("0:0"),
      `CreateContainerConfigError: container has runAsNonRoot and image will run as root ${where}`
    )
    assert.strictEqual(
      messageFor("nobody"),
      `CreateContainerConfigError: container has runAsNonRoot and image has non-numeric user (nobody), cannot verify user is non-root ${where}`
    )
    assert.strictEqual(messageFor("65532"), "allowed")
    const rootUser = pod({}, { securityContext: { runAsNonRoot: true, runAsUser: 0 } })
    assert.strictEqual(
      messageFor("65532", rootUser),
      `CreateContainerConfigError: container's runAsUser breaks non-root policy ${where}`
    )
    assert.strictEqual(messageFor("", pod({}, { securityContext: { runAsNonRoot: true, runAsUser: 10 } })), "allowed")
  })
})

describe("Pod addresses", () => {
  it("gives each Pod its own loopback address, keeps a known one, reuses released ones last", () => {
    const ips = new PodIPs("process-node")
    const a = ips.allocate("a")
    const b = ips.allocate("b")
    assert.notStrictEqual(a, b)
    for (const ip of [a, b]) {
      assert.match(ip, /^127\.(\d+)\.\d+\.\d+$/u)
      assert.isFalse(ip.startsWith("127.0."))
    }
    assert.strictEqual(ips.allocate("a"), a)
    ips.release("a")
    assert.notStrictEqual(ips.allocate("c"), a, "a released address is not handed out again at once")
    assert.strictEqual(ips.allocate("d", a), a, "a Pod that ran before keeps its address")
    assert.notStrictEqual(ips.allocate("e", b), b, "but not one that is taken")
    assert.notStrictEqual(ips.allocate("f", "10.0.0.7"), "10.0.0.7", "nor one that is not this node's")
  })

  it("derives the kubelet's KUBERNETES_* variables from the API server's URL", () => {
    assert.deepStrictEqual(serviceEnv("https://127.0.0.1:6443"), {
      KUBERNETES_SERVICE_HOST: "127.0.0.1",
      KUBERNETES_SERVICE_PORT: "6443",
      KUBERNETES_SERVICE_PORT_HTTPS: "6443",
      KUBERNETES_PORT: "tcp://127.0.0.1:6443",
      KUBERNETES_PORT_6443_TCP: "tcp://127.0.0.1:6443",
      KUBERNETES_PORT_6443_TCP_PROTO: "tcp",
      KUBERNETES_PORT_6443_TCP_PORT: "6443",
      KUBERNETES_PORT_6443_TCP_ADDR: "127.0.0.1"
    })
  })
})

describe("container logs", () => {
  const ref = { namespace: "ns", name: "p", uid: "u" }

  it("finds the tail of a log", () => {
    const bytes = new TextEncoder().encode("a\nb\nc\n")
    assert.strictEqual(tailOffset(bytes, 2), 2)
    assert.strictEqual(tailOffset(bytes, 10), 0)
    assert.strictEqual(tailOffset(bytes, 0), 6)
    assert.strictEqual(tailOffset(new TextEncoder().encode("a\nb"), 1), 2)
  })

  it("selects the current or previous instance with the kubelet's errors", () => {
    const logs = new LogRegistry()
    const messageOf = (container: string, previous: boolean, pod = "p") => {
      const selected = logs.select("ns", pod, container, previous)
      return Result.isFailure(selected)
        ? `${selected.failure.status} ${selected.failure.message}`
        : selected.success.file
    }
    assert.strictEqual(messageOf("main", false), '404 pod "p" does not exist')
    logs.register(ref, ["main"])
    assert.strictEqual(messageOf("other", false), '404 container "other" not found in pod "p"')
    logs.waiting(ref, "main", "ErrImageNeverPull")
    assert.strictEqual(
      messageOf("main", false),
      '400 container "main" in pod "p" is waiting to start: ErrImageNeverPull'
    )
    logs.started(ref, "main", "/0.log")
    assert.strictEqual(messageOf("main", false), "/0.log")
    assert.strictEqual(messageOf("main", true), '400 previous terminated container "main" in pod "p" not found')
    logs.finished(ref, "main")
    logs.started(ref, "main", "/1.log")
    assert.deepStrictEqual([messageOf("main", false), messageOf("main", true)], ["/1.log", "/0.log"])
  })

  // Live clock: following polls the file.
  it.live("follows a log until its instance stops, honouring tailLines and limitBytes", () =>
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped()
      const file = `${dir}/0.log`
      yield* fs.writeFileString(file, "one\ntwo\n")
      const logs = new LogRegistry()
      logs.register(ref, ["main"])
      logs.started(ref, "main", file)
      const instance = Result.getOrThrow(logs.select("ns", "p", "main", false))
      const text = (stream: Stream.Stream<Uint8Array, unknown, FileSystem.FileSystem>) =>
        stream.pipe(Stream.decodeText(), Stream.mkString)
      // The file grows only once the follower has sent the tail it started with, so that the
      // tail is taken from "one\ntwo\n" and what follows is what was appended.
      const tailSent = yield* Deferred.make<void>()
      const following = yield* Effect.forkChild(
        text(
          readLog(instance, { follow: true, tailLines: 1 }).pipe(
            Stream.tap(() => Deferred.succeed(tailSent, undefined))
          )
        ),
        { startImmediately: true }
      )
      yield* Deferred.await(tailSent)
      yield* fs.writeFileString(file, "one\ntwo\nthree\n")
      logs.finished(ref, "main")
      assert.strictEqual(yield* Fiber.join(following), "two\nthree\n")
      assert.strictEqual(yield* text(readLog(instance, { follow: false, limitBytes: 5 })), "one\nt")
    }).pipe(Effect.provide(NodeServices.layer))
  )
})
