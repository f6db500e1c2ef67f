import { readFile } from "node:fs/promises"
import { fileURLToPath } from "node:url"
import type { Connection, KubeClient } from "@db-backup-operator/kube"
import {
  adminKube,
  ControlPlane,
  type ControlPlaneError,
  type Daemon,
  GcsEmulator,
  type GcsEmulatorError,
  Postgres,
  type PostgresError,
  type ProcessError,
  ProcessNode,
  type ProcessNodeError,
  startDaemon
} from "@db-backup-operator/testing"
import { NodeServices } from "@effect/platform-node"
import { Context, Effect, Exit, Layer, Ref, Scope } from "effect"
import { KnownSecrets, noLeaksAtRelease } from "./secretLeaks.ts"

/**
 * The operator's local stack, shared by `npm start` (demo.ts) and the
 * end-to-end tests: a real control plane with the generated CRD, PostgreSQL,
 * the GCS emulator, the process node running backup Jobs with the real runner,
 * and the operator binary as its own process. Plus the original README's
 * database, namespace and example resource. Development tooling: it lives
 * outside apps/ so the deployable never depends on the testing package.
 */

const root = fileURLToPath(new URL("../..", import.meta.url))

/** Files of this repository the stack runs. */
export const files = {
  root,
  /** The generated CRD of BackupDatabaseSchema. */
  crd: `${root}crds/backup.csyeteam03.xyz_backupdatabaseschemas.yaml`,
  /** The generated CRDs of the backup API: BackupDatabaseSchema, Backup and BackupStorage. */
  crds: [
    `${root}crds/backup.csyeteam03.xyz_backupdatabaseschemas.yaml`,
    `${root}crds/backup.csyeteam03.xyz_backups.yaml`,
    `${root}crds/backup.csyeteam03.xyz_backupstorages.yaml`,
    `${root}crds/backup.csyeteam03.xyz_restores.yaml`
  ],
  operatorBin: `${root}apps/operator/bin/db-backup-operator.js`,
  runnerBin: `${root}apps/runner/bin/db-backup-runner.js`
} as const

/** The bucket of the original README's example. */
export const exampleBucket = "operator-db-backups-bucket"

/** Options of {@link OperatorProcess.layer}: the flags the binary gets. */
export interface OperatorProcessOptions {
  /** `--runner-image`: the image the process node maps to the runner. */
  readonly runnerImage: string
  /** `--backup-interval` (default: the binary's, 5 minutes). */
  readonly backupInterval?: string | undefined
  /** `--allowed-namespaces`: `SOURCE:TARGET` pairs. */
  readonly allowedNamespaces?: ReadonlyArray<string> | undefined
  /** `--metrics-bind-address` (default `127.0.0.1:0`: any free port). */
  readonly metricsAddress?: string | undefined
  /** `--health-probe-bind-address` (default `127.0.0.1:0`). */
  readonly healthAddress?: string | undefined
  /** `--kubeconfig` (default: the control plane's admin kubeconfig). */
  readonly kubeconfig?: string | undefined
  /** `--gcs-endpoint` (default: the stack's GCS emulator), e.g. a fault-injecting proxy in front of it. */
  readonly gcsEndpoint?: string | undefined
  /** Further flags, e.g. `["--leader-elect", "true"]`. */
  readonly extraArgs?: ReadonlyArray<string> | undefined
  /**
   * The process's name (default `operator`): its log is `<control plane dir>/<name>.log`.
   * A second replica against the same control plane needs a name of its own.
   */
  readonly name?: string | undefined
}

/** The operator binary running as a child process (its own process group). */
export interface OperatorProcessShape {
  /** What it was started with, so another replica can be started like it. */
  readonly options: OperatorProcessOptions
  /** The running process (or the last one, once it has exited). */
  readonly current: Effect.Effect<Daemon>
  /** `<control plane dir>/<name>.log` (`operator.log` by default): every start appends to it. */
  readonly logFile: string
  /** SIGKILL to the whole process group, as a crash or an evicted Pod: no graceful shutdown. */
  readonly kill: Effect.Effect<void>
  /** Graceful stop: SIGTERM (SIGKILL after 5 seconds), as `kubectl rollout restart` would. */
  readonly stop: Effect.Effect<void>
  /**
   * Starts the binary again with the same flags: after {@link kill} or {@link stop}, or after it
   * exited on its own (what a Deployment does); whatever is left of the previous run is stopped first.
   */
  readonly start: Effect.Effect<void, ProcessError>
  /**
   * Sends `signal` to the whole process group and nothing else: `SIGSTOP` freezes it (a stalled
   * node, a VM paused by its host) until `SIGCONT`. A group already gone is ignored.
   */
  readonly signal: (signal: "SIGSTOP" | "SIGCONT") => Effect.Effect<void>
  /** The whole log, across restarts. */
  readonly logs: Effect.Effect<string>
}

