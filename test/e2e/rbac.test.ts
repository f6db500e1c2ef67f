import { mkdtempSync, writeFileSync } from "node:fs"
import { readFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Restore } from "@db-backup-operator/backup-api"
import { KubeClient } from "@db-backup-operator/kube"
import { ControlPlane, GcsEmulator, Postgres } from "@db-backup-operator/testing"
import { assert, layer } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { renderChart } from "../chart/helm.ts"
import {
  controlPlaneLayer,
  kubeLayer,
  OperatorProcess,
  originalExample,
  prepareNamespace,
  processNodeLayer,
  seedExampleDatabase
} from "../stack/localStack.ts"
import { KnownSecrets, noLeaksAtRelease } from "../stack/secretLeaks.ts"
import { runnerImage } from "./environment.ts"
import { applyYaml, backupJobs, blackholePort, eventually, getBackup, kubectl, runningBackupPod } from "./support.ts"

// The operator runs with nothing but the Helm chart's ServiceAccount and RBAC, rendered by
// the real helm for the release db-backup-operator in namespace db-backup-operator: a
// ServiceAccount token, the ClusterRole's verbs and the leader-election Role. If the chart
// lacks a verb the code uses, the API server says Forbidden and this test fails.

// The operator starts inside the test, with the chart's RBAC; it writes its log where the stack's
// does (operator.log in the control plane's directory), which the secret check reads.
const environment = noLeaksAtRelease(
  ControlPlane.use((controlPlane) =>
    Effect.promise(() => readFile(`${controlPlane.dir}/operator.log`, "utf8").catch(() => ""))
  )
).pipe(
  Layer.provideMerge(processNodeLayer(runnerImage)),
  Layer.provideMerge(kubeLayer),
  Layer.provideMerge(Layer.mergeAll(controlPlaneLayer, Postgres.layer, GcsEmulator.layer, KnownSecrets.layer))
)

const tokenKubeconfig = (server: string, caPem: string, token: string) => {
  const file = join(mkdtempSync(join(tmpdir(), "operator-sa-")), "kubeconfig")
  writeFileSync(
    file,
    [
      "apiVersion: v1",
      "kind: Config",
      "clusters:",
      `- name: c\n  cluster:\n    server: ${server}\n    certificate-authority-data: ${Buffer.from(caPem).toString("base64")}`,
      `users:\n- name: operator\n  user:\n    token: ${token}`,
      "contexts:\n- name: c\n  context: { cluster: c, user: operator }",
      "current-context: c",
      ""
    ].join("\n"),
    { mode: 0o600 }
  )
  return file
}

layer(environment, { excludeTestServices: true, timeout: "240 seconds" })("least-privilege RBAC", (it) => {
  it.effect(
    "with only the chart's RBAC the operator elects itself, backs up, records the outcome and cleans up",
    () =>
      Effect.gen(function* () {
        const controlPlane = yield* ControlPlane
        yield* kubectl(["create", "namespace", "db-backup-operator"])
        const rbac = yield* renderChart({ showOnly: ["templates/serviceaccount.yaml", "templates/rbac.yaml"] })
        const rbacManifest = join(mkdtempSync(join(tmpdir(), "rbac-chart-")), "rbac.yaml")
        writeFileSync(rbacManifest, rbac)
        yield* kubectl(["apply", "-f", rbacManifest])
        const token = yield* kubectl(["-n", "db-backup-operator", "create", "token", "db-backup-operator"])
        const kubeconfig = tokenKubeconfig(controlPlane.server, controlPlane.caPem, token.trim())
        const operatorContext = yield* Layer.build(
          OperatorProcess.layer({
            runnerImage,
            kubeconfig,
            extraArgs: ["--leader-elect", "true", "--leader-election-namespace", "db-backup-operator"]
          })
        )

        const password = "rbac-Pa55"
        yield* seedExampleDatabase(password)
        const namespace = "backup-job-namespace"
        yield* prepareNamespace(namespace, { name: "backup-secret", password })
        const pg = yield* Postgres
        const file = join(mkdtempSync(join(tmpdir(), "rbac-yaml-")), "backup.yaml")
        writeFileSync(file, originalExample({ namespace, dbHost: pg.host, dbPort: pg.port }))
        yield* kubectl(["apply", "-f", file])

        const done = yield* eventually(
          "status Success",
          Effect.map(getBackup(namespace, "database-backup"), (backup) =>
            backup.status?.status === "Success" ? backup : undefined
          ),
          "180 seconds"
        )
        assert.strictEqual(done.status?.conditions?.find((c) => c.type === "Ready")?.status, "True")
        const lease = yield* kubectl(["-n", "db-backup-operator", "get", "lease", "db-backup-operator", "-o", "name"])
        assert.include(lease, "db-backup-operator")

        // A Restore: its finalizer, its Job, its status, and its deletion (the Job goes first).
        const restoreFile = join(mkdtempSync(join(tmpdir(), "rbac-yaml-")), "restore.yaml")
        writeFileSync(
          restoreFile,
          `apiVersion: backup.csyeteam03.xyz/v1
kind: Restore
metadata: { name: back, namespace: ${namespace} }
spec:
  source: { backupDatabaseSchemaName: database-backup }
  schemaExists: Replace
`
        )
        yield* kubectl(["apply", "-f", restoreFile])
        const restored = yield* eventually(
          "Restore Succeeded",
          Effect.map(
            KubeClient.use((kube) => kube.get(Restore, "back", { namespace })),
            (restore) => (restore.status?.phase === "Succeeded" ? restore : undefined)
          ),
          "180 seconds"
        )
        assert.strictEqual(restored.status?.rowsVerified, true)
        yield* kubectl(["delete", "restore", "back", "-n", namespace, "--wait=true", "--timeout=60s"])

        // The finalizer path with a Job still running: the operator must delete it (the `delete`
        // verb on Jobs) before it removes the finalizer, or the resource is never deleted. A
        // finished Job would prove nothing: the finalizer skips it and the garbage collector
        // removes it with its owner.
        const port = yield* blackholePort
        const stuck = yield* applyYaml(originalExample({ namespace, name: "stuck", dbHost: "127.0.0.1", dbPort: port }))
        assert.strictEqual(stuck.exitCode, 0, stuck.stderr)
        const running = yield* runningBackupPod(namespace)
        const runningJob = running.metadata.labels?.["job-name"] ?? "?"
        yield* kubectl(["delete", "backupdatabaseschema", "stuck", "-n", namespace, "--wait=true", "--timeout=60s"])
        yield* eventually(
          `the running Job ${runningJob} gone`,
          Effect.map(backupJobs(namespace), (jobs) =>
            jobs.some((job) => job.metadata.name === runningJob) ? undefined : true
          )
        )
        yield* kubectl(["delete", "backupdatabaseschema", "database-backup", "-n", namespace, "--wait=true"])
        const logs = yield* Context.get(operatorContext, OperatorProcess).logs
        assert.notInclude(logs.toLowerCase(), "forbidden", "the operator was denied something")
      }),
    { timeout: 240_000 }
  )
})
