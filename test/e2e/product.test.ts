import { BackupDatabaseSchema } from "@db-backup-operator/backup-api"
import { KubeClient, Lease, Pod } from "@db-backup-operator/kube"
import { containerUlimitArgs, GcsEmulator, Postgres, podman, podmanChecked } from "@db-backup-operator/testing"
import { NodeServices } from "@effect/platform-node"
import { assert, layer } from "@effect/vitest"
import { Console, Effect, Fiber, Layer } from "effect"
import {
  helmInCluster,
  installChart,
  installedEnvironment,
  operatorNamespace,
  operatorPods,
  operatorPodsReady,
  release
} from "./installed.ts"
import {
  applyYaml,
  backupJobs,
  createPasswordSecret,
  downloadBackup,
  eventsIn,
  eventually,
  failed,
  getBackup,
  kubectl,
  lastFailedJob,
  originalExample,
  prepareNamespace,
  seedExampleDatabase,
  sha256,
  succeeded
} from "./support.ts"

// The product as a platform engineer runs it: the operator and runner images built from
// docker/, installed by the Helm chart into the local cluster, whose node runs every
// container with podman. Nothing here starts the operator: the chart's Deployment does.
// Its Pods have no kubeconfig, so they authenticate in-cluster with the token the node
// projects, and they can do nothing their ServiceAccount's RBAC (the chart's) does not allow.

const namespace = "backup-job-namespace"
const password = "s3cret-Pa55"
/** Short, so a second run starts soon after the first (the handover needs a run in flight). */
const backupInterval = "15 seconds"

/** The Pod whose name the Lease's holder identity (`<hostname>_<uuid>`, hostname = Pod name) starts with. */
const leader = Effect.gen(function* () {
  const kube = yield* KubeClient
  const lease = yield* kube
    .get(Lease, "db-backup-operator", { namespace: operatorNamespace })
    .pipe(Effect.catchTag("NotFound", () => Effect.succeed(undefined)))
  const holder = lease?.spec?.holderIdentity ?? ""
  const pods = yield* operatorPods
  return pods.find((pod) => holder.startsWith(`${pod.metadata.name ?? "?"}_`))
})

/** How many times an Event says this Job succeeded (an aggregated Event counts its series). */
const successEventsFor = (jobName: string) =>
  Effect.map(eventsIn(namespace), (events) =>
    events
      .filter((event) => event.reason === "BackupSucceeded" && (event.note ?? "").startsWith(`Job ${jobName}:`))
      .reduce((count, event) => count + (event.series?.count ?? 1), 0)
  )

const Environment = Layer.effectDiscard(seedExampleDatabase(password)).pipe(
  Layer.provideMerge(installedEnvironment(Postgres.layer))
)

