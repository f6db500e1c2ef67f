import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync
} from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { AzureBlobObjectStore, S3ObjectStore } from "@db-backup-operator/storage"
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
const startCli = (args: ReadonlyArray<string>, env: Readonly<Record<string, string>> = {}) =>
  Effect.acquireRelease(
    Effect.gen(function* () {
      const exited = yield* Deferred.make<number | string>()
      const output: Array<string> = []
      const errors: Array<string> = []
      const child: ChildProcess = spawn(process.execPath, [cli, ...args], {
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, ...env }
      })
      child.stdout?.on("data", (chunk: Buffer) => output.push(chunk.toString()))
      child.stderr?.on("data", (chunk: Buffer) => {
        output.push(chunk.toString())
        errors.push(chunk.toString())
      })
      child.on("exit", (code, signal) => Deferred.doneUnsafe(exited, Effect.succeed(code ?? signal ?? "unknown")))
      return { child, exited, output, errors }
    }),
    ({ child }) => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"))
  )

/** Waits for `DIR/env`, which `up` writes last, once everything is ready. */
const untilReady = (up: Effect.Success<ReturnType<typeof startCli>>, envFile: string) =>
  Effect.suspend(() =>
    existsSync(envFile)
      ? Effect.void
      : Deferred.isDone(up.exited).pipe(
          Effect.flatMap((done) =>
            done ? Effect.die(new Error(`kube-testenv exited early:\n${up.output.join("")}`)) : Effect.fail("wait")
          )
        )
  ).pipe(Effect.retry(Schedule.spaced("200 millis")), Effect.timeout("10 minutes"))

const kubectl = (kubeconfig: string, args: ReadonlyArray<string>, input?: string) =>
  execFileSync("kubectl", ["--kubeconfig", kubeconfig, ...args], {
    encoding: "utf8",
    stdio: ["pipe", "pipe", "pipe"],
    ...(input === undefined ? {} : { input })
  })

const job = (name: string, options: { completions: number; parallelism: number; command: string }) =>
  JSON.stringify({
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: { name, namespace: "default" },
    spec: {
      completions: options.completions,
      parallelism: options.parallelism,
      backoffLimit: 0,
      template: {
        spec: {
          restartPolicy: "Never",
          containers: [{ name: "main", image: "busybox", command: ["sh", "-c", options.command] }]
        }
      }
    }
  })

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
        const up = yield* startCli([
          "up",
          "--dir",
          envDir,
          "--postgres",
          "--gcs",
          "--bucket",
          "backups",
          "--s3-bucket",
          "s3-backups",
          "--azure-container",
          "azure-backups",
          "--crds",
          crd
        ])

        const envFile = join(envDir, "env")
        yield* untilReady(up, envFile)

        const env = Object.fromEntries(
          readFileSync(envFile, "utf8")
            .trim()
            .split("\n")
            .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)])
        )
        assert.includeMembers(Object.keys(env), [
          "PGHOST",
          "PGPORT",
          "PGUSER",
          "PGPASSWORD",
          "GCS_ENDPOINT",
          "S3_ENDPOINT",
          "AWS_ACCESS_KEY_ID",
          "AWS_SECRET_ACCESS_KEY",
          "AZURE_BLOB_ENDPOINT",
          "AZURE_STORAGE_ACCOUNT",
          "AZURE_STORAGE_KEY"
        ])
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
        // The S3 server and Azurite answer with the env's credentials, and hold the asked-for bucket and container.
        const s3 = S3ObjectStore.make({
          endpoint: env.S3_ENDPOINT,
          region: env.AWS_REGION,
          forcePathStyle: true,
          credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID ?? "", secretAccessKey: env.AWS_SECRET_ACCESS_KEY ?? "" }
        })
        assert.deepStrictEqual(yield* s3.list("s3-backups"), [])
        const azure = AzureBlobObjectStore.make({
          accountName: env.AZURE_STORAGE_ACCOUNT ?? "",
          endpoint: env.AZURE_BLOB_ENDPOINT,
          credentials: { accountKey: env.AZURE_STORAGE_KEY ?? "" }
        })
        assert.deepStrictEqual(yield* azure.list("azure-backups"), [])

        const tree = descendants(yield* listProcesses, up.child.pid ?? -1)
        const names = tree.map((p) => p.cmdline[0] ?? "")
        for (const server of [
          "etcd",
          "kube-apiserver",
          "kube-controller-manager",
          "postgres",
          "fake-gcs-server",
          "versitygw"
        ]) {
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

  it.live(
    "after running Pods, SIGTERM releases everything: exit 0, no uncaught error, its temporary directories gone",
    () =>
      Effect.gen(function* () {
        const dir = mkdtempSync(join(tmpdir(), "kube-testenv-sigterm-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
        // Its own TMPDIR, so whatever temporary directory it makes is seen, and must go. The
        // postgres user (PostgreSQL's cluster is its) has to get through to its directory.
        const tmp = join(dir, "tmp")
        mkdirSync(tmp)
        chmodSync(dir, 0o755)
        chmodSync(tmp, 0o755)
        const envDir = join(dir, "env-dir")
        const up = yield* startCli(["up", "--dir", envDir, "--postgres"], { TMPDIR: tmp })
        yield* untilReady(up, join(envDir, "env"))
        const kubeconfig = join(envDir, "kubeconfig")
        assert.isTrue(
          readdirSync(tmp).some((name) => name.startsWith("db-backup-operator-pg-")),
          `PostgreSQL's cluster is under TMPDIR: ${readdirSync(tmp).join(", ")}`
        )

        // One Pod to completion.
        kubectl(
          kubeconfig,
          ["apply", "-f", "-"],
          job("hello", { completions: 1, parallelism: 1, command: "echo hello" })
        )
        kubectl(kubeconfig, ["wait", "--for=condition=Complete", "job/hello", "--timeout=120s"])
        // Then Pods starting and finishing when the signal arrives, so the node's release
        // interrupts Pod workers in the middle of their requests (status reports).
        for (const name of ["churn-a", "churn-b", "churn-c"]) {
          const command = "echo hi; sleep 0.$((RANDOM % 5))"
          kubectl(kubeconfig, ["apply", "-f", "-"], job(name, { completions: 40, parallelism: 4, command }))
        }
        yield* Effect.suspend(() => {
          const succeeded = kubectl(kubeconfig, [
            "get",
            "jobs",
            "-o",
            "jsonpath={range .items[*]}{.status.succeeded}{' '}{end}"
          ])
            .trim()
            .split(/\s+/u)
            .reduce((sum, n) => sum + (Number(n) || 0), 0)
          return succeeded >= 20 ? Effect.void : Effect.fail("wait")
        }).pipe(Effect.retry(Schedule.spaced("1 second")), Effect.timeout("3 minutes"))

        up.child.kill("SIGTERM")
        const code = yield* Deferred.await(up.exited).pipe(Effect.timeout("90 seconds"))
        const stderr = up.errors.join("")
        assert.strictEqual(code, 0, up.output.join(""))
        for (const symptom of ["UND_ERR_DESTROYED", "ClientDestroyedError", "Unhandled 'error' event", "Uncaught"]) {
          assert.notInclude(stderr, symptom, stderr)
        }
        assert.deepStrictEqual(readdirSync(tmp), [], "every temporary directory it made is gone")
        assert.isFalse(existsSync(join(envDir, "env")), "env removed on exit")
      }),
    900_000
  )
})
