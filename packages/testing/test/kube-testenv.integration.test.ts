import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { listProcesses, type ProcessInfo } from "@db-backup-operator/testing"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Schedule } from "effect"

const cli = fileURLToPath(new URL("../bin/kube-testenv.js", import.meta.url))

const widgetCrd = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: { plural: widgets, singular: widget, kind: Widget }
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: { type: object, properties: { size: { type: integer } } }
`

const descendants = (all: ReadonlyArray<ProcessInfo>, root: number): ReadonlyArray<ProcessInfo> => {
  const found = all.filter((p) => p.ppid === root)
  return found.flatMap((p) => [p, ...descendants(all, p.pid)])
}

// The CLI runs as a plain child of this test (not detached), so SIGTERM reaches only it:
// tearing its servers down is its own job. If the test fails first, it is killed outright.
const startCli = (args: ReadonlyArray<string>) =>
  Effect.acquireRelease(
    Effect.gen(function* () {
      const exited = yield* Deferred.make<number | string>()
      const output: Array<string> = []
      const child: ChildProcess = spawn(process.execPath, [cli, ...args], { stdio: ["ignore", "pipe", "pipe"] })
      child.stdout?.on("data", (chunk: Buffer) => output.push(chunk.toString()))
      child.stderr?.on("data", (chunk: Buffer) => output.push(chunk.toString()))
      child.on("exit", (code, signal) => Deferred.doneUnsafe(exited, Effect.succeed(code ?? signal ?? "unknown")))
      return { child, exited, output }
    }),
    ({ child }) => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"))
  )

describe("kube-testenv up", () => {
  it.live(
    "starts everything, writes DIR/env and DIR/kubeconfig when ready, and tears down on SIGTERM",
    () =>
      Effect.gen(function* () {
        const dir = mkdtempSync(join(tmpdir(), "kube-testenv-cli-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
        const crd = join(dir, "widgets.yaml")
        writeFileSync(crd, widgetCrd)
        const envDir = join(dir, "env-dir")
        const up = yield* startCli(["up", "--dir", envDir, "--postgres", "--gcs", "--bucket", "backups", "--crds", crd])

        const envFile = join(envDir, "env")
        yield* Effect.suspend(() =>
          existsSync(envFile)
            ? Effect.void
            : Deferred.isDone(up.exited).pipe(
                Effect.flatMap((done) =>
                  done
                    ? Effect.die(new Error(`kube-testenv exited early:\n${up.output.join("")}`))
                    : Effect.fail("wait")
                )
              )
        ).pipe(Effect.retry(Schedule.spaced("200 millis")), Effect.timeout("10 minutes"))

        const env = Object.fromEntries(
          readFileSync(envFile, "utf8")
            .trim()
            .split("\n")
            .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)])
        )
        assert.includeMembers(Object.keys(env), ["PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "GCS_ENDPOINT"])
        const kubeconfig = join(envDir, "kubeconfig")
        const namespaces = execFileSync("kubectl", ["--kubeconfig", kubeconfig, "get", "ns", "-o", "name"], {
          encoding: "utf8",
          stdio: ["ignore", "pipe", "pipe"]
        })
        assert.include(namespaces, "namespace/default")
        const crds = execFileSync("kubectl", ["--kubeconfig", kubeconfig, "get", "widgets", "-A"], {
          encoding: "utf8",
          stdio: ["ignore", "pipe", "pipe"]
        })
        assert.strictEqual(crds, "")
        const buckets = yield* Effect.promise(() =>
          fetch(`${env.GCS_ENDPOINT}/storage/v1/b`).then((r) => r.json() as Promise<{ items: Array<{ name: string }> }>)
        )
        assert.deepStrictEqual(
          buckets.items.map((b) => b.name),
          ["backups"]
        )
        assert.include(up.output.join(""), "ready in")

        const tree = descendants(yield* listProcesses, up.child.pid ?? -1)
        const names = tree.map((p) => p.cmdline[0] ?? "")
        for (const server of ["etcd", "kube-apiserver", "kube-controller-manager", "postgres", "fake-gcs-server"]) {
          assert.isTrue(
            names.some((n) => n.endsWith(`/${server}`) || (server === "etcd" && n.endsWith("/server"))),
            `${server} runs`
          )
        }

        up.child.kill("SIGTERM")
        const code = yield* Deferred.await(up.exited).pipe(Effect.timeout("60 seconds"))
        assert.strictEqual(code, 0, up.output.join(""))
        assert.isFalse(existsSync(envFile), "env removed on exit")
        assert.isFalse(existsSync(kubeconfig), "kubeconfig removed on exit")
        const pids = tree.map((p) => p.pid)
        const leftovers = (yield* listProcesses).filter((p) => pids.includes(p.pid) && p.state !== "Z")
        assert.deepStrictEqual(leftovers, [])
      }),
    900_000
  )
})