/**
 * The operator as its own process (the real binary, as a Deployment runs it),
 * pointed at the stack's control plane and GCS emulator. Stopped with its layer.
 *
 * @example
 * ```ts
 * const op = yield* OperatorProcess
 * yield* op.kill
 * yield* op.start
 * ```
 */
export class OperatorProcess extends Context.Service<OperatorProcess, OperatorProcessShape>()(
  "@db-backup-operator/operator-app/OperatorProcess"
) {
  static readonly layer = (
    options: OperatorProcessOptions
  ): Layer.Layer<OperatorProcess, ProcessError, ControlPlane | GcsEmulator> =>
    Layer.effect(
      OperatorProcess,
      Effect.gen(function* () {
        const controlPlane = yield* ControlPlane
        const gcs = yield* GcsEmulator
        const outer = yield* Effect.scope
        const args = [
          files.operatorBin,
          "--kubeconfig",
          options.kubeconfig ?? controlPlane.kubeconfigPath,
          "--runner-image",
          options.runnerImage,
          "--gcs-endpoint",
          options.gcsEndpoint ?? gcs.endpoint,
          "--metrics-bind-address",
          options.metricsAddress ?? "127.0.0.1:0",
          "--health-probe-bind-address",
          options.healthAddress ?? "127.0.0.1:0",
          ...(options.backupInterval === undefined ? [] : ["--backup-interval", options.backupInterval]),
          ...(options.allowedNamespaces === undefined || options.allowedNamespaces.length === 0
            ? []
            : ["--allowed-namespaces", options.allowedNamespaces.join(",")]),
          ...(options.extraArgs ?? [])
        ]
        const name = options.name ?? "operator"
        // Each run gets its own scope inside the layer's, so one run can be stopped and another started.
        const launch = Effect.gen(function* () {
          const scope = yield* Scope.fork(outer)
          const daemon = yield* startDaemon({
            name,
            dir: controlPlane.dir,
            command: process.execPath,
            args
          }).pipe(Scope.provide(scope))
          return { daemon, scope }
        }).pipe(Effect.provide(NodeServices.layer))
        const state = yield* Ref.make(yield* launch)
        const logFile = `${controlPlane.dir}/${name}.log`
        const signal = (pid: number, sent: NodeJS.Signals) =>
          Effect.sync(() => {
            try {
              process.kill(-pid, sent)
            } catch {
              // already gone
            }
          })
        return OperatorProcess.of({
          options,
          current: Effect.map(Ref.get(state), (s) => s.daemon),
          logFile,
          kill: Effect.gen(function* () {
            const { daemon, scope } = yield* Ref.get(state)
            yield* signal(daemon.pid, "SIGKILL")
            yield* Scope.close(scope, Exit.void)
          }),
          stop: Effect.flatMap(Ref.get(state), ({ scope }) => Scope.close(scope, Exit.void)),
          // Closing a closed scope does nothing: after kill or stop this only launches.
          start: Effect.flatMap(Ref.get(state), ({ scope }) => Scope.close(scope, Exit.void)).pipe(
            Effect.andThen(launch),
            Effect.flatMap((next) => Ref.set(state, next))
          ),
          signal: (sent) => Effect.flatMap(Ref.get(state), ({ daemon }) => signal(daemon.pid, sent)),
          logs: Effect.promise(() => readFile(logFile, "utf8").catch(() => ""))
        })
      })
    )
}

/** The control plane with the generated BackupDatabaseSchema CRD installed. */
export const controlPlaneLayer: Layer.Layer<ControlPlane, ControlPlaneError> = ControlPlane.layer({ crds: files.crds })

/** A Kubernetes client for the stack's control plane (admin credentials). */
export const kubeLayer: Layer.Layer<KubeClient, Connection.ConfigError, ControlPlane> = adminKube

/** The process node, running containers of `runnerImage` as the real `db-backup-runner` on this Node. */
export const processNodeLayer = (runnerImage: string): Layer.Layer<ProcessNode, ProcessNodeError, KubeClient> =>
  ProcessNode.layer({ imageMap: { [runnerImage]: `${process.execPath} ${files.runnerBin}` } })

/** Everything the stack runs, as one layer; see the module comment. */
export type Stack = OperatorProcess | ProcessNode | KubeClient | ControlPlane | Postgres | GcsEmulator | KnownSecrets

export type StackError =
  | ProcessError
  | ProcessNodeError
  | Connection.ConfigError
  | ControlPlaneError
  | PostgresError
  | GcsEmulatorError

/**
 * The whole stack: control plane, PostgreSQL and the GCS emulator start
 * concurrently; then the process node, then the operator.
 *
 * @example
 * ```ts
 * const E2E = stackLayer({ runnerImage: "db-backup-runner:e2e", backupInterval: "3 seconds" })
 * ```
 */
