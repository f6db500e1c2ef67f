import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { ControlPlane, type ControlPlaneShape, listProcesses } from "@db-backup-operator/testing"
import { assert, describe, it, layer } from "@effect/vitest"
import { Context, Effect, Layer, Schedule } from "effect"

const job = (namespace: string) =>
  JSON.stringify({
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: { name: "hello", namespace },
    spec: {
      backoffLimit: 0,
      template: {
        spec: { restartPolicy: "Never", containers: [{ name: "main", image: "busybox", command: ["true"] }] }
      }
    }
  })

const ok = (cp: ControlPlaneShape, args: ReadonlyArray<string>, stdin?: string) =>
  cp.kubectl(args, stdin === undefined ? {} : { stdin }).pipe(
    Effect.tap((r) => Effect.sync(() => assert.strictEqual(r.exitCode, 0, `kubectl ${args.join(" ")}: ${r.stderr}`))),
    Effect.map((r) => r.stdout)
  )

// Polls a kubectl query until `done` holds for its stdout (controllers act asynchronously).
const eventually = (cp: ControlPlaneShape, args: ReadonlyArray<string>, done: (stdout: string) => boolean) =>
  cp.kubectl(args).pipe(
    Effect.flatMap((r) => (done(r.stdout) ? Effect.succeed(r.stdout) : Effect.fail(`not yet: ${r.stdout}${r.stderr}`))),
    Effect.retry(Schedule.spaced("200 millis")),
    Effect.timeout("60 seconds")
  )

layer(ControlPlane.layer(), { timeout: "30 minutes", excludeTestServices: true })("ControlPlane", (it) => {
  it.effect("serves the API over TLS to the admin kubeconfig, as the real kubectl sees it", () =>
    Effect.gen(function* () {
      const cp = yield* ControlPlane
      assert.match(cp.server, /^https:\/\/127\.0\.0\.1:\d+$/u)
      assert.include(readFileSync(cp.kubeconfigPath, "utf8"), cp.server)
      const namespaces = yield* ok(cp, ["get", "namespaces", "-o", "name"])
      assert.includeMembers(namespaces.trim().split("\n"), ["namespace/default", "namespace/kube-system"])
      assert.strictEqual((yield* ok(cp, ["auth", "can-i", "*", "*"])).trim(), "yes")
    })
  )

  it.effect("runs the Job and service account controllers", () =>
    Effect.gen(function* () {
      const cp = yield* ControlPlane
      yield* ok(cp, ["create", "namespace", "jobs"])
      // serviceaccount-controller makes `default` in every namespace
      yield* eventually(cp, ["get", "serviceaccount", "default", "-n", "jobs", "-o", "name"], (s) =>
        s.includes("default")
      )
      yield* ok(cp, ["apply", "-f", "-"], job("jobs"))
      assert.strictEqual((yield* ok(cp, ["get", "job", "hello", "-n", "jobs", "-o", "name"])).trim(), "job.batch/hello")
      // job-controller creates the Pod; with no node it stays Pending
      const pods = yield* eventually(
        cp,
        [
          "get",
          "pods",
          "-n",
          "jobs",
          "-l",
          "batch.kubernetes.io/job-name=hello",
          "-o",
          "jsonpath={.items[*].status.phase}"
        ],
        (s) => s.trim().length > 0
      )
      assert.strictEqual(pods.trim(), "Pending")
    })
  )

  it.effect("deletes a namespace with its contents (namespace controller)", () =>
    Effect.gen(function* () {
      const cp = yield* ControlPlane
      yield* ok(cp, ["create", "namespace", "doomed"])
      yield* ok(cp, ["create", "configmap", "x", "-n", "doomed", "--from-literal=a=b"])
      yield* ok(cp, ["delete", "namespace", "doomed", "--wait=true", "--timeout=90s"])
      const after = yield* cp.kubectl(["get", "namespace", "doomed"])
      assert.notStrictEqual(after.exitCode, 0)
      assert.include(after.stderr, "NotFound")
    })
  )

  it.effect("restarts kube-apiserver on the same port, keeping etcd's data", () =>
    Effect.gen(function* () {
      const cp = yield* ControlPlane
      yield* ok(cp, ["create", "namespace", "survivor"])
      yield* cp.restartApiServer
      assert.strictEqual((yield* ok(cp, ["get", "namespace", "survivor", "-o", "name"])).trim(), "namespace/survivor")
    })
  )

  it.effect("restarts etcd on its data under a running kube-apiserver, which serves reads and writes again", () =>
    Effect.gen(function* () {
      const cp = yield* ControlPlane
      const etcdPid = () => Number(readFileSync(join(cp.dir, "etcd.pid"), "utf8"))
      yield* ok(cp, ["create", "namespace", "etcd-survivor"])
      const before = etcdPid()
      yield* cp.restartEtcd
      // A new etcd process, not the old one left running.
      assert.notStrictEqual(etcdPid(), before)
      // Same data directory: what was written before is still there, with no retry needed.
      assert.strictEqual(
        (yield* ok(cp, ["get", "namespace", "etcd-survivor", "-o", "name"])).trim(),
        "namespace/etcd-survivor"
      )
      yield* ok(cp, ["create", "configmap", "after-restart", "-n", "etcd-survivor", "--from-literal=a=b"])
      assert.strictEqual(
        (yield* ok(cp, [
          "get",
          "configmap",
          "after-restart",
          "-n",
          "etcd-survivor",
          "-o",
          "jsonpath={.data.a}"
        ])).trim(),
        "b"
      )
    })
  )
})

describe("ControlPlane teardown", () => {
  it.live(
    "leaves no process of its own running once released",
    () =>
      Effect.gen(function* () {
        const started = yield* Effect.scoped(
          Effect.gen(function* () {
            const cp = Context.get(yield* Layer.build(ControlPlane.layer()), ControlPlane)
            const pids = readdirSync(cp.dir)
              .filter((f) => f.endsWith(".pid"))
              .map((f) => ({ name: f.replace(/\.pid$/u, ""), pid: Number(readFileSync(join(cp.dir, f), "utf8")) }))
            assert.sameMembers(
              pids.map((p) => p.name),
              ["etcd", "kube-apiserver", "kube-controller-manager"]
            )
            const all = yield* listProcesses
            for (const { name, pid } of pids) {
              const info = all.find((p) => p.pid === pid)
              assert.isDefined(info, `${name} runs`)
              assert.strictEqual(info?.pgid, pid, `${name} leads its own process group`)
            }
            return { pids: pids.map((p) => p.pid), dir: cp.dir }
          })
        )
        const leftovers = (yield* listProcesses).filter(
          (p) =>
            p.state !== "Z" &&
            (started.pids.includes(p.pid) ||
              started.pids.includes(p.pgid) ||
              p.cmdline.some((arg) => arg.includes(started.dir)))
        )
        assert.deepStrictEqual(leftovers, [])
      }),
    600_000
  )
})
