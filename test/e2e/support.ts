import { createHash } from "node:crypto"
import { mkdtempSync, writeFileSync } from "node:fs"
import { connect, createServer, type Server, type Socket } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { gunzipSync } from "node:zlib"
import { Backup, BackupDatabaseSchema, JobLabels } from "@db-backup-operator/backup-api"
import { Event, Job, KubeClient, type KubeObject, Pod, type Resource } from "@db-backup-operator/kube"
import { ControlPlane, eventually as pollUntil } from "@db-backup-operator/testing"
import { Storage } from "@google-cloud/storage"
import { Duration, Effect, Ref, type Scope, Stream } from "effect"
import { OperatorProcess } from "../stack/localStack.ts"

const backupJobSelector = "app.kubernetes.io/managed-by=db-backup-operator"

/** The shared poll, with end-to-end defaults: checked every 500 ms, for up to 2 minutes. */
export const eventually = <A, E, R>(
  what: string,
  probe: Effect.Effect<A | undefined, E, R>,
  timeout: `${number} seconds` = "120 seconds"
) => pollUntil(what, probe, { timeout, interval: "500 millis" })

/** `kubectl apply -f` of YAML text written to a temporary file, exactly as a user would. */
export const applyYaml = (yaml: string) => {
  const dir = mkdtempSync(join(tmpdir(), "e2e-yaml-"))
  const file = join(dir, "resource.yaml")
  writeFileSync(file, yaml)
  return Effect.gen(function* () {
    const controlPlane = yield* ControlPlane
    return yield* controlPlane.kubectl(["apply", "-f", file])
  })
}

/** The original example with extra `spec` lines (the example's spec is its last block). */
export const withSpec = (yaml: string, lines: ReadonlyArray<string>) =>
  `${yaml}${lines.map((line) => `  ${line}\n`).join("")}`

export const getBackup = (namespace: string, name: string) =>
  KubeClient.use((kube) => kube.get(BackupDatabaseSchema, name, { namespace }))

/** The `Backup` records (the run history) of the resource `resource` in `namespace`, oldest first. */
export const backupRecords = (namespace: string, resource = "database-backup") =>
  KubeClient.use((kube) => kube.list(Backup, { namespace })).pipe(
    Effect.map((list) =>
      list.items
        .filter((run) => run.spec.backupDatabaseSchemaName === resource)
        .sort((a, b) => (a.metadata.name ?? "").localeCompare(b.metadata.name ?? ""))
    )
  )

export const backupJobs = (namespace: string) =>
  KubeClient.use((kube) => kube.list(Job, { namespace, labelSelector: backupJobSelector })).pipe(
    Effect.map((list) => list.items)
  )

export const storage = (endpoint: string) => new Storage({ apiEndpoint: endpoint, projectId: "e2e" })

export const sha256 = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex")

export const gunzip = (bytes: Buffer) => gunzipSync(bytes)

/** Splits `gs://bucket/object`. */
export const parseGsUrl = (url: string) => {
  const match = /^gs:\/\/([^/]+)\/(.+)$/u.exec(url)
  if (match === null || match[1] === undefined || match[2] === undefined) throw new Error(`not a gs:// URL: ${url}`)
  return { bucket: match[1], object: match[2] }
}

/** A backup's dump object and its parsed manifest (the `.json` beside it), from the GCS emulator. */
export const downloadBackup = (endpoint: string, location: string) =>
  Effect.promise(async () => {
    const { bucket, object } = parseGsUrl(location)
    const files = storage(endpoint).bucket(bucket)
    const [dump] = await files.file(object).download()
    const [manifestBytes] = await files.file(object.replace(/\.sql(\.gz|\.zst)?$/u, ".json")).download()
    return { dump, manifest: JSON.parse(manifestBytes.toString("utf8")) }
  })

export {
  createPasswordSecret,
  exampleBucket,
  kubectl,
  originalExample,
  prepareNamespace,
  seedExampleDatabase
} from "../stack/localStack.ts"

