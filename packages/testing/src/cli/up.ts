import { copyFile, mkdir, rename, rm, writeFile } from "node:fs/promises"
import { join, resolve } from "node:path"
import { KubeClient } from "@db-backup-operator/kube"
import { Console, Context, Duration, Effect, Layer } from "effect"
import { Command, Flag } from "effect/cli"
import { Azurite } from "../azure/Azurite.ts"
import { ControlPlane, type ControlPlaneShape } from "../controlplane/ControlPlane.ts"
import { ControlPlaneError } from "../controlplane/ControlPlaneError.ts"
import { GcsEmulator } from "../gcs/GcsEmulator.ts"
import { ProcessNode } from "../node/ProcessNode.ts"
import { Postgres } from "../postgres/Postgres.ts"
import { untilParentExits } from "../process/parent.ts"
import { S3Server } from "../s3/S3Server.ts"
import { envFileText, parseImageMapFlags } from "./envFile.ts"

/**
 * The process node that runs Pods (as local processes, or from local images
 * with podman), once the control plane is ready; `kubectl logs` reaches it
 * with the API server's kubelet client certificate only.
 */
const nodeLayers = (
  controlPlane: ControlPlaneShape,
  imageMap: Readonly<Record<string, string>>,
  dir: string,
  containers: boolean
): ReadonlyArray<Layer.Layer<ProcessNode, unknown>> => [
  ProcessNode.layer({
    imageMap,
    workDir: join(dir, "node"),
    containerRuntime: containers ? "podman" : "process",
    clusterCaPem: controlPlane.caPem
  }).pipe(Layer.provide(KubeClient.layer({ _tag: "File", path: controlPlane.kubeconfigPath })))
]

const seconds = (duration: Duration.Duration) => `${(Duration.toMillis(duration) / 1000).toFixed(1)} s`

const io = <A>(what: string, run: () => Promise<A>) =>
  Effect.tryPromise({
    try: run,
    catch: (cause) => new ControlPlaneError({ message: `${what}: ${String(cause)}`, cause })
  })

// Written to a temporary name and renamed, so a reader polling for the file never sees half of it.
const writeAtomically = (path: string, text: string) =>
  io(`cannot write ${path}`, async () => {
    await writeFile(`${path}.tmp`, text, { mode: 0o600 })
    await rename(`${path}.tmp`, path)
  })

const flags = {
  dir: Flag.String("dir").pipe(Flag.withDescription("Where kubeconfig, env and logs go (created if missing)")),
  postgres: Flag.Boolean("postgres").pipe(Flag.withDefault(false), Flag.withDescription("Start PostgreSQL 15")),
  gcs: Flag.Boolean("gcs").pipe(Flag.withDefault(false), Flag.withDescription("Start fake-gcs-server")),
  bucket: Flag.String("bucket").pipe(
    Flag.atLeast(0),
    Flag.withDescription("Create this bucket in the GCS emulator (repeatable; implies --gcs)")
  ),
  s3: Flag.Boolean("s3").pipe(Flag.withDefault(false), Flag.withDescription("Start an S3 server (versitygw)")),
  s3Bucket: Flag.String("s3-bucket").pipe(
    Flag.atLeast(0),
    Flag.withDescription("Create this bucket in the S3 server (repeatable; implies --s3)")
  ),
  azure: Flag.Boolean("azure").pipe(Flag.withDefault(false), Flag.withDescription("Start Azurite (Azure Blob)")),
  azureContainer: Flag.String("azure-container").pipe(
    Flag.atLeast(0),
    Flag.withDescription("Create this container in Azurite (repeatable; implies --azure)")
  ),
  crds: Flag.String("crds").pipe(
    Flag.atLeast(0),
    Flag.withDescription("Install the CRDs in this YAML file (repeatable)")
  ),
  imageMap: Flag.String("image-map").pipe(
    Flag.atLeast(0),
    Flag.withDescription("IMAGE=COMMAND: run containers of IMAGE as this local command (repeatable; process node)")
  ),
  containers: Flag.Boolean("containers").pipe(
    Flag.withDefault(false),
    Flag.withDescription(
      "Run containers of unmapped images from local images with podman (never pulled); mapped images stay processes"
    )
  ),
  controllerManager: Flag.Boolean("controller-manager").pipe(
    Flag.withDefault(true),
    Flag.withDescription("Run kube-controller-manager (--no-controller-manager to skip)")
  )
}

/**
 * `kube-testenv up --dir DIR ...`: starts what is asked for, writes
 * `DIR/kubeconfig` and `DIR/env` only once everything is ready, and runs until
 * SIGINT/SIGTERM, when it stops everything and removes those two files.
 */
