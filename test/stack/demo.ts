import { randomBytes } from "node:crypto"
import { writeFile } from "node:fs/promises"
import { join } from "node:path"
import { BackupDatabaseSchema } from "@db-backup-operator/backup-api"
import { KubeClient } from "@db-backup-operator/kube"
import {
  ControlPlane,
  freePorts,
  GcsEmulator,
  NotReady,
  Postgres,
  ProcessNode,
  untilParentExits,
  waitUntilReady
} from "@db-backup-operator/testing"
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Cause, Console, Context, Effect, Exit, Layer, References, Runtime, Schedule } from "effect"
import {
  controlPlaneLayer,
  exampleBucket,
  exampleItemCount,
  files,
  kubectl,
  kubeLayer,
  OperatorProcess,
  originalExample,
  prepareNamespace,
  processNodeLayer,
  seedExampleDatabase
} from "./localStack.ts"
import { KnownSecrets } from "./secretLeaks.ts"

/**
 * `npm start`: the operator on a laptop, with nothing to install. Starts a
 * local control plane (etcd, kube-apiserver, kube-controller-manager) with the
 * generated CRD, PostgreSQL with the README's `api` database, the GCS emulator
 * with its bucket, a process node that runs backup Pods as local processes (the
 * runner image is the real `db-backup-runner`), and the operator binary; then
 * does what the README tells a user to do (namespace, service account,
 * `kubectl create secret`, `kubectl apply` of the example resource) and follows
 * the resource's status. Runs until Ctrl-C, which stops everything.
 */

const namespace = "backup-job-namespace"
const resourceName = "database-backup"
/** The operator's default runner image, mapped by the process node to the runner on this machine. */
const runnerImage = "db-backup-runner:latest"

const say = (line: string) => Console.log(`demo: ${line}`)
const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`

/** Builds one layer in the current scope and returns its service. */
const start = <I, S, E, R>(tag: Context.Key<I, S>, layer: Layer.Layer<I, E, R>) =>
  Effect.map(Layer.build(layer), (context) => Context.get(context, tag))

/** Waits until the operator answers `/readyz` (its caches are synced), failing fast if it exits. */
const operatorReady = (operator: typeof OperatorProcess.Service, healthPort: number) =>
  waitUntilReady(
    Effect.gen(function* () {
      yield* (yield* operator.current).ensureRunning
      const ok = yield* Effect.promise(() =>
        fetch(`http://127.0.0.1:${healthPort}/readyz`).then(
          (response) => response.ok,
          () => false
        )
      )
      if (!ok) return yield* new NotReady({ reason: "the operator's /readyz does not answer 200 yet" })
    }),
    { interval: "250 millis", timeout: "60 seconds", onTimeout: (reason) => new Error(`operator not ready: ${reason}`) }
  )

/** Prints each change of the resource's status: a run starting, succeeding or failing. */
const followStatus = Effect.gen(function* () {
  const kube = yield* KubeClient
  let last = ""
  const check = Effect.gen(function* () {
    const backup = yield* kube.get(BackupDatabaseSchema, resourceName, { namespace })
    const status = backup.status ?? {}
    const ready = status.conditions?.find((condition) => condition.type === "Ready")
    const seen = `${status.status ?? ""}/${status.jobName ?? ""}/${ready?.reason ?? ""}`
    if (seen === last) return
    last = seen
    // The operator's own plan: an on-demand run in between does not move the next slot.
    const nextRun =
      status.nextScheduleTime === undefined ? "" : `; next run at ${status.nextScheduleTime} (every 5 minutes)`
    if (status.status === "Running") {
      yield* say(`backup running: Job ${namespace}/${status.jobName ?? "?"} -> ${status.backupLocation ?? "?"}`)
    } else if (status.status === "Success") {
      yield* say(
        [
          "backup succeeded",
          `  location: ${status.backupLocation ?? "?"}`,
          `  size:     ${status.lastBackupSizeBytes ?? "?"} bytes (gzip)`,
          `  sha256:   ${status.lastBackupSha256 ?? "?"}`,
          `  job:      ${namespace}/${status.jobName ?? "?"}`
        ].join("\n")
      )
      yield* say(`Ready=${ready?.status ?? "?"}${nextRun}; Ctrl-C stops everything`)
    } else if (status.status === "Failed") {
      yield* say(`backup failed: ${ready?.message ?? "?"}${nextRun}`)
    } else if (ready?.status === "False") {
      yield* say(`not ready (${ready.reason}): ${ready.message}`)
    }
  }).pipe(Effect.catch((error) => say(`cannot read ${namespace}/${resourceName}: ${error.message}`)))
  return yield* check.pipe(Effect.repeat(Schedule.spaced("1 second")))
})