layer(Environment, { timeout: "600 seconds", excludeTestServices: true })("the product from its images", (it) => {
  it.effect(
    "helm install runs the operator image in-cluster; the runner image backs up; a killed leader hands over; helm uninstall cleans up",
    () =>
      Effect.gen(function* () {
        const pg = yield* Postgres
        const gcs = yield* GcsEmulator
        yield* prepareNamespace(namespace, { name: "backup-secret", password })

        // As README says, with the local images and the emulator's endpoint.
        const installStarted = Date.now()
        const images = yield* installChart([`operator.backupInterval=${backupInterval}`])
        const installed = Date.now()

        // Two replicas from the operator image, each with its own Pod IP, neither with a kubeconfig.
        const pods = yield* operatorPodsReady(2)
        for (const pod of pods) {
          const container = pod.spec.containers[0]
          assert.strictEqual(container?.image, images.operator)
          assert.isUndefined(container?.env?.find((env) => env.name === "KUBECONFIG"))
          assert.strictEqual(pod.status?.containerStatuses?.[0]?.state?.running !== undefined, true)
        }
        assert.notStrictEqual(pods[0]?.status?.podIP, pods[1]?.status?.podIP)
        yield* eventually("a leader", leader)

        // The original example, applied with kubectl as a user would.
        const applied = yield* applyYaml(originalExample({ namespace, dbHost: pg.host, dbPort: pg.port }))
        assert.strictEqual(applied.exitCode, 0, applied.stderr)
        const done = yield* succeeded(namespace, "database-backup", "180 seconds")
        const firstSuccess = Date.now()
        const status = done.status
        assert.isDefined(status)
        if (status === undefined) return
        const firstJob = status.jobName ?? ""
        const job = (yield* backupJobs(namespace)).find((j) => j.metadata.name === firstJob)
        assert.strictEqual(job?.spec?.template.spec?.containers[0]?.image, images.runner)

        // The object is in the bucket, its sha256 is the manifest's and the status's, and it restores.
        const { dump, manifest } = yield* downloadBackup(gcs.endpoint, status.backupLocation ?? "")
        assert.strictEqual(manifest.sha256, sha256(dump))
        assert.strictEqual(status.lastBackupSha256, sha256(dump))
        assert.match(manifest.pgDumpVersion ?? manifest.versions?.pgDump ?? JSON.stringify(manifest), /17\./u)
        // Restored as README's Restore section says, with the runner image's own command: its psql 17
        // into this PostgreSQL 15 server (pg_dump 17's `SET transaction_timeout` left out), as the
        // image's non-root user, on a read-only root filesystem.
        yield* pg.createDatabase("restored", { owner: "team03" })
        const restore = yield* podman(
          [
            "run",
            "--rm",
            "--pull=never",
            "--network=host",
            "--read-only",
            ...containerUlimitArgs,
            "--env=PGPASSWORD",
            `--env=GCS_ENDPOINT=${gcs.endpoint}`,
            images.runner,
            "restore",
            status.backupLocation ?? "",
            "--username=team03",
            "--dbname=restored"
          ],
          { env: { PGPASSWORD: password }, timeout: "3 minutes" }
        ).pipe(Effect.provide(NodeServices.layer))
        assert.strictEqual(restore.exitCode, 0, `${restore.stdout}\n${restore.stderr}`)
        assert.include(restore.stdout, '"restore complete"')
        assert.notInclude(restore.stdout + restore.stderr, password)
        for (const query of ["SELECT * FROM api.items ORDER BY id", "SELECT * FROM api.notes ORDER BY id"]) {
          assert.strictEqual(
            yield* pg.psql(query, { database: "restored" }),
            yield* pg.psql(query, { database: "api" })
          )
        }

        // `kubectl logs` reads the runner's output the way a user does.
        const runnerLog = yield* kubectl(["logs", "-n", namespace, `job/${firstJob}`])
        assert.include(runnerLog, "pg_dump")

        // A failed backup: its Job's log says why, read with `kubectl logs` as in a real cluster.
        yield* createPasswordSecret(namespace, { name: "wrong-secret", password: "not-the-password" })
        const wrong = yield* applyYaml(
          originalExample({
            namespace,
            name: "wrong-password",
            secretName: "wrong-secret",
            dbHost: pg.host,
            dbPort: pg.port
          })
        )
        assert.strictEqual(wrong.exitCode, 0, wrong.stderr)
        // Two Pods fail (backoffLimit 1, 10 s apart) before the Job does.
        const wrongRun = yield* failed(namespace, "wrong-password", "180 seconds")
        const failedJob = yield* lastFailedJob(namespace, wrongRun)
        const failedLog = yield* kubectl(["logs", "-n", namespace, `job/${failedJob?.metadata.name ?? "?"}`])
        assert.include(failedLog, "password authentication failed")
        assert.notInclude(failedLog, "not-the-password")
        yield* kubectl(["delete", "-n", namespace, "backupdatabaseschema", "wrong-password", "--wait=false"])

        // A run in flight: an exclusive lock makes the next run's pg_dump wait.
        const lock = yield* pg
          .psql("BEGIN; LOCK TABLE api.items IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(300); COMMIT;", {
            database: "api"
          })
          .pipe(Effect.ignore, Effect.forkChild)
        const running = yield* eventually(
          "the next run Running",
          Effect.map(getBackup(namespace, "database-backup"), (backup) =>
            backup.status?.status === "Running" && backup.status.jobName !== firstJob ? backup : undefined
          ),
          "120 seconds"
        )
        const inFlight = running.status?.jobName ?? ""
        yield* eventually(
          "the run's pg_dump waiting on the lock",
          Effect.map(
            pg.psql("SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'api.items'::regclass", {
              database: "api"
            }),
            (count) => (Number(count.trim()) > 0 ? true : undefined)
          )
        )

        // Kill the leader's container (as an OOM kill or a crash would): the other replica takes over.
        const before = yield* leader
        assert.isDefined(before)
        const killed = Date.now()
        const containers = yield* podmanChecked([
          "ps",
          "--quiet",
          "--filter",
          `label=io.kubernetes.pod.uid=${before?.metadata.uid ?? "?"}`
        ]).pipe(Effect.provide(NodeServices.layer))
        assert.isAbove(containers.trim().length, 0, "the leader's container is running")
        yield* podmanChecked(["kill", "--signal=KILL", ...containers.trim().split("\n")]).pipe(
          Effect.provide(NodeServices.layer)
        )
        const after = yield* eventually(
          "the other replica leading",
          Effect.map(leader, (pod) =>
            pod !== undefined && pod.metadata.name !== before?.metadata.name ? pod : undefined
          ),
          "60 seconds"
        )
        const handover = (Date.now() - killed) / 1000
        assert.isAtMost(handover, 25, `handover took ${handover} s (Lease: 15 s, retry 2 s)`)
        assert.isDefined(after)

        // Release the lock: the run that was in flight finishes and is recorded once, by the new leader.
        yield* pg.psql(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(300)%' AND pid <> pg_backend_pid()",
          { database: "api" }
        )
        yield* Fiber.join(lock)
        yield* eventually(
          `Job ${inFlight} recorded`,
          Effect.map(successEventsFor(inFlight), (count) => (count > 0 ? count : undefined)),
          "120 seconds"
        )
        yield* Effect.sleep("5 seconds")
        assert.strictEqual(yield* successEventsFor(inFlight), 1, `Job ${inFlight} recorded exactly once`)
        const jobsOfSlot = (yield* backupJobs(namespace)).filter((j) => j.metadata.name === inFlight)
        assert.strictEqual(jobsOfSlot.length, 1)

        yield* Console.log(
          [
            `product e2e: helm install --wait took ${((installed - installStarted) / 1000).toFixed(1)} s`,
            `first Success ${((firstSuccess - installStarted) / 1000).toFixed(1)} s after helm install started`,
            `SIGKILL of the leader's container (${before?.metadata.name ?? "?"}) to ${after?.metadata.name ?? "?"} leading: ${handover.toFixed(1)} s`
          ].join("; ")
        )

        // helm uninstall: no operator Pod and no operator container is left.
        yield* helmInCluster(["uninstall", release, "--namespace", operatorNamespace, "--wait", "--timeout", "2m"])
        yield* eventually(
          "no operator Pod",
          Effect.map(
            KubeClient.use((kube) => kube.list(Pod, { namespace: operatorNamespace })),
            (list) => (list.items.length === 0 ? true : undefined)
          ),
          "120 seconds"
        )
        const leftover = yield* podmanChecked([
          "ps",
          "--all",
          "--quiet",
          "--filter",
          `label=io.kubernetes.pod.namespace=${operatorNamespace}`
        ]).pipe(Effect.provide(NodeServices.layer))
        assert.strictEqual(leftover.trim(), "", "no operator container left")
        // The resource is untouched by the uninstall (CRDs in crds/ are never deleted by helm).
        yield* KubeClient.use((kube) => kube.get(BackupDatabaseSchema, "database-backup", { namespace }))
      }),
    { timeout: 600_000 }
  )
})
