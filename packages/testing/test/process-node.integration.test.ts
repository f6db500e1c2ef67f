import {
  Job,
  jobOutcome,
  KubeClient,
  type KubeError,
  Namespace,
  Node,
  Pod,
  Secret,
  ServiceAccount
} from "@db-backup-operator/kube"
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Layer, Schedule, Schema } from "effect"
import { ControlPlane, NotReady, waitUntilReady } from "../src/index.ts"
import { type NodeContainer, NodePod, ProcessNode } from "../src/node/index.ts"

class Timeout extends Schema.TaggedError<Timeout>()("Timeout", { message: Schema.String }) {}

/** Polls until `probe` succeeds (it fails with NotReady meanwhile). */
const eventually = <A, R>(
  what: string,
  probe: Effect.Effect<A, NotReady | KubeError, R>,
  timeout: `${number} seconds` = "60 seconds"
) =>
  waitUntilReady(probe, {
    interval: "250 millis",
    timeout,
    onTimeout: (reason) => new Timeout({ message: `${what}: ${reason}` })
  })

const notReady = (reason: string) => Effect.fail(new NotReady({ reason }))

let namespaces = 0
/** A fresh namespace per test, usable once its default ServiceAccount exists. */
const freshNamespace = (prefix: string) =>
  Effect.gen(function* () {
    const kube = yield* KubeClient
    const name = `${prefix}-${++namespaces}-${Math.random().toString(36).slice(2, 7)}`
    yield* kube.create(Namespace, { metadata: { name } })
    yield* eventually(
      `default ServiceAccount in ${name}`,
      kube
        .get(ServiceAccount, "default", { namespace: name })
        .pipe(Effect.catchTag("NotFound", () => notReady("not created yet")))
    )
    return name
  })

const node = process.execPath

const createJob = (
  namespace: string,
  name: string,
  command: ReadonlyArray<string>,
  options: { readonly backoffLimit?: number; readonly restartPolicy?: "Never" | "OnFailure" } = {}
) =>
  KubeClient.use((kube) =>
    kube.create(Job, {
      metadata: { name, namespace },
      spec: {
        backoffLimit: options.backoffLimit ?? 0,
        template: {
          spec: {
            restartPolicy: options.restartPolicy ?? "Never",
            containers: [{ name: "main", image: "busybox", command: [...command] }]
          }
        }
      }
    })
  )

const waitForJob = (namespace: string, name: string, outcome: "Complete" | "Failed") =>
  KubeClient.use((kube) =>
    eventually(
      `job ${namespace}/${name} ${outcome}`,
      Effect.gen(function* () {
        const job = yield* kube.get(Job, name, { namespace })
        const current = jobOutcome(job)
        if (current === undefined) return yield* notReady(`status ${JSON.stringify(job.status ?? {})}`)
        return { job, current }
      })
    )
  )

const jobPods = (namespace: string, job: string) =>
  KubeClient.use((kube) =>
    kube
      .list(Pod, { namespace, labelSelector: `batch.kubernetes.io/job-name=${job}` })
      .pipe(Effect.map((list) => list.items))
  )

const podPhase = (namespace: string, name: string, phase: string) =>
  KubeClient.use((kube) =>
    eventually(
      `pod ${namespace}/${name} ${phase}`,
      Effect.gen(function* () {
        const pod = yield* kube.get(Pod, name, { namespace })
        if (pod.status?.phase !== phase) return yield* notReady(`phase ${pod.status?.phase}`)
        return pod
      })
    )
  )

/**
 * The pid behind a container (`containerID: process://<pid>`); read raw, since
 * the client's Pod schema does not model containerID.
 */
const pidOf = (namespace: string, pod: string) =>
  KubeClient.use((kube) =>
    kube.request({ method: "GET", path: `/api/v1/namespaces/${namespace}/pods/${pod}` }).pipe(
      Effect.map((raw) => {
        const id = /"containerID":"process:\/\/(\d+)"/u.exec(JSON.stringify(raw))?.[1]
        assert.isDefined(id, "containerID process://<pid>")
        return Number(id)
      })
    )
  )

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

