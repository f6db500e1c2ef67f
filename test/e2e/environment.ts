import { fileURLToPath } from "node:url"
import { NodeServices } from "@effect/platform-node"
import { type Connection, Kube, KubeClient } from "@db-backup-operator/kube"
import {
  ControlPlane,
  type ControlPlaneError,
  type Daemon,
  type GcsEmulatorError,
  type PostgresError,
  type ProcessNodeError,
  type ProcessError,
  GcsEmulator,
  Postgres,
  ProcessNode,
  startDaemon,
  waitUntilReady
} from "@db-backup-operator/testing"
import { Context, Effect, Layer, Ref, Scope } from "effect"

const root = fileURLToPath(new URL("../..", import.meta.url))
export const crdFile = `${root}crds/backup.csyeteam03.xyz_backupdatabaseschemas.yaml`
const operatorBin = `${root}apps/operator/bin/db-backup-operator.js`
const runnerBin = `${root}apps/runner/bin/db-backup-runner.js`

/** The image backup Jobs use in these tests; the process node runs it as the real runner. */
export const runnerImage = "db-backup-runner:e2e"

/**
 * The operator as its own process (the real binary), so tests can kill it
 * mid-backup and start it again.
 */
export class Operator extends Context.Service<
  Operator,
  {
    readonly current: Effect.Effect<Daemon>
    /** SIGKILL the whole process group, as a crash or an evicted Pod would. */
    readonly kill: Effect.Effect<void>
    readonly start: Effect.Effect<void, ProcessError>
    readonly logs: Effect.Effect<string>
  }
>()("test/e2e/Operator") {}

const operatorLayer = Layer.effect(
  Operator,
  Effect.gen(function* () {
    const controlPlane = yield* ControlPlane
    const gcs = yield* GcsEmulator
    const outer = yield* Effect.scope
    const launch = Effect.gen(function* () {
      const scope = yield* Scope.fork(outer)
      const daemon = yield* startDaemon({
        name: "operator",
        dir: controlPlane.dir,
        command: process.execPath,
        args: [
          operatorBin,
          "--kubeconfig",
          controlPlane.kubeconfigPath,
          "--runner-image",
          runnerImage,
          "--gcs-endpoint",
          gcs.endpoint,
          "--metrics-bind-address",
          "127.0.0.1:0",
          "--health-probe-bind-address",
          "127.0.0.1:0"
        ]
      }).pipe(Scope.provide(scope))
      return { daemon, scope }
    }).pipe(Effect.provide(NodeServices.layer))
    const state = yield* Ref.make(yield* launch)
    return {
      current: Effect.map(Ref.get(state), (s) => s.daemon),
      kill: Effect.gen(function* () {
        const { daemon, scope } = yield* Ref.get(state)
        yield* Effect.sync(() => {
          try {
            process.kill(-daemon.pid, "SIGKILL")
          } catch {
            // already gone
          }
        })
        yield* Scope.close(scope, { _tag: "Success", value: undefined } as never)
      }),
      start: Effect.flatMap(launch, (next) => Ref.set(state, next)),
      logs: Effect.flatMap(Ref.get(state), (s) => s.daemon.logTail(400))
    }
  })
)

const kubeLayer = Layer.unwrap(
  Effect.gen(function* () {
    const controlPlane = yield* ControlPlane
    return Kube.layer({ _tag: "File", path: controlPlane.kubeconfigPath })
  })
)

/**
 * Everything the end-to-end tests run against: a real control plane with the
 * generated CRD, PostgreSQL, the GCS emulator, the process node running backup
 * Jobs with the real runner, and the operator binary.
 */
export const layer: Layer.Layer<
  Operator | ProcessNode | KubeClient | ControlPlane | Postgres | GcsEmulator,
  ProcessError | ProcessNodeError | Connection.ConfigError | ControlPlaneError | PostgresError | GcsEmulatorError
> = operatorLayer.pipe(
  Layer.provideMerge(ProcessNode.layer({ imageMap: { [runnerImage]: `${process.execPath} ${runnerBin}` } })),
  Layer.provideMerge(kubeLayer),
  Layer.provideMerge(Layer.mergeAll(ControlPlane.layer({ crds: [crdFile] }), Postgres.layer, GcsEmulator.layer))
)

export { KubeClient, waitUntilReady }
