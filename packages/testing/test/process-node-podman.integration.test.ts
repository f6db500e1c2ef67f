import { spawnSync } from "node:child_process"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { readdir, readFile } from "node:fs/promises"
import { request } from "node:https"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Job, jobOutcome, KubeClient, Node, Secret, ServiceAccount } from "@db-backup-operator/kube"
import { NodeServices } from "@effect/platform-node"
import { assert, describe, it, layer } from "@effect/vitest"
import { type Duration, Effect, Fiber, Layer, Random, Schedule, Schema } from "effect"
import { listContainers, podmanChecked } from "../src/containers/podman.ts"
import { adminKube, ControlPlane, NotReady, waitUntilReady } from "../src/index.ts"
import { ProcessNode } from "../src/node/index.ts"
import { type NodeContainer, NodePod, type NodePodSpec } from "../src/node/podSpec.ts"
import { ProbeImages } from "./fixtures/probe/probeImage.ts"

/**
 * The process node in container mode: Pods run from a locally built test
 * image (`fixtures/probe`) with podman, against a real control plane.
 */

const podmanMissing = spawnSync("podman", ["--version"]).status !== 0

class Timeout extends Schema.TaggedError<Timeout>()("Timeout", { message: Schema.String }) {}

const waitFor = <A, E, R>(
  what: string,
  probe: Effect.Effect<A, E | NotReady, R>,
  timeout: Duration.Input = "90 seconds"
) =>
  waitUntilReady(probe, {
    interval: "250 millis",
    timeout,
    onTimeout: (reason) => new Timeout({ message: `${what}: ${reason}` })
  })

const notReady = (reason: string) => Effect.fail(new NotReady({ reason }))

/** For "not yet" reasons: JSON, and never undefined (which a check would take for a result). */
const show = (value: unknown): string => JSON.stringify(value) ?? "nothing yet"

/** The status fields this test reads, raw (the kube client's Pod schema does not model all of them). */
const ContainerState = Schema.Struct({
  waiting: Schema.optionalKey(Schema.Struct({ reason: Schema.String, message: Schema.optionalKey(Schema.String) })),
  running: Schema.optionalKey(Schema.Struct({ startedAt: Schema.optionalKey(Schema.String) })),
  terminated: Schema.optionalKey(
    Schema.Struct({
      exitCode: Schema.Int,
      reason: Schema.optionalKey(Schema.String),
      message: Schema.optionalKey(Schema.String),
      containerID: Schema.optionalKey(Schema.String)
    })
  )
})
const PodView = Schema.Struct({
  metadata: Schema.Struct({
    name: Schema.String,
    uid: Schema.String,
    labels: Schema.optionalKey(Schema.Record(Schema.String, Schema.String))
  }),
  status: Schema.optionalKey(
    Schema.Struct({
      phase: Schema.optionalKey(Schema.String),
      podIP: Schema.optionalKey(Schema.String),
      hostIP: Schema.optionalKey(Schema.String),
      conditions: Schema.optionalKey(Schema.Array(Schema.Struct({ type: Schema.String, status: Schema.String }))),
      containerStatuses: Schema.optionalKey(
        Schema.Array(
          Schema.Struct({
            name: Schema.String,
            ready: Schema.Boolean,
            restartCount: Schema.Int,
            imageID: Schema.String,
            containerID: Schema.optionalKey(Schema.String),
            state: ContainerState
          })
        )
      )
    })
  )
})
type PodView = typeof PodView.Type

const getPod = (namespace: string, name: string) =>
  KubeClient.use((kube) =>
    kube
      .request({ method: "GET", path: `/api/v1/namespaces/${namespace}/pods/${name}` })
      .pipe(Effect.flatMap(Schema.decodeUnknownEffect(PodView)))
  )

const statusOf = (pod: PodView, container = "main") =>
  pod.status?.containerStatuses?.find((status) => status.name === container)

/** Polls the Pod until `check` returns a value (or a reason it is not there yet). */
const podUntil = <A>(namespace: string, name: string, what: string, check: (pod: PodView) => A | string) =>
  waitFor(
    `pod ${namespace}/${name} ${what}`,
    getPod(namespace, name).pipe(
      Effect.catchTag("NotFound", () => notReady("not created yet")),
      Effect.flatMap((pod) => {
        const result = check(pod)
        return typeof result === "string" ? notReady(result) : Effect.succeed(result)
      })
    )
  )