/**
 * Checks `probe` every 500 ms for `duration`: it returns undefined while all is
 * well, or a description of what went wrong, which fails the test at once.
 * For "nothing happens" assertions (no new Job, no storm), which need time.
 */
export const holdsFor = <E, R>(
  what: string,
  probe: Effect.Effect<string | undefined, E, R>,
  duration: Duration.Input
) =>
  Effect.gen(function* () {
    const deadline = Date.now() + Duration.toMillis(Duration.fromInputUnsafe(duration))
    while (true) {
      const violation = yield* probe
      if (violation !== undefined) return yield* Effect.fail(new Error(`expected ${what}, but ${violation}`))
      if (Date.now() >= deadline) return
      yield* Effect.sleep("500 millis")
    }
  })

/**
 * What a backup looked like when a wait for it ran out: its status, and the
 * state of every backup Job and Pod of its namespace, so a timeout in CI says
 * where the run was stuck.
 */
export const describeBackup = (namespace: string, name: string) =>
  Effect.gen(function* () {
    const kube = yield* KubeClient
    const backup = yield* kube.get(BackupDatabaseSchema, name, { namespace })
    const jobs = yield* backupJobs(namespace)
    const pods = yield* backupPods(namespace)
    const jobLines = jobs.map(
      (job) =>
        `job ${job.metadata.name}: active ${job.status?.active ?? 0}, failed ${job.status?.failed ?? 0}, conditions ${(job.status?.conditions ?? []).map((c) => `${c.type}=${c.status}`).join(",")}`
    )
    const podLines = pods.map((pod) => {
      const state = pod.status?.containerStatuses?.[0]?.state
      return `pod ${pod.metadata.name} (created ${pod.metadata.creationTimestamp}): ${pod.status?.phase ?? "no phase"} ${JSON.stringify(state ?? {})}`
    })
    return [`status ${JSON.stringify(backup.status ?? {})}`, ...jobLines, ...podLines].join("\n")
  }).pipe(Effect.orElseSucceed(() => "(could not read its state)"))

/**
 * Waits until `reached` holds for the resource, failing fast on `unwanted`
 * status; a timeout describes the backup.
 */
const settled = (
  namespace: string,
  name: string,
  wanted: string,
  reached: (backup: BackupDatabaseSchema) => boolean,
  unwanted: "Success" | "Failed",
  timeout: `${number} seconds`
) =>
  eventually(
    `${namespace}/${name} ${wanted}`,
    Effect.map(getBackup(namespace, name), (backup) => {
      if (backup.status?.status === unwanted)
        throw new Error(`backup ${unwanted === "Failed" ? "failed" : "succeeded"}: ${JSON.stringify(backup.status)}`)
      return reached(backup) ? backup : undefined
    }),
    timeout
  ).pipe(
    Effect.catchIf(
      (error) => error instanceof Error && error.message.startsWith("timed out"),
      (error) =>
        Effect.flatMap(describeBackup(namespace, name), (state) =>
          Effect.fail(new Error(`${(error as Error).message} after ${timeout}; last seen:\n${state}`))
        )
    )
  )

/** Waits for the resource's status to reach `Success` (failing fast on `Failed`). */
export const succeeded = (namespace: string, name = "database-backup", timeout: `${number} seconds` = "120 seconds") =>
  settled(namespace, name, "status Success", (backup) => backup.status?.status === "Success", "Failed", timeout)

/**
 * Waits for the resource's Ready condition to report a failed run (failing
 * fast on status `Success`), and returns the resource. Not its `Failed`
 * status: when a run outlasts the interval, the next run starts in the pass
 * that records the failure, and `Failed` never stays long enough to be seen;
 * Ready keeps `BackupFailed` until a run succeeds.
 */
export const failed = (namespace: string, name = "database-backup", timeout: `${number} seconds` = "120 seconds") =>
  settled(
    namespace,
    name,
    "Ready BackupFailed",
    (backup) => backup.status?.conditions?.find((condition) => condition.type === "Ready")?.reason === "BackupFailed",
    "Success",
    timeout
  )

/**
 * Waits for a Job of the resource whose failure the operator has recorded (the
 * mark follows the status write), and returns the newest (job-cleanup keeps it).
 */