export const upCommand = Command.make("up", flags, (options) =>
  Effect.scoped(
    Effect.gen(function* () {
      const started = Date.now()
      const dir = resolve(options.dir)
      const imageMap = parseImageMapFlags(options.imageMap)
      if (imageMap._tag === "Invalid") {
        return yield* new ControlPlaneError({ message: `--image-map ${imageMap.entry}: expected IMAGE=COMMAND` })
      }
      const kubeconfigPath = join(dir, "kubeconfig")
      const envPath = join(dir, "env")
      yield* io(`cannot create ${dir}`, async () => {
        await mkdir(dir, { recursive: true })
        await rm(envPath, { force: true }) // stale files from a previous run would point at dead servers
        await rm(kubeconfigPath, { force: true })
      })
      const withGcs = options.gcs || options.bucket.length > 0
      const withS3 = options.s3 || options.s3Bucket.length > 0
      const withAzure = options.azure || options.azureContainer.length > 0

      const build = <I, S, E>(tag: Context.Key<I, S>, layer: Layer.Layer<I, E>) =>
        Layer.build(layer).pipe(
          Effect.map((context) => Context.get(context, tag)),
          Effect.timed
        )
      const [controlPlane, postgres, gcs, s3, azure] = yield* Effect.all(
        [
          build(
            ControlPlane,
            ControlPlane.layer({
              dir: join(dir, "controlplane"),
              crds: options.crds.map((path) => resolve(path)),
              controllerManager: options.controllerManager
            })
          ),
          options.postgres ? build(Postgres, Postgres.layerWith({ logDir: dir })) : Effect.succeed(undefined),
          withGcs
            ? build(GcsEmulator, GcsEmulator.layerWith({ logDir: dir, buckets: options.bucket }))
            : Effect.succeed(undefined),
          withS3
            ? build(S3Server, S3Server.layerWith({ logDir: dir, buckets: options.s3Bucket }))
            : Effect.succeed(undefined),
          withAzure
            ? build(Azurite, Azurite.layerWith({ logDir: dir, containers: options.azureContainer }))
            : Effect.succeed(undefined)
        ],
        { concurrency: "unbounded" }
      )
      for (const layer of nodeLayers(controlPlane[1], imageMap.map, dir, options.containers)) yield* Layer.build(layer)

      const env: Record<string, string> = { KUBECONFIG: kubeconfigPath }
      if (postgres !== undefined) Object.assign(env, postgres[1].env)
      if (gcs !== undefined) env.GCS_ENDPOINT = gcs[1].endpoint
      if (s3 !== undefined) {
        // The AWS SDK and CLI read these names.
        Object.assign(env, {
          S3_ENDPOINT: s3[1].endpoint,
          AWS_REGION: s3[1].region,
          AWS_ACCESS_KEY_ID: s3[1].accessKeyId,
          AWS_SECRET_ACCESS_KEY: s3[1].secretAccessKey
        })
      }
      if (azure !== undefined) {
        Object.assign(env, {
          AZURE_BLOB_ENDPOINT: azure[1].endpoint,
          AZURE_STORAGE_ACCOUNT: azure[1].accountName,
          AZURE_STORAGE_KEY: azure[1].accountKey
        })
      }
      yield* Effect.addFinalizer(() =>
        Effect.promise(async () => {
          await rm(envPath, { force: true })
          await rm(kubeconfigPath, { force: true })
        })
      )
      yield* io("cannot copy the kubeconfig", () => copyFile(controlPlane[1].kubeconfigPath, kubeconfigPath))
      yield* writeAtomically(envPath, envFileText(env)) // last: its appearance means ready

      const lines = [
        `control plane ${controlPlane[1].server} (etcd, kube-apiserver${options.controllerManager ? ", kube-controller-manager" : ""}) in ${seconds(controlPlane[0])}, logs in ${controlPlane[1].dir}`,
        ...(options.crds.length > 0 ? [`CRDs installed: ${options.crds.join(", ")}`] : []),
        `process node: containers run ${options.containers ? "from local images with podman" : "as local processes"}${Object.keys(imageMap.map).length > 0 ? ` (mapped images as processes: ${Object.keys(imageMap.map).join(", ")})` : ""}`,
        ...(postgres === undefined
          ? []
          : [
              `PostgreSQL ${postgres[1].version} on ${postgres[1].host}:${postgres[1].port} in ${seconds(postgres[0])}`
            ]),
        ...(gcs === undefined
          ? []
          : [
              `fake-gcs-server ${gcs[1].endpoint} in ${seconds(gcs[0])}${options.bucket.length > 0 ? `, buckets: ${options.bucket.join(", ")}` : ""}`
            ]),
        ...(s3 === undefined
          ? []
          : [
              `versitygw (S3) ${s3[1].endpoint} in ${seconds(s3[0])}${options.s3Bucket.length > 0 ? `, buckets: ${options.s3Bucket.join(", ")}` : ""}`
            ]),
        ...(azure === undefined
          ? []
          : [
              `Azurite (Azure Blob) ${azure[1].endpoint} in ${seconds(azure[0])}${options.azureContainer.length > 0 ? `, containers: ${options.azureContainer.join(", ")}` : ""}`
            ]),
        `ready in ${((Date.now() - started) / 1000).toFixed(1)} s: ${kubeconfigPath}, ${envPath}`,
        "stop with Ctrl-C or SIGTERM"
      ]
      yield* Console.log(lines.map((line) => `kube-testenv: ${line}`).join("\n"))
      // Launched through `npx`, a SIGTERM may hit npm, which exits without passing it on:
      // when our parent goes away, stop as if we had been signalled.
      return yield* untilParentExits("kube-testenv")
    })
  )
).pipe(
  Command.withDescription(
    "Start a local control plane (and optionally PostgreSQL, a GCS emulator, an S3 server and Azurite) in the foreground; writes DIR/kubeconfig and DIR/env when ready"
  )
)