const podPhase = (namespace: string, name: string, phase: string) =>
  podUntil(namespace, name, phase, (pod) =>
    pod.status?.phase === phase ? pod : `phase ${pod.status?.phase}: ${show(pod.status?.containerStatuses)}`
  )

/** A namespace whose default ServiceAccount exists (Pods are rejected before it does). */
const namespaceFor = (prefix: string) =>
  Effect.gen(function* () {
    const kube = yield* KubeClient
    const name = `${prefix}-${(yield* Random.nextIntBetween(0, 1_000_000)).toString(36)}`
    yield* kube.request({ method: "POST", path: "/api/v1/namespaces", body: { metadata: { name } } })
    yield* waitFor(
      `default ServiceAccount in ${name}`,
      kube
        .get(ServiceAccount, "default", { namespace: name })
        .pipe(Effect.catchTag("NotFound", () => notReady("not yet")))
    )
    return name
  })

/** A hostPath PersistentVolume in `dir` and a claim `data` that the PV binder binds to it. */
const pvAndClaim = (dir: string, namespace: string) =>
  [
    "apiVersion: v1",
    "kind: PersistentVolume",
    `metadata: { name: pv-${namespace} }`,
    "spec:",
    "  capacity: { storage: 1Gi }",
    "  accessModes: [ReadWriteOnce]",
    '  storageClassName: ""',
    `  claimRef: { namespace: ${namespace}, name: data }`,
    `  hostPath: { path: ${dir} }`,
    "---",
    "apiVersion: v1",
    "kind: PersistentVolumeClaim",
    "metadata: { name: data }",
    "spec:",
    "  accessModes: [ReadWriteOnce]",
    '  storageClassName: ""',
    "  resources: { requests: { storage: 1Gi } }"
  ].join("\n")

const createPod = (namespace: string, name: string, spec: NodePodSpec, labels?: Record<string, string>) =>
  KubeClient.use((kube) =>
    kube.create(NodePod, { metadata: { name, namespace, ...(labels === undefined ? {} : { labels }) }, spec })
  )

const logsOf = (namespace: string, pod: string, container?: string) =>
  ProcessNode.use((node) => node.logs(namespace, pod, container))

const kubectl = (args: ReadonlyArray<string>, options?: { readonly stdin?: string }) =>
  ControlPlane.use((controlPlane) => controlPlane.kubectl(args, options))

/** Every command line of every process on this machine. */
const allCommandLines = Effect.promise(async () => {
  const lines: Array<string> = []
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/u.test(entry)) continue
    try {
      lines.push((await readFile(`/proc/${entry}/cmdline`, "utf8")).replaceAll("\0", " "))
    } catch {
      // exited meanwhile
    }
  }
  return lines
})

const Images = ProbeImages.layer

const NodeLive = Layer.unwrap(
  ControlPlane.useSync((controlPlane) =>
    ProcessNode.layer({
      containerRuntime: "podman",
      clusterCaPem: controlPlane.caPem,
      imageMap: { "example.com/mapped:1": "/bin/echo mapped" }
    })
  )
)

const TestEnv = NodeLive.pipe(
  Layer.provideMerge(adminKube),
  Layer.provideMerge(Layer.mergeAll(ControlPlane.layer(), Images, NodeServices.layer))
)

const images = ProbeImages.useSync((probe) => probe)

const probeContainer = (
  image: string,
  args: ReadonlyArray<string>,
  extra: Partial<Omit<NodeContainer, "image" | "args">> = {}
): NodeContainer => ({ name: "main", image, args: [...args], ...extra })