const KubeLive = Layer.unwrap(
  ControlPlane.useSync((controlPlane) => KubeClient.layer({ _tag: "File", path: controlPlane.kubeconfigPath }))
)

const TestEnv = ProcessNode.layer({
  imageMap: { "example.com/echo:1.0": "/bin/echo mapped entrypoint" }
}).pipe(Layer.provideMerge(KubeLive), Layer.provideMerge(ControlPlane.layer()))

layer(TestEnv, { timeout: "180 seconds", excludeTestServices: true })("ProcessNode", (it) => {
  describe("Jobs through the real Job controller", () => {
    it.effect("a container that exits 0 completes its Job", () =>
      Effect.gen(function* () {
        const namespace = yield* freshNamespace("ok")
        yield* createJob(namespace, "hello", [node, "-e", "console.log('hello from', process.env.HOSTNAME)"])
        const { current } = yield* waitForJob(namespace, "hello", "Complete")
        assert.strictEqual(current, "Complete")
        const [pod] = yield* jobPods(namespace, "hello")
        assert.isDefined(pod)
        if (pod === undefined) return
        assert.strictEqual(pod.spec.nodeName, "process-node")
        assert.strictEqual(pod.status?.phase, "Succeeded")
        const terminated = pod.status?.containerStatuses?.[0]?.state?.terminated
        assert.strictEqual(terminated?.exitCode, 0)
        assert.strictEqual(terminated?.reason, "Completed")
        assert.isString(terminated?.startedAt)
        assert.isString(terminated?.finishedAt)
        const logs = yield* ProcessNode.use((n) => n.logs(namespace, pod.metadata.name ?? ""))
        assert.strictEqual(logs, `hello from ${pod.metadata.name}\n`)
        // Its own loopback address, not the host's.
        assert.match(pod.status?.podIP ?? "", /^127\.\d+\.\d+\.\d+$/u)
        assert.notStrictEqual(pod.status?.podIP, "127.0.0.1")
        assert.strictEqual(pod.status?.hostIP, "127.0.0.1")
        // kubectl logs: kube-apiserver's pods/log proxy reaches the node's log endpoint.
        const kubectlLogs = yield* ControlPlane.use((controlPlane) =>
          controlPlane.kubectl(["logs", "-n", namespace, pod.metadata.name ?? ""])
        )
        assert.strictEqual(kubectlLogs.exitCode, 0, kubectlLogs.stderr)
        assert.strictEqual(kubectlLogs.stdout, `hello from ${pod.metadata.name}\n`)
      })
    )

    it.effect("a container that exits 1 with backoffLimit 0 fails its Job", () =>
      Effect.gen(function* () {
        const namespace = yield* freshNamespace("fail")
        yield* createJob(namespace, "broken", ["/bin/false"])
        const { job, current } = yield* waitForJob(namespace, "broken", "Failed")
        assert.strictEqual(current, "Failed")
        assert.strictEqual(job.status?.conditions?.find((c) => c.type === "Failed")?.reason, "BackoffLimitExceeded")
        const [pod] = yield* jobPods(namespace, "broken")
        assert.strictEqual(pod?.status?.phase, "Failed")
        assert.deepStrictEqual(
          [
            pod?.status?.containerStatuses?.[0]?.state?.terminated?.exitCode,
            pod?.status?.containerStatuses?.[0]?.state?.terminated?.reason
          ],
          [1, "Error"]
        )
      })
    )

    it.effect("restartPolicy OnFailure restarts the container and counts the restart", () =>
      Effect.gen(function* () {
        const namespace = yield* freshNamespace("restart")
        // Fails the first time, succeeds once the marker it left in the Pod's working dir exists.
        const script =
          "const fs = require('fs'); if (!fs.existsSync('marker')) { fs.writeFileSync('marker', ''); process.exit(3) }"
        yield* createJob(namespace, "flaky", [node, "-e", script], { restartPolicy: "OnFailure", backoffLimit: 2 })
        yield* waitForJob(namespace, "flaky", "Complete")
        const [pod] = yield* jobPods(namespace, "flaky")
        const status = pod?.status?.containerStatuses?.[0]
        assert.strictEqual(status?.restartCount, 1)
        assert.strictEqual(status?.state?.terminated?.exitCode, 0)
      })
    )

    it.effect("deleting a Job in the background removes its Pods through the garbage collector", () =>
      Effect.gen(function* () {
        const kube = yield* KubeClient
        const namespace = yield* freshNamespace("gc")
        yield* createJob(namespace, "sleeper", [node, "-e", "setInterval(() => {}, 1000)"])
        const running = yield* eventually(
          "a running pod",
          Effect.gen(function* () {
            const [pod] = yield* jobPods(namespace, "sleeper")
            if (pod?.status?.phase !== "Running") return yield* notReady(`phase ${pod?.status?.phase}`)
            return pod
          })
        )
        const pid = yield* pidOf(namespace, running.metadata.name ?? "")
        assert.isTrue(isAlive(pid))
        yield* kube.delete(Job, "sleeper", { namespace, propagationPolicy: "Background" })
        yield* eventually(
          "the job's pods gone",
          Effect.gen(function* () {
            const pods = yield* jobPods(namespace, "sleeper")
            if (pods.length > 0) return yield* notReady(`${pods.length} pods left`)
          })
        )
        assert.isFalse(isAlive(pid))
      })
    )
  })

  describe("Pod deletion", () => {
    it.effect("kills a running Pod within the capped grace period, reports it terminated, then deletes it", () =>
      Effect.gen(function* () {
        const kube = yield* KubeClient
        const namespace = yield* freshNamespace("delete")
        // Ignores SIGTERM, so only the SIGKILL after the (capped) grace period ends it. It says
        // when its handler is in place: "Running" only means the process was started, and a
        // SIGTERM before node has run the script ends it with 143 (seen on a loaded machine).
        const stubborn =
          "process.on('SIGTERM', () => console.log('ignoring SIGTERM')); console.log('ready'); setInterval(() => {}, 1000)"
        yield* kube.create(Pod, {
          // A finalizer of our own keeps the object around to read its last status.
          metadata: { name: "stubborn", namespace, finalizers: ["example.com/hold"] },
          spec: {
            terminationGracePeriodSeconds: 30,
            containers: [{ name: "main", image: "busybox", command: [node, "-e", stubborn] }]
          }
        })
        yield* podPhase(namespace, "stubborn", "Running")
        yield* eventually(
          "the SIGTERM handler in place",
          ProcessNode.use((n) => n.logs(namespace, "stubborn")).pipe(
            Effect.orElseSucceed(() => ""),
            Effect.flatMap((logs) =>
              logs.includes("ready") ? Effect.void : notReady(`logs so far: ${JSON.stringify(logs)}`)
            )
          )
        )
        const pid = yield* pidOf(namespace, "stubborn")
        const started = Date.now()
        yield* kube.delete(Pod, "stubborn", { namespace })
        const pod = yield* podPhase(namespace, "stubborn", "Failed")
        const elapsed = Date.now() - started
        assert.isFalse(isAlive(pid))
        assert.isBelow(elapsed, 15_000, "the 30 s grace period is capped")
        const terminated = pod.status?.containerStatuses?.[0]?.state?.terminated
        assert.deepStrictEqual([terminated?.exitCode, terminated?.reason], [137, "Error"])
        assert.isDefined(pod.metadata.deletionTimestamp)
        assert.strictEqual(yield* ProcessNode.use((n) => n.logs(namespace, "stubborn")), "ready\nignoring SIGTERM\n")
        yield* kube.mergePatch(Pod, "stubborn", { metadata: { finalizers: null } }, { namespace })
        yield* eventually(
          "the pod gone",
          kube.get(Pod, "stubborn", { namespace }).pipe(
            Effect.flatMap(() => notReady("still there")),
            Effect.catchTag("NotFound", () => Effect.void)
          )
        )
      })
    )
  })

  describe("containers", () => {
    it.effect("a missing secret leaves the Pod in CreateContainerConfigError until it exists", () =>
      Effect.gen(function* () {
        const kube = yield* KubeClient
        const namespace = yield* freshNamespace("secret")
        yield* kube.create(Pod, {
          metadata: { name: "needs-secret", namespace },
          spec: {
            restartPolicy: "Never",
            containers: [
              {
                name: "main",
                image: "busybox",
                command: [node, "-e", "console.log('password=' + process.env.PASSWORD)"],
                env: [{ name: "PASSWORD", valueFrom: { secretKeyRef: { name: "db", key: "password" } } }]
              }
            ]
          }
        })
        const waiting = yield* eventually(
          "CreateContainerConfigError",
          Effect.gen(function* () {
            const pod = yield* kube.get(Pod, "needs-secret", { namespace })
            const state = pod.status?.containerStatuses?.[0]?.state?.waiting
            if (state?.reason !== "CreateContainerConfigError") return yield* notReady(JSON.stringify(state))
            return { pod, state }
          })
        )
        assert.strictEqual(waiting.state.message, 'secret "db" not found')
        assert.strictEqual(waiting.pod.status?.phase, "Pending")

        yield* kube.create(Secret, {
          metadata: { name: "db", namespace },
          data: { other: Buffer.from("x").toString("base64") }
        })
        yield* eventually(
          "the missing key reported",
          Effect.gen(function* () {
            const pod = yield* kube.get(Pod, "needs-secret", { namespace })
            const message = pod.status?.containerStatuses?.[0]?.state?.waiting?.message
            if (message !== `couldn't find key password in Secret ${namespace}/db`) return yield* notReady(`${message}`)
          })
        )
        yield* kube.mergePatch(
          Secret,
          "db",
          { data: { password: Buffer.from("s3cr3t!").toString("base64") } },
          { namespace }
        )
        yield* podPhase(namespace, "needs-secret", "Succeeded")
        assert.strictEqual(yield* ProcessNode.use((n) => n.logs(namespace, "needs-secret")), "password=s3cr3t!\n")
      })
    )

    it.effect("the termination message file becomes terminated.message", () =>
      Effect.gen(function* () {
        const kube = yield* KubeClient
        const namespace = yield* freshNamespace("message")
        const write =
          "require('fs').writeFileSync(process.env.TERMINATION_MESSAGE_PATH, 'dump failed: disk full'); process.exit(1)"
        yield* kube.create(Pod, {
          metadata: { name: "reports", namespace },
          spec: {
            restartPolicy: "Never",
            containers: [{ name: "main", image: "busybox", command: [node, "-e", write] }]
          }
        })
        yield* kube.create(Pod, {
          metadata: { name: "falls-back", namespace },
          spec: {
            restartPolicy: "Never",
            containers: [
              {
                name: "main",
                image: "busybox",
                command: [node, "-e", "console.error('connection refused'); process.exit(2)"],
                terminationMessagePolicy: "FallbackToLogsOnError"
              }
            ]
          }
        })
        const reports = yield* podPhase(namespace, "reports", "Failed")
        const terminated = reports.status?.containerStatuses?.[0]?.state?.terminated
        assert.deepStrictEqual(
          [terminated?.exitCode, terminated?.reason, terminated?.message],
          [1, "Error", "dump failed: disk full"]
        )
        const fallsBack = yield* podPhase(namespace, "falls-back", "Failed")
        assert.strictEqual(fallsBack.status?.containerStatuses?.[0]?.state?.terminated?.message, "connection refused")
      })
    )

    it.effect("a mapped image runs its command with the container's args", () =>
      Effect.gen(function* () {
        const kube = yield* KubeClient
        const namespace = yield* freshNamespace("mapped")
        yield* kube.create(Pod, {
          metadata: { name: "echo", namespace },
          spec: {
            restartPolicy: "Never",
            containers: [
              {
                name: "main",
                image: "example.com/echo:1.0",
                args: ["one two", "$(GREETING)"],
                env: [{ name: "GREETING", value: "hi" }]
              },
              { name: "override", image: "example.com/echo:1.0", command: ["/bin/echo", "own"], args: ["x"] }
            ]
          }
        })
        yield* podPhase(namespace, "echo", "Succeeded")
        assert.strictEqual(yield* ProcessNode.use((n) => n.logs(namespace, "echo")), "mapped entrypoint one two hi\n")
        assert.strictEqual(yield* ProcessNode.use((n) => n.logs(namespace, "echo", "override")), "own x\n")
      })
    )

    it.effect("an unmapped image without a command fails to start like a missing executable", () =>
      Effect.gen(function* () {
        const kube = yield* KubeClient
        const namespace = yield* freshNamespace("start-error")
        yield* kube.create(Pod, {
          metadata: { name: "nothing", namespace },
          spec: { restartPolicy: "Never", containers: [{ name: "main", image: "postgres:15" }] }
        })
        const pod = yield* podPhase(namespace, "nothing", "Failed")
        const terminated = pod.status?.containerStatuses?.[0]?.state?.terminated
        assert.deepStrictEqual([terminated?.exitCode, terminated?.reason], [128, "StartError"])
        assert.include(terminated?.message, 'image "postgres:15" has no mapping')
      })
    )
  })

  describe("probes", () => {
    /**
     * Serves on $(POD_IP):8081 like the operator's health endpoint: /readyz
     * answers 500 until /ready-on (200 until /ready-off), /healthz answers 500
     * when SICK is set.
     */
    const server = [
      "const http = require('http'); let ready = false",
      "http.createServer((req, res) => {",
      "  if (req.url === '/ready-on' || req.url === '/ready-off') { ready = req.url === '/ready-on'; return res.end('ok') }",
      "  if (req.url === '/readyz') { res.statusCode = ready ? 200 : 500; return res.end(ready ? 'ready' : 'not ready') }",
      "  if (req.url === '/healthz') { res.statusCode = process.env.SICK ? 500 : 200; return res.end() }",
      "  res.statusCode = 404; res.end()",
      "}).listen(8081, process.env.POD_IP, () => console.log('listening on ' + process.env.POD_IP))"
    ].join("\n")

    const serverPod = (namespace: string, name: string, container: Partial<NodeContainer>) =>
      KubeClient.use((kube) =>
        kube.create(NodePod, {
          metadata: { name, namespace },
          spec: {
            restartPolicy: "Always",
            terminationGracePeriodSeconds: 2,
            containers: [
              {
                name: "main",
                image: "busybox",
                command: [node, "-e", server],
                ports: [{ name: "health", containerPort: 8081 }],
                ...container,
                env: [
                  { name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
                  ...(container.env ?? [])
                ]
              }
            ]
          }
        })
      )

    const fetchStatus = (url: string) =>
      Effect.tryPromise({
        try: () => fetch(url).then((response) => response.status),
        catch: (error) => new NotReady({ reason: `${url}: ${String(error)}` })
      })

    const readiness = (namespace: string, name: string, wanted: "True" | "False") =>
      KubeClient.use((kube) =>
        eventually(
          `pod ${namespace}/${name} Ready=${wanted}`,
          Effect.gen(function* () {
            const pod = yield* kube.get(Pod, name, { namespace })
            const ready = pod.status?.conditions?.find((c) => c.type === "Ready")
            const containersReady = pod.status?.conditions?.find((c) => c.type === "ContainersReady")
            if (ready?.status !== wanted || containersReady?.status !== wanted) {
              return yield* notReady(`Ready ${ready?.status}, ContainersReady ${containersReady?.status}`)
            }
            return pod
          }),
          "30 seconds"
        )
      )

    it.effect("an httpGet readinessProbe on a named port makes the Pod Ready only while it answers 200", () =>
      Effect.gen(function* () {
        const namespace = yield* freshNamespace("readiness")
        yield* serverPod(namespace, "web", {
          readinessProbe: {
            httpGet: { path: "/readyz", port: "health" },
            periodSeconds: 1,
            failureThreshold: 2
          },
          // Passes once the server listens (the initial delay covers node's start-up): nothing restarts.
          livenessProbe: {
            tcpSocket: { port: "health" },
            initialDelaySeconds: 3,
            periodSeconds: 1,
            failureThreshold: 2
          }
        })
        const running = yield* podPhase(namespace, "web", "Running")
        const podIP = running.status?.podIP ?? ""
        const base = `http://${podIP}:8081`
        yield* eventually(
          "the server answering",
          fetchStatus(`${base}/readyz`).pipe(
            Effect.flatMap((status) => (status === 500 ? Effect.void : notReady(`status ${status}`)))
          )
        )
        // Several probe periods of 500: never Ready meanwhile. The bound: with a 1 s period, 3 s
        // are three probes, and a Pod made Ready on a failing probe would show after the first.
        yield* KubeClient.use((kube) =>
          kube.get(Pod, "web", { namespace }).pipe(
            Effect.tap((pod) =>
              Effect.sync(() =>
                assert.notStrictEqual(pod.status?.conditions?.find((c) => c.type === "Ready")?.status, "True")
              )
            ),
            Effect.repeat(Schedule.spaced("100 millis")),
            Effect.timeoutOption("3 seconds")
          )
        )
        // And the container is started but unready.
        const unready = yield* readiness(namespace, "web", "False")
        const status = unready.status?.containerStatuses?.[0]
        assert.deepStrictEqual([status?.started, status?.ready], [true, false])
        assert.strictEqual(unready.status?.conditions?.find((c) => c.type === "Ready")?.reason, "ContainersNotReady")

        assert.strictEqual(yield* fetchStatus(`${base}/ready-on`), 200)
        const ready = yield* readiness(namespace, "web", "True")
        assert.strictEqual(ready.status?.containerStatuses?.[0]?.ready, true)

        assert.strictEqual(yield* fetchStatus(`${base}/ready-off`), 200)
        const again = yield* readiness(namespace, "web", "False")
        assert.strictEqual(again.status?.phase, "Running")
        assert.strictEqual(again.status?.containerStatuses?.[0]?.restartCount, 0)
        yield* KubeClient.use((kube) => kube.delete(Pod, "web", { namespace }))
      })
    )

    it.effect("a failing livenessProbe kills the container, which restarts with restartCount incremented", () =>
      Effect.gen(function* () {
        const kube = yield* KubeClient
        const namespace = yield* freshNamespace("liveness")
        yield* serverPod(namespace, "sick", {
          env: [{ name: "SICK", value: "1" }],
          livenessProbe: { httpGet: { path: "/healthz", port: 8081 }, periodSeconds: 1, failureThreshold: 2 }
        })
        yield* eventually(
          "a restart",
          Effect.gen(function* () {
            const pod = yield* kube.get(Pod, "sick", { namespace })
            const restarts = pod.status?.containerStatuses?.[0]?.restartCount ?? 0
            if (restarts < 1) return yield* notReady(`restartCount ${restarts}`)
          })
        )
        // lastState is read raw: the client's Pod schema does not model it.
        const raw = yield* kube.request({ method: "GET", path: `/api/v1/namespaces/${namespace}/pods/sick` })
        const lastState = /"lastState":\{"terminated":\{"exitCode":(\d+)/u.exec(JSON.stringify(raw))?.[1]
        // SIGTERM from the graceful stop: 128 + 15.
        assert.strictEqual(lastState, "143")
        // Without a readinessProbe a started container is Ready: the pod stays Running between kills.
        assert.strictEqual((yield* kube.get(Pod, "sick", { namespace })).status?.phase, "Running")
        yield* kube.delete(Pod, "sick", { namespace })
      })
    )
  })

  describe("resilience", () => {
    it.effect("keeps running Pods across an API server restart (the watch relists)", () =>
      Effect.gen(function* () {
        const kube = yield* KubeClient
        const namespace = yield* freshNamespace("restart-api")
        yield* kube.create(Pod, {
          metadata: { name: "long-running", namespace },
          spec: {
            terminationGracePeriodSeconds: 2,
            containers: [{ name: "main", image: "busybox", command: [node, "-e", "setInterval(() => {}, 1000)"] }]
          }
        })
        const before = yield* podPhase(namespace, "long-running", "Running")
        const pid = yield* pidOf(namespace, "long-running")
        const startedAt = before.status?.containerStatuses?.[0]?.state?.running?.startedAt
        assert.isString(startedAt)

        yield* ControlPlane.use((controlPlane) => controlPlane.restartApiServer)
        // A Pod created after the restart runs to completion: the node's informer is back. It
        // handles changes in order, so by then it has also been through whatever the restart
        // made it do with the Pod that was running (a relist that forgot it would have killed it).
        yield* createJob(namespace, "after-restart", [node, "-e", "console.log('still here')"])
        yield* waitForJob(namespace, "after-restart", "Complete")

        // The very same container: same process, never restarted, still reported running.
        assert.isTrue(isAlive(pid), `process ${pid} survived the restart`)
        assert.strictEqual(yield* pidOf(namespace, "long-running"), pid)
        const after = yield* kube.get(Pod, "long-running", { namespace })
        const status = after.status?.containerStatuses?.[0]
        assert.strictEqual(after.status?.phase, "Running")
        assert.strictEqual(status?.restartCount, 0)
        assert.strictEqual(status?.state?.running?.startedAt, startedAt)
        yield* kube.delete(Pod, "long-running", { namespace })
      })
    )
  })

  describe("teardown", () => {
    it.effect("kills every process group and deletes the Node", () =>
      Effect.gen(function* () {
        const kube = yield* KubeClient
        const namespace = yield* freshNamespace("teardown")
        // The container starts a grandchild in its process group and prints its pid.
        const script =
          "const c = require('child_process').spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' }); console.log(c.pid); setInterval(() => {}, 1000)"
        const pids = yield* Effect.scoped(
          Effect.gen(function* () {
            const context = yield* Layer.build(ProcessNode.layer({ nodeName: "teardown-node" }))
            const teardownNode = yield* Effect.provide(
              ProcessNode.useSync((n) => n),
              context
            )
            yield* kube.create(Pod, {
              metadata: { name: "long-running", namespace },
              // Bound up front (like a DaemonSet Pod), so only this node runs it.
              spec: {
                nodeName: "teardown-node",
                containers: [{ name: "main", image: "busybox", command: [node, "-e", script] }]
              }
            })
            const pod = yield* podPhase(namespace, "long-running", "Running")
            const grandchild = yield* eventually(
              "the grandchild's pid",
              teardownNode.logs(namespace, "long-running").pipe(
                Effect.mapError((e) => new NotReady({ reason: e.message })),
                Effect.flatMap((out) =>
                  out.trim() === "" ? notReady("no output yet") : Effect.succeed(Number(out.trim()))
                )
              )
            )
            assert.isTrue(isAlive(grandchild))
            assert.strictEqual(
              (yield* kube.get(Node, "teardown-node")).status?.conditions?.find((c) => c.type === "Ready")?.status,
              "True"
            )
            return [yield* pidOf(namespace, pod.metadata.name ?? ""), grandchild] as const
          })
        )
        yield* eventually(
          "processes gone",
          Effect.suspend(() => {
            const alive = pids.filter(isAlive)
            return alive.length === 0 ? Effect.void : notReady(`still alive: ${alive.join(", ")}`)
          }),
          "10 seconds"
        )
        const error = yield* kube.get(Node, "teardown-node").pipe(Effect.flip)
        assert.strictEqual(error._tag, "NotFound")
      })
    )
  })
})