export const lastFailedJob = (namespace: string, backup: BackupDatabaseSchema) =>
  eventually(
    `a recorded failed Job of ${namespace}/${backup.metadata.name}`,
    Effect.map(
      backupJobs(namespace),
      (jobs) =>
        jobs
          .filter(
            (job) =>
              job.metadata.labels?.[JobLabels.Label.resourceUid] === backup.metadata.uid &&
              job.metadata.annotations?.[JobLabels.Annotation.recorded] === "Failed"
          )
          .sort((a, b) => (b.metadata.creationTimestamp ?? "").localeCompare(a.metadata.creationTimestamp ?? ""))[0]
    )
  )

/** The backup Pods of a namespace. */
export const backupPods = (namespace: string) =>
  KubeClient.use((kube) => kube.list(Pod, { namespace, labelSelector: backupJobSelector })).pipe(
    Effect.map((list) => list.items)
  )

/**
 * The port of a "database" on 127.0.0.1 that accepts connections and never
 * answers: a backup Job pointed at it keeps running. Closed with the scope.
 */
export const blackholePort = Effect.acquireRelease(
  Effect.promise(
    () =>
      new Promise<Server>((resolve) => {
        const server = createServer(() => {})
        server.listen(0, "127.0.0.1", () => resolve(server))
      })
  ),
  (server) => Effect.sync(() => server.close())
).pipe(
  Effect.map((server) => {
    const address = server.address()
    return typeof address === "object" && address !== null ? address.port : 0
  })
)

/** Waits for a Running backup Pod in `namespace`, and returns it. */
export const runningBackupPod = (namespace: string) =>
  eventually(
    "a running backup Pod",
    Effect.map(backupPods(namespace), (pods) => pods.find((pod) => pod.status?.phase === "Running"))
  )

/** Every Event (events.k8s.io) in a namespace. */
export const eventsIn = (namespace: string) =>
  KubeClient.use((kube) => kube.list(Event, { namespace })).pipe(Effect.map((list) => list.items))

/** Every object of a kind a namespace has had since the watch started: added (last state seen) and deleted (state at deletion). */
export interface History<A> {
  readonly seen: Effect.Effect<ReadonlyMap<string, A>>
  readonly deleted: Effect.Effect<ReadonlyArray<A>>
}

/** Every backup Job a namespace has had since the watch started. */
export type JobHistory = History<Job>

/**
 * Watches the objects of `kind` in `namespace` for the rest of the test
 * (scoped), so a test sees objects that were created and deleted between two
 * polls. It resumes after an API server restart (an object created and
 * deleted entirely while the server was down is missed).
 */
export const watchHistory = <A extends KubeObject, I>(
  kind: Resource.Resource<A, I>,
  namespace: string,
  labelSelector?: string
) =>
  Effect.gen(function* () {
    const kube = yield* KubeClient
    const seen = yield* Ref.make<ReadonlyMap<string, A>>(new Map())
    const deleted = yield* Ref.make<ReadonlyArray<A>>([])
    const selection = labelSelector === undefined ? { namespace } : { namespace, labelSelector }
    // List, then watch from there; when the watch ends or breaks (an API server restart), again.
    const follow = Effect.gen(function* () {
      const { items, resourceVersion } = yield* kube.list(kind, selection)
      yield* Ref.update(seen, (objects) => {
        const next = new Map(objects)
        for (const object of items) next.set(object.metadata.name ?? "", object)
        return next
      })
      yield* kube.watch(kind, { ...selection, resourceVersion }).pipe(
        Stream.runForEach((event) =>
          Effect.gen(function* () {
            if (event.type === "BOOKMARK" || event.type === "MALFORMED") return
            const name = event.object.metadata.name ?? ""
            yield* Ref.update(seen, (objects) => new Map(objects).set(name, event.object))
            if (event.type === "DELETED") yield* Ref.update(deleted, (objects) => [...objects, event.object])
          })
        )
      )
    })
    yield* follow
      .pipe(Effect.ignore, Effect.andThen(Effect.sleep("200 millis")), Effect.forever)
      .pipe(Effect.forkScoped)
    const history: History<A> = { seen: Ref.get(seen), deleted: Ref.get(deleted) }
    return history
  })