if (podmanMissing) {
  describe.skip("ProcessNode with podman (skipped: podman is not installed)", () => {
    it("needs podman", () => undefined)
  })
} else {
  layer(TestEnv, { timeout: "300 seconds", excludeTestServices: true })("ProcessNode with podman", (it) => {
    it.effect("resolves env like the kubelet; a Secret's value reaches the container but no command line", () =>
      Effect.gen(function* () {
        const kube = yield* KubeClient
        const { nonRoot } = yield* images
        const namespace = yield* namespaceFor("env")
        const password = `s3cr3t-${(yield* Random.nextIntBetween(0, 1_000_000_000)).toString(36)}`
        yield* kube.create(Secret, {
          metadata: { name: "db", namespace },
          data: { password: Buffer.from(password).toString("base64") }
        })
        const env = [
          { name: "PASSWORD", valueFrom: { secretKeyRef: { name: "db", key: "password" } } },
          { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
          { name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
          { name: "GREETING", value: "hello $(POD_NAME)" }
        ]
        yield* createPod(namespace, "env", {
          restartPolicy: "Never",
          containers: [
            probeContainer(
              nonRoot,
              [
                "env",
                "PASSWORD",
                "GREETING",
                "POD_IP",
                "HOSTNAME",
                "KUBERNETES_SERVICE_HOST",
                "KUBERNETES_SERVICE_PORT",
                "KUBERNETES_SERVICE_PORT_HTTPS"
              ],
              { env }
            ),
            // Keeps its podman processes alive while we look at every command line.
            probeContainer(nonRoot, ["sleep"], { name: "hold", env })
          ]
        })
        const running = yield* podUntil(namespace, "env", "hold running", (pod) =>
          statusOf(pod, "hold")?.state.running !== undefined && statusOf(pod)?.state.terminated !== undefined
            ? pod
            : show(pod.status?.containerStatuses)
        )
        const commandLines = yield* allCommandLines
        assert.isTrue(
          commandLines.some((line) => line.includes("podman") && line.includes("start --attach")),
          "the attached podman processes are visible"
        )
        assert.isFalse(
          commandLines.some((line) => line.includes(password)),
          "the Secret's value is in no command line"
        )
        const port = new URL(yield* ControlPlane.useSync((controlPlane) => controlPlane.server)).port
        const podIP = running.status?.podIP ?? ""
        assert.match(podIP, /^127\.\d+\.\d+\.\d+$/u)
        assert.notStrictEqual(podIP, "127.0.0.1")
        assert.strictEqual(running.status?.hostIP, "127.0.0.1")
        assert.strictEqual(
          yield* logsOf(namespace, "env"),
          [
            `PASSWORD=${password}`,
            "GREETING=hello env",
            `POD_IP=${podIP}`,
            "HOSTNAME=env",
            "KUBERNETES_SERVICE_HOST=127.0.0.1",
            `KUBERNETES_SERVICE_PORT=${port}`,
            `KUBERNETES_SERVICE_PORT_HTTPS=${port}`,
            ""
          ].join("\n")
        )
        const main = statusOf(running)
        assert.match(main?.containerID ?? "", /^podman:\/\/[0-9a-f]{64}$/u)
        assert.match(main?.imageID ?? "", /^localhost\/process-node-probe@sha256:[0-9a-f]{64}$/u)
        yield* kube.delete(NodePod, "env", { namespace, gracePeriodSeconds: 1 })
      })
    )

    it.effect("applies the security context: user, groups, read-only root, working directory, emptyDir", () =>
      Effect.gen(function* () {
        const { nonRoot } = yield* images
        const namespace = yield* namespaceFor("secure")
        const hardened = {
          readOnlyRootFilesystem: true,
          allowPrivilegeEscalation: false,
          capabilities: { drop: ["ALL"] },
          seccompProfile: { type: "RuntimeDefault" }
        }
        const volumeMounts = [{ name: "data", mountPath: "/data" }]
        yield* createPod(namespace, "secure", {
          restartPolicy: "Never",
          securityContext: { runAsNonRoot: true, runAsUser: 1234, runAsGroup: 5678, fsGroup: 4321 },
          volumes: [{ name: "data", emptyDir: {} }],
          containers: [
            probeContainer(nonRoot, ["id"], { securityContext: hardened }),
            probeContainer(nonRoot, ["write", "/probe-was-here", "/data/ok"], {
              name: "write",
              securityContext: hardened,
              volumeMounts
            }),
            probeContainer(nonRoot, ["pwd"], { name: "pwd", workingDir: "/data", volumeMounts }),
            // The container's runAsUser wins over the Pod's; the Pod's runAsGroup still applies.
            probeContainer(nonRoot, ["id"], { name: "container-user", securityContext: { runAsUser: 4242 } })
          ]
        })
        yield* podPhase(namespace, "secure", "Succeeded")
        assert.match(yield* logsOf(namespace, "secure"), /^uid=1234 gid=5678 groups=\[.*4321.*\]\n$/u)
        assert.strictEqual(
          yield* logsOf(namespace, "secure", "write"),
          "write /probe-was-here: open /probe-was-here: read-only file system\nwrite /data/ok: ok\n"
        )
        assert.strictEqual(yield* logsOf(namespace, "secure", "pwd"), "/data\n")
        assert.match(yield* logsOf(namespace, "secure", "container-user"), /^uid=4242 gid=5678 /u)
      })
    )

    it.effect("mounts a bound PersistentVolumeClaim's hostPath volume, its subPath created writable", () =>
      Effect.gen(function* () {
        const { nonRoot } = yield* images
        const namespace = yield* namespaceFor("claim")
        const hostDir = mkdtempSync(join(tmpdir(), "node-pv-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(hostDir, { recursive: true, force: true })))
        const applied = yield* kubectl(["apply", "-f", "-", `--namespace=${namespace}`], {
          stdin: pvAndClaim(hostDir, namespace)
        })
        assert.strictEqual(applied.exitCode, 0, applied.stderr)
        yield* createPod(namespace, "claim", {
          restartPolicy: "Never",
          securityContext: { runAsNonRoot: true, runAsUser: 1234, runAsGroup: 1234, fsGroup: 1234 },
          volumes: [{ name: "data", persistentVolumeClaim: { claimName: "data" } }],
          containers: [
            probeContainer(nonRoot, ["write", "/var/lib/deep/mount/ok"], {
              securityContext: { readOnlyRootFilesystem: true },
              volumeMounts: [{ name: "data", mountPath: "/var/lib/deep/mount", subPath: "sub" }]
            })
          ]
        })
        yield* podPhase(namespace, "claim", "Succeeded")
        assert.strictEqual(yield* logsOf(namespace, "claim"), "write /var/lib/deep/mount/ok: ok\n")
        assert.isTrue(
          existsSync(join(hostDir, "sub", "ok")),
          "the file is in the volume's directory, under the subPath"
        )
      })
    )

    it.effect("refuses runAsNonRoot for an image that runs as root (CreateContainerConfigError)", () =>
      Effect.gen(function* () {
        const { root } = yield* images
        const namespace = yield* namespaceFor("nonroot")
        const pod = yield* createPod(namespace, "rooted", {
          restartPolicy: "Never",
          securityContext: { runAsNonRoot: true },
          containers: [probeContainer(root, ["id"])]
        })
        const waiting = yield* podUntil(namespace, "rooted", "CreateContainerConfigError", (view) => {
          const state = statusOf(view)?.state.waiting
          return state?.reason === "CreateContainerConfigError" ? { view, state } : show(state)
        })
        assert.strictEqual(
          waiting.state.message,
          `container has runAsNonRoot and image will run as root (pod: "rooted_${namespace}(${pod.metadata.uid})", container: main)`
        )
        assert.strictEqual(waiting.view.status?.phase, "Pending")
      })
    )

    it.effect(
      "projects a bound service-account token the container uses in-cluster; automount false mounts nothing",
      () =>
        Effect.gen(function* () {
          const kube = yield* KubeClient
          const { nonRoot } = yield* images
          const namespace = yield* namespaceFor("token")
          yield* createPod(namespace, "whoami", {
            restartPolicy: "Never",
            containers: [probeContainer(nonRoot, ["whoami"])]
          })
          yield* createPod(namespace, "ls", {
            restartPolicy: "Never",
            containers: [probeContainer(nonRoot, ["ls", "/var/run/secrets/kubernetes.io/serviceaccount"])]
          })
          yield* createPod(namespace, "pod-opts-out", {
            restartPolicy: "Never",
            automountServiceAccountToken: false,
            containers: [probeContainer(nonRoot, ["ls", "/var/run/secrets/kubernetes.io/serviceaccount"])]
          })
          yield* kube.request({
            method: "POST",
            path: `/api/v1/namespaces/${namespace}/serviceaccounts`,
            body: { metadata: { name: "quiet" }, automountServiceAccountToken: false }
          })
          yield* createPod(namespace, "sa-opts-out", {
            restartPolicy: "Never",
            serviceAccountName: "quiet",
            containers: [probeContainer(nonRoot, ["ls", "/var/run/secrets/kubernetes.io/serviceaccount"])]
          })
          yield* podPhase(namespace, "whoami", "Succeeded")
          assert.strictEqual(
            yield* logsOf(namespace, "whoami"),
            `namespace=${namespace}\nuser=system:serviceaccount:${namespace}:default\npod=[whoami]\n`
          )
          yield* podPhase(namespace, "ls", "Succeeded")
          assert.strictEqual(
            yield* logsOf(namespace, "ls"),
            "ls /var/run/secrets/kubernetes.io/serviceaccount: [ca.crt namespace token]\n"
          )
          for (const name of ["pod-opts-out", "sa-opts-out"]) {
            yield* podPhase(namespace, name, "Succeeded")
            assert.strictEqual(
              yield* logsOf(namespace, name),
              "ls /var/run/secrets/kubernetes.io/serviceaccount: open /var/run/secrets/kubernetes.io/serviceaccount: no such file or directory\n"
            )
          }
        })
    )

    it.effect("exit codes and termination messages decide Pods and Jobs", () =>
      Effect.gen(function* () {
        const kube = yield* KubeClient
        const { nonRoot } = yield* images
        const namespace = yield* namespaceFor("jobs")
        const job = (name: string, args: ReadonlyArray<string>) =>
          kube.request({
            method: "POST",
            path: `/apis/batch/v1/namespaces/${namespace}/jobs`,
            body: {
              metadata: { name },
              spec: {
                backoffLimit: 0,
                template: { spec: { restartPolicy: "Never", containers: [probeContainer(nonRoot, args)] } }
              }
            }
          })
        yield* job("succeeds", ["exit", "0"])
        yield* job("fails", ["message", "disk full", "3"])
        yield* createPod(namespace, "custom-path", {
          restartPolicy: "Never",
          containers: [
            probeContainer(nonRoot, ["message", "written elsewhere", "0", "/tmp/reason"], {
              terminationMessagePath: "/tmp/reason"
            })
          ]
        })
        const outcome = (name: string) =>
          waitFor(
            `job ${name} finished`,
            Effect.flatMap(kube.get(Job, name, { namespace }), (current) => {
              const result = jobOutcome(current)
              return result === undefined ? notReady(show(current.status)) : Effect.succeed(result)
            })
          )
        assert.strictEqual(yield* outcome("succeeds"), "Complete")
        assert.strictEqual(yield* outcome("fails"), "Failed")
        const pods = yield* kube.list(NodePod, { namespace, labelSelector: "batch.kubernetes.io/job-name=fails" })
        const failed = yield* getPod(namespace, pods.items[0]?.metadata.name ?? "")
        const terminated = statusOf(failed)?.state.terminated
        assert.deepStrictEqual(
          [terminated?.exitCode, terminated?.reason, terminated?.message],
          [3, "Error", "disk full"]
        )
        const custom = yield* podPhase(namespace, "custom-path", "Succeeded")
        assert.strictEqual(statusOf(custom)?.state.terminated?.message, "written elsewhere")
      })
    )

    it.effect("deletion stops a container within the grace period and removes it", () =>
      Effect.gen(function* () {
        const kube = yield* KubeClient
        const { nonRoot } = yield* images
        const namespace = yield* namespaceFor("delete")
        // Our own finalizer keeps the objects around to read their last status.
        const hold = ["example.com/hold"]
        for (const [name, args] of [
          ["polite", ["sleep"]],
          ["stubborn", ["sleep", "--ignore-sigterm"]]
        ] as const) {
          yield* kube.create(NodePod, {
            metadata: { name, namespace, finalizers: hold },
            spec: { terminationGracePeriodSeconds: 30, containers: [probeContainer(nonRoot, args)] }
          })
        }
        const polite = yield* podPhase(namespace, "polite", "Running")
        const stubborn = yield* podPhase(namespace, "stubborn", "Running")
        yield* waitFor(
          "both programs sleeping",
          Effect.gen(function* () {
            for (const name of ["polite", "stubborn"]) {
              const output = yield* logsOf(namespace, name).pipe(Effect.orElseSucceed(() => ""))
              if (!output.includes("sleeping")) return yield* notReady(`${name}: ${show(output)}`)
            }
          })
        )
        const started = Date.now()
        yield* kube.delete(NodePod, "polite", { namespace })
        yield* kube.delete(NodePod, "stubborn", { namespace })
        const politeEnd = yield* podUntil(
          namespace,
          "polite",
          "terminated",
          (pod) => statusOf(pod)?.state.terminated ?? "still running"
        )
        assert.strictEqual(politeEnd.exitCode, 0)
        assert.isBelow(Date.now() - started, 5_000, "SIGTERM ends a container that handles it before the grace period")
        const stubbornEnd = yield* podUntil(
          namespace,
          "stubborn",
          "terminated",
          (pod) => statusOf(pod)?.state.terminated ?? "still running"
        )
        const elapsed = Date.now() - started
        assert.strictEqual(stubbornEnd.exitCode, 137)
        assert.isBelow(elapsed, 15_000, "SIGKILL after the (capped) grace period")
        assert.strictEqual(yield* logsOf(namespace, "polite"), "sleeping\ngot SIGTERM\n")
        assert.strictEqual(yield* logsOf(namespace, "stubborn"), "sleeping\nignoring SIGTERM\n")
        for (const pod of [polite, stubborn]) {
          yield* waitFor(
            `the containers of ${pod.metadata.name} removed`,
            listContainers({ "io.kubernetes.pod.uid": pod.metadata.uid }).pipe(
              Effect.flatMap((left) => (left.length === 0 ? Effect.void : notReady(`${left.length} left`)))
            ),
            "30 seconds"
          )
          yield* kube.mergePatch(NodePod, pod.metadata.name, { metadata: { finalizers: null } }, { namespace })
        }
      })
    )

    it.effect("a missing image waits with ErrImageNeverPull; a mapped image still runs as a process", () =>
      Effect.gen(function* () {
        const namespace = yield* namespaceFor("image")
        yield* createPod(namespace, "missing", {
          restartPolicy: "Never",
          containers: [probeContainer("localhost/no-such-image:1", ["id"])]
        })
        yield* createPod(namespace, "mapped", {
          restartPolicy: "Never",
          containers: [probeContainer("example.com/mapped:1", ["hi"])]
        })
        const waiting = yield* podUntil(namespace, "missing", "ErrImageNeverPull", (pod) => {
          const state = statusOf(pod)?.state.waiting
          return state?.reason === "ErrImageNeverPull" ? { pod, state } : show(state)
        })
        assert.strictEqual(
          waiting.state.message,
          'Container image "localhost/no-such-image:1" is not present with pull policy of Never'
        )
        assert.strictEqual(waiting.pod.status?.phase, "Pending")
        const logs = yield* kubectl(["logs", "-n", namespace, "missing"])
        assert.notStrictEqual(logs.exitCode, 0)
        assert.include(logs.stderr, 'container "main" in pod "missing" is waiting to start: ErrImageNeverPull')
        yield* podPhase(namespace, "mapped", "Succeeded")
        assert.strictEqual(yield* logsOf(namespace, "mapped"), "mapped hi\n")
      })
    )

    it.effect("kubectl logs: output, --previous, --tail, --limit-bytes and --follow", () =>
      Effect.gen(function* () {
        const kube = yield* KubeClient
        const { nonRoot } = yield* images
        const namespace = yield* namespaceFor("logs")
        yield* createPod(namespace, "counter", {
          restartPolicy: "OnFailure",
          volumes: [{ name: "state", emptyDir: {} }],
          containers: [
            probeContainer(nonRoot, ["count", "/state/runs", "2"], {
              volumeMounts: [{ name: "state", mountPath: "/state" }]
            })
          ]
        })
        yield* createPod(namespace, "lines", {
          restartPolicy: "Never",
          containers: [probeContainer(nonRoot, ["print", "a", "b", "c"])]
        })
        yield* createPod(namespace, "follow", {
          restartPolicy: "Never",
          containers: [probeContainer(nonRoot, ["sleep"])]
        })
        const counter = yield* podPhase(namespace, "counter", "Succeeded")
        assert.strictEqual(statusOf(counter)?.restartCount, 1)
        const run = (args: ReadonlyArray<string>) =>
          kubectl(["logs", "-n", namespace, ...args]).pipe(
            Effect.map((result) => {
              assert.strictEqual(result.exitCode, 0, result.stderr)
              return result.stdout
            })
          )
        assert.strictEqual(yield* run(["counter"]), "run 2\n")
        assert.strictEqual(yield* run(["counter", "--previous"]), "run 1\n")
        yield* podPhase(namespace, "lines", "Succeeded")
        assert.strictEqual(yield* run(["lines", "-c", "main"]), "a\nb\nc\n")
        assert.strictEqual(yield* run(["lines", "--tail=2"]), "b\nc\n")
        assert.strictEqual(yield* run(["lines", "--limit-bytes=3"]), "a\nb")
        const noPrevious = yield* kubectl(["logs", "-n", namespace, "lines", "--previous"])
        assert.include(noPrevious.stderr, 'previous terminated container "main" in pod "lines" not found')

        yield* podPhase(namespace, "follow", "Running")
        yield* waitFor(
          "follow sleeping",
          Effect.flatMap(logsOf(namespace, "follow").pipe(Effect.orElseSucceed(() => "")), (output) =>
            output.includes("sleeping") ? Effect.void : notReady(output)
          )
        )
        const following = yield* Effect.forkChild(run(["follow", "--follow"]), { startImmediately: true })
        yield* Effect.sleep("1 second")
        yield* kube.delete(NodePod, "follow", { namespace })
        assert.strictEqual(yield* Fiber.join(following), "sleeping\ngot SIGTERM\n")
      })
    )

    it.effect("the kubelet endpoint serves only clients with a certificate the cluster CA signed", () =>
      Effect.gen(function* () {
        const port = yield* ProcessNode.useSync((node) => node.kubeletPort)
        const outcome = yield* Effect.callback<string>((resume) => {
          const req = request({ host: "127.0.0.1", port, path: "/healthz", rejectUnauthorized: false }, (response) =>
            resume(Effect.succeed(`answered ${response.statusCode}`))
          )
          req.on("error", (error) => resume(Effect.succeed(`refused: ${error.message}`)))
          req.end()
        })
        assert.match(outcome, /^refused/u)
      })
    )

    it.effect("a node removes what a crashed node of its name left, and its own containers on release", () =>
      Effect.gen(function* () {
        const kube = yield* KubeClient
        const { nonRoot } = yield* images
        const namespace = yield* namespaceFor("crash")
        // What a node whose process died leaves: a container with its labels and a dead owner (beyond pid_max).
        const stale = (yield* podmanChecked([
          "create",
          "--pull=never",
          "--label=process-node.kube-testenv/node=crash-node",
          "--label=process-node.kube-testenv/owner-pid=4194305",
          nonRoot,
          "sleep"
        ])).trim()
        const uid = yield* Effect.scoped(
          Effect.gen(function* () {
            yield* Layer.build(ProcessNode.layer({ nodeName: "crash-node", containerRuntime: "podman" }))
            const left = yield* listContainers({ "process-node.kube-testenv/node": "crash-node" })
            assert.notInclude(
              left.map((container) => container.id),
              stale
            )
            const pod = yield* kube.create(NodePod, {
              metadata: { name: "long-running", namespace },
              // Bound up front, so only this node runs it.
              spec: { nodeName: "crash-node", containers: [probeContainer(nonRoot, ["sleep"])] }
            })
            yield* podPhase(namespace, "long-running", "Running")
            const mine = yield* listContainers({ "io.kubernetes.pod.uid": pod.metadata.uid ?? "" })
            assert.strictEqual(mine.length, 1)
            return pod.metadata.uid ?? ""
          })
        )
        assert.deepStrictEqual(yield* listContainers({ "io.kubernetes.pod.uid": uid }), [])
        assert.deepStrictEqual(yield* listContainers({ "process-node.kube-testenv/node": "crash-node" }), [])
        const error = yield* kube.get(Node, "crash-node").pipe(Effect.flip)
        assert.strictEqual(error._tag, "NotFound")
      })
    )

    it.effect("a Deployment's replicas run Ready (httpGet and exec probes), each on its own Pod IP", () =>
      Effect.gen(function* () {
        const kube = yield* KubeClient
        const { nonRoot } = yield* images
        const namespace = yield* namespaceFor("deploy")
        const labels = { app: "web" }
        yield* kube.request({
          method: "POST",
          path: `/apis/apps/v1/namespaces/${namespace}/deployments`,
          body: {
            metadata: { name: "web" },
            spec: {
              replicas: 2,
              selector: { matchLabels: labels },
              template: {
                metadata: { labels },
                spec: {
                  containers: [
                    probeContainer(nonRoot, ["serve", "$(POD_IP):8080"], {
                      env: [{ name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } }],
                      ports: [{ name: "http", containerPort: 8080 }],
                      // Ready only once the server answers on the Pod IP; alive while `podman exec` succeeds.
                      readinessProbe: { httpGet: { path: "/", port: "http" }, periodSeconds: 1 },
                      livenessProbe: {
                        exec: { command: ["/probe", "exit", "0"] },
                        periodSeconds: 1,
                        timeoutSeconds: 10
                      }
                    })
                  ]
                }
              }
            }
          }
        })
        const Status = Schema.Struct({
          status: Schema.optionalKey(Schema.Struct({ availableReplicas: Schema.optionalKey(Schema.Int) }))
        })
        yield* waitFor(
          "2 available replicas",
          kube.request({ method: "GET", path: `/apis/apps/v1/namespaces/${namespace}/deployments/web` }).pipe(
            Effect.flatMap(Schema.decodeUnknownEffect(Status)),
            Effect.flatMap((deployment) =>
              deployment.status?.availableReplicas === 2
                ? Effect.void
                : notReady(`available: ${deployment.status?.availableReplicas}`)
            )
          )
        )
        const listed = yield* kube.list(NodePod, { namespace, labelSelector: "app=web" })
        const pods = yield* Effect.forEach(listed.items, (pod) => getPod(namespace, pod.metadata.name ?? ""))
        assert.strictEqual(pods.length, 2)
        const addresses = pods.map((pod) => pod.status?.podIP ?? "")
        assert.strictEqual(new Set(addresses).size, 2)
        for (const pod of pods) {
          assert.strictEqual(pod.status?.phase, "Running")
          assert.strictEqual(pod.status?.conditions?.find((condition) => condition.type === "Ready")?.status, "True")
        }
        for (const address of addresses) {
          assert.notStrictEqual(address, "127.0.0.1")
          const answer = yield* waitFor(
            `the replica on ${address}`,
            Effect.tryPromise({
              try: async () => (await fetch(`http://${address}:8080/`)).text(),
              catch: (cause) => new NotReady({ reason: String(cause) })
            }),
            "30 seconds"
          )
          assert.strictEqual(answer, `${address}:8080\n`)
        }
        // A failing exec readiness probe keeps a running container unready.
        yield* kube.create(NodePod, {
          metadata: { name: "unready", namespace },
          spec: {
            containers: [
              probeContainer(nonRoot, ["sleep"], {
                readinessProbe: { exec: { command: ["/probe", "exit", "1"] }, periodSeconds: 1, timeoutSeconds: 10 }
              })
            ]
          }
        })
        yield* waitFor(
          "the unready pod running",
          getPod(namespace, "unready").pipe(
            Effect.flatMap((pod) => (pod.status?.phase === "Running" ? Effect.void : notReady(`${pod.status?.phase}`)))
          )
        )
        // Never Ready meanwhile. The bound: with a 1 s period, 4 s are four failing probes, and a
        // Pod made Ready on a failing probe would show after the first.
        yield* getPod(namespace, "unready").pipe(
          Effect.tap((pod) =>
            Effect.sync(() =>
              assert.notStrictEqual(
                pod.status?.conditions?.find((condition) => condition.type === "Ready")?.status,
                "True"
              )
            )
          ),
          Effect.repeat(Schedule.spaced("100 millis")),
          Effect.timeoutOption("4 seconds")
        )
        const unready = yield* getPod(namespace, "unready")
        assert.strictEqual(unready.status?.conditions?.find((condition) => condition.type === "Ready")?.status, "False")
        assert.strictEqual(unready.status?.containerStatuses?.[0]?.ready, false)
        for (const pod of yield* Effect.forEach(listed.items, (item) => getPod(namespace, item.metadata.name ?? ""))) {
          assert.strictEqual(pod.status?.containerStatuses?.[0]?.restartCount, 0, "the exec liveness probe passes")
        }
      })
    )
  })
}