export const stackLayer = (options: OperatorProcessOptions): Layer.Layer<Stack, StackError> =>
  // Built last, released first: the secret check runs while the operator and API server still do.
  noLeaksAtRelease(OperatorProcess.use((operator) => operator.logs)).pipe(
    Layer.provideMerge(OperatorProcess.layer(options)),
    Layer.provideMerge(processNodeLayer(options.runnerImage)),
    Layer.provideMerge(kubeLayer),
    Layer.provideMerge(Layer.mergeAll(controlPlaneLayer, Postgres.layer, GcsEmulator.layer, KnownSecrets.layer))
  )

/** Runs real kubectl against the stack and fails with its stderr on a non-zero exit. */
export const kubectl = (args: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const controlPlane = yield* ControlPlane
    const result = yield* controlPlane.kubectl(args)
    if (result.exitCode !== 0)
      return yield* Effect.fail(new Error(`kubectl ${args.join(" ")}: ${result.stderr.trim()}`))
    return result.stdout
  })

/** Rows the example database holds (table `api.items`; `api.notes` has 2 more). */
export const exampleItemCount = 5000

/**
 * The database of the original README: role `team03` with `password`, database
 * `api`, schema `api` owned by team03 with real rows (quotes, tabs, newlines,
 * NULLs, arrays), and the bucket of the example resource.
 *
 * @example
 * ```ts
 * yield* seedExampleDatabase("s3cret")
 * ```
 */
export const seedExampleDatabase = (password: string) =>
  Effect.gen(function* () {
    yield* KnownSecrets.use((secrets) => secrets.add(password))
    const pg = yield* Postgres
    yield* pg.createRole("team03", password)
    yield* pg.createDatabase("api", { owner: "team03" })
    yield* pg.createSchema("api", "api", { owner: "team03" })
    yield* pg.psql(
      `CREATE TABLE api.items (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2), tags text[]);
       INSERT INTO api.items SELECT g, 'item ' || g || E' with \\'quotes\\' and\\ttabs', g * 1.25, ARRAY['a', 'b' || g] FROM generate_series(1, ${exampleItemCount}) g;
       CREATE TABLE api.notes (id serial PRIMARY KEY, body text);
       INSERT INTO api.notes (body) VALUES ('line one' || chr(10) || 'line two'), (NULL);
       ALTER TABLE api.items OWNER TO team03; ALTER TABLE api.notes OWNER TO team03;`,
      { database: "api" }
    )
    const gcs = yield* GcsEmulator
    yield* gcs.createBucket(exampleBucket)
  })

/**
 * A namespace with what the original README asks for: the `backup-sa` service
 * account and, unless `secret` is undefined, the password Secret created with
 * `kubectl create secret generic NAME --from-literal=password=...`.
 *
 * @example
 * ```ts
 * yield* prepareNamespace("backup-job-namespace", { name: "backup-secret", password: "s3cret" })
 * ```
 */
export const prepareNamespace = (
  namespace: string,
  secret: { readonly name: string; readonly password: string } | undefined
) =>
  Effect.gen(function* () {
    yield* kubectl(["create", "namespace", namespace])
    yield* kubectl(["create", "serviceaccount", "backup-sa", "-n", namespace])
    if (secret !== undefined) yield* createPasswordSecret(namespace, secret)
  })

/** `kubectl create secret generic NAME --from-literal=password=...`, as README tells users. */
export const createPasswordSecret = (namespace: string, secret: { readonly name: string; readonly password: string }) =>
  KnownSecrets.use((secrets) => secrets.add(secret.password)).pipe(
    Effect.andThen(
      kubectl([
        "create",
        "secret",
        "-n",
        namespace,
        "generic",
        secret.name,
        `--from-literal=password=${secret.password}`
      ])
    )
  )

/**
 * The original README's example resource as YAML, with only the database
 * address changed (and, for tests, optionally its name, namespace or Secret).
 *
 * @example
 * ```ts
 * const yaml = originalExample({ namespace: "backup-job-namespace", dbHost: "127.0.0.1", dbPort: 5432 })
 * ```
 */
export const originalExample = (options: {
  readonly name?: string
  readonly namespace: string
  readonly dbHost: string
  readonly dbPort: number
  readonly secretName?: string
  /** `dbPasswordSecretNamespace` (default: the resource's namespace). */
  readonly secretNamespace?: string
  readonly backupJobNamespace?: string
}) => `apiVersion: backup.csyeteam03.xyz/v1
kind: BackupDatabaseSchema
metadata:
  name: ${options.name ?? "database-backup"}
  namespace: ${options.namespace}
spec:
  dbHost: "${options.dbHost}"
  dbUser: "team03"
  dbPasswordSecretName: "${options.secretName ?? "backup-secret"}"
  dbPasswordSecretNamespace: "${options.secretNamespace ?? options.namespace}"
  dbPasswordSecretKey: "password"
  dbName: "api"
  dbSchema: "api"
  dbPort: ${options.dbPort}
  gcsBucket: "${exampleBucket}"
  kubeServiceAccount: "backup-sa"
  gcpServiceAccount: "db-operator-gsa"
  backupJobNamespace: "${options.backupJobNamespace ?? options.namespace}"
`