const demo = Effect.gen(function* () {
  const started = Date.now()
  yield* say(
    "starting etcd + kube-apiserver + kube-controller-manager, PostgreSQL and fake-gcs-server (a first run builds the binaries, which takes a few minutes)"
  )
  const [controlPlane, pg, gcs] = yield* Effect.all(
    [
      start(ControlPlane, controlPlaneLayer).pipe(
        Effect.tap((cp) =>
          say(`control plane ${cp.server} ready in ${seconds(started)}; CRDs installed from ${files.crds.join(", ")}`)
        )
      ),
      start(Postgres, Postgres.layer).pipe(
        Effect.tap((db) => say(`PostgreSQL ${db.version} on ${db.host}:${db.port} ready in ${seconds(started)}`))
      ),
      start(GcsEmulator, GcsEmulator.layer).pipe(
        Effect.tap((store) => say(`GCS emulator (fake-gcs-server) ${store.endpoint} ready in ${seconds(started)}`))
      )
    ],
    { concurrency: "unbounded" }
  )
  const services = Context.make(ControlPlane, controlPlane).pipe(
    Context.add(Postgres, pg),
    Context.add(GcsEmulator, gcs)
  )

  const password = randomBytes(15).toString("base64url")
  yield* seedExampleDatabase(password).pipe(Effect.provideContext(services))
  yield* say(
    `database "api": role team03, schema api (${exampleItemCount} rows in api.items, 2 in api.notes); bucket ${exampleBucket}`
  )

  const kube = yield* start(KubeClient, kubeLayer).pipe(Effect.provideContext(services))
  yield* start(ProcessNode, processNodeLayer(runnerImage)).pipe(Effect.provideService(KubeClient, kube))
  yield* say(`process node ready: image ${runnerImage} runs ${process.execPath} ${files.runnerBin}`)

  const [metricsPort = 0, healthPort = 0] = yield* freePorts(2)
  const operator = yield* start(
    OperatorProcess,
    OperatorProcess.layer({
      runnerImage,
      metricsAddress: `127.0.0.1:${metricsPort}`,
      healthAddress: `127.0.0.1:${healthPort}`
    })
  ).pipe(Effect.provideContext(services))
  yield* operatorReady(operator, healthPort)
  yield* say(
    `operator ready (pid ${(yield* operator.current).pid}): metrics http://127.0.0.1:${metricsPort}/metrics, log ${operator.logFile}`
  )

  const withCluster = Effect.provideContext(services)
  yield* prepareNamespace(namespace, { name: "backup-secret", password }).pipe(withCluster)
  yield* say(
    `namespace ${namespace}, service account backup-sa, and secret backup-secret (kubectl create secret generic backup-secret --from-literal=password=...)`
  )
  const yamlFile = join(controlPlane.dir, `${resourceName}.yaml`)
  yield* Effect.promise(() =>
    writeFile(yamlFile, originalExample({ namespace, dbHost: pg.host, dbPort: pg.port, name: resourceName }))
  )
  yield* kubectl(["apply", "-f", yamlFile]).pipe(withCluster)
  yield* say(
    `applied the README's example resource (only dbHost/dbPort changed, to ${pg.host}:${pg.port}): ${yamlFile}`
  )
  yield* say(
    [
      `everything is up in ${seconds(started)}. Watch it with:`,
      "",
      `  kubectl --kubeconfig ${controlPlane.kubeconfigPath} get backupdatabaseschema -n ${namespace} -w`,
      "",
      `(also: kubectl --kubeconfig ${controlPlane.kubeconfigPath} describe backupdatabaseschema ${resourceName} -n ${namespace}`,
      ` and:  kubectl --kubeconfig ${controlPlane.kubeconfigPath} get jobs,pods,events -n ${namespace})`
    ].join("\n")
  )

  // Finalizers run last-in first-out: this line comes before everything else is stopped.
  yield* Effect.addFinalizer(() =>
    say("stopping the operator, process node, GCS emulator, PostgreSQL and control plane...")
  )
  // `npm start` stopped with SIGTERM (timeout, an IDE, a CI cancel) signals npm, which exits
  // without passing it on: stop as well when the parent goes, tearing everything down.
  return yield* Effect.raceFirst(followStatus.pipe(Effect.provideService(KubeClient, kube)), untilParentExits("demo"))
})

const program = Effect.scoped(demo).pipe(
  Effect.onExit((exit) =>
    Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? say("stopped; nothing is left running") : Effect.void
  ),
  // Progress lines are the demo's output; the components' own logs go to their log files.
  Effect.provideService(References.MinimumLogLevel, "Warn"),
  Effect.provide(Layer.merge(NodeServices.layer, KnownSecrets.layer))
)

NodeRuntime.runMain(program, {
  // Ctrl-C (SIGINT) or SIGTERM interrupts the demo: once everything is torn down, that is a clean exit.
  teardown: (exit, onExit) =>
    Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : Runtime.defaultTeardown(exit, onExit)
})