/** {@link watchHistory} of the backup Jobs of `namespace`. */
export const watchJobs = (namespace: string): Effect.Effect<JobHistory, never, KubeClient | Scope.Scope> =>
  watchHistory(Job, namespace, backupJobSelector)

/** The operator's Prometheus metrics, from the address its log announces (it binds port 0). */
export const operatorMetrics = Effect.gen(function* () {
  const operator = yield* OperatorProcess
  const url = yield* eventually(
    "the operator's metrics address in its log",
    Effect.map(operator.logs, (log) => /serving \/metrics[^\n]*? on (http:\/\/[0-9.]+:\d+)/u.exec(log)?.[1])
  )
  return yield* Effect.promise(() => fetch(`${url}/metrics`).then((response) => response.text()))
})

/** The value of one series (`name{labels}` with every label given) in a Prometheus text, if present. */
export const seriesValue = (text: string, name: string, labels: Record<string, string>): number | undefined => {
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][\w:]*)\{([^}]*)\} (\S+)$/u.exec(line)
    if (match?.[1] !== name) continue
    const present = new Map([...(match[2] ?? "").matchAll(/(\w+)="([^"]*)"/gu)].map(([, key, value]) => [key, value]))
    if (Object.entries(labels).every(([key, value]) => present.get(key) === value)) return Number(match[3])
  }
  return undefined
}

/** How often the operator's backup controller has started (one line per operator start). */
export const operatorStarts = Effect.map(
  OperatorProcess.use((operator) => operator.logs),
  (log) => log.split("controller backupdatabaseschema started").length - 1
)

/** Waits until the operator has started its backup controller more than `previous` times. */
export const operatorStarted = (previous: number) =>
  eventually(
    `the operator's backup controller to start (start #${previous + 1})`,
    Effect.map(operatorStarts, (starts) => (starts > previous ? starts : undefined)),
    "60 seconds"
  )

/** A TCP proxy in front of a server that holds every connection until {@link GatedProxy.open}. */
export interface GatedProxy {
  readonly port: number
  /** Connections accepted so far. */
  readonly accepted: Effect.Effect<number>
  /** Lets held and future connections through to the server. */
  readonly open: Effect.Effect<void>
}

/**
 * A proxy to `target` that accepts connections but holds them (not a byte
 * passes) until opened: a backup through it is "running" for as long as the
 * test wants. libpq gives up after PGCONNECT_TIMEOUT (30 s in the runner), so
 * hold for less. Closed with the scope.
 */
export const gatedProxy = (target: { readonly host: string; readonly port: number }) =>
  Effect.gen(function* () {
    let isOpen = false
    let accepted = 0
    const held: Array<Socket> = []
    const sockets = new Set<Socket>()
    const track = (socket: Socket) => {
      sockets.add(socket)
      socket.on("close", () => sockets.delete(socket))
      socket.on("error", () => socket.destroy())
    }
    const forward = (client: Socket) => {
      const upstream = connect(target.port, target.host)
      track(upstream)
      upstream.on("close", () => client.destroy())
      client.on("close", () => upstream.destroy())
      client.pipe(upstream)
      upstream.pipe(client)
    }
    const server = yield* Effect.acquireRelease(
      Effect.callback<Server>((resume) => {
        const server = createServer((client) => {
          accepted += 1
          track(client)
          if (isOpen) forward(client)
          else {
            client.pause()
            held.push(client)
          }
        })
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
      }),
      (server) =>
        Effect.sync(() => {
          server.close()
          for (const socket of sockets) socket.destroy()
        })
    )
    const address = server.address()
    const proxy: GatedProxy = {
      port: typeof address === "object" && address !== null ? address.port : 0,
      accepted: Effect.sync(() => accepted),
      open: Effect.sync(() => {
        isOpen = true
        for (const client of held.splice(0)) forward(client)
      })
    }
    return proxy
  })
