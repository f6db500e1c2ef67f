/**
 * Benchmark of the backup path: how close the runner (pg_dump -> compression
 * -> optional age -> sha256 -> streaming upload) gets to pg_dump alone, and to
 * the best shell pipeline into the same store, for every store.
 *
 *   npm run bench:runner [-- --size-mb N] [--source | --runner FILE] [--only REGEX] [--runs R] [--cpu-prof DIR]
 *
 *   --size-mb N    about N MB of plain dump (default 1000)
 *   --source       run the runner from its TypeScript sources (apps/runner/bin), not bundled
 *   --runner FILE  run this runner (a bundle built elsewhere, say from another checkout) with node
 *   --only REGEX   only the rows whose label matches (case-insensitive); pg_dump alone always runs
 *   --runs R       runs of each row (default 2: this machine is noisy, every run is printed)
 *   --cpu-prof DIR the runner writes a V8 CPU profile per run into DIR (node --cpu-prof)
 *
 * The runner runs as its image ships it: bundled by scripts/bundle.ts, started
 * with plain `node` and the image's NODE_OPTIONS (docker/runner/Dockerfile);
 * with --source, from its sources.
 *
 * Generates a database of about N MB of dump in one schema, on a throwaway
 * PostgreSQL, then measures, after a warm-up dump:
 *   - pg_dump alone to /dev/null (the limit);
 *   - shell pipelines (processes connected by pipes, no shell, no byte through
 *     Node) into each store: GCS (fake-gcs-server), S3 (versitygw), Azure
 *     (Azurite) and a directory as the volume;
 *   - db-backup-runner into each store: zstd everywhere, gzip and none into S3
 *     and the volume, zstd + age into S3.
 * Each store's server runs only for its own rows, and is stopped after them.
 * Throughput is uncompressed dump MB per second of wall time; peak RSS is
 * VmHWM from /proc/<pid>/status, sampled every 100 ms (a pipeline: its
 * largest process); disk written is write_bytes from /proc/<pid>/io (the
 * servers' own writes are not counted: they are the store).
 */

import { closeSync, openSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import { Postgres, type PostgresShape } from "@db-backup-operator/testing"
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { generateIdentity, identityToRecipient } from "age-encryption"
import { Effect, FileSystem, Layer } from "effect"
import { bundle } from "../../scripts/bundle.ts"
import { imageNodeOptions } from "./imageNodeOptions.ts"
import { type DumpCommand, database, dumpCommand, generate, role, rolePassword, schema } from "./runner/database.ts"
import { type Measured, measure, pipeline, spawnScoped } from "./runner/measure.ts"
import {
  hasCommand,
  type ShellTarget,
  type ShellUpload,
  type Stage,
  type StoreContext,
  type StoreName,
  withStore
} from "./runner/stores.ts"
import { type Case, type Compression, type Result, type Run, report } from "./runner/table.ts"

const { values } = parseArgs({
  options: {
    "size-mb": { type: "string", default: "1000" },
    source: { type: "boolean", default: false },
    runner: { type: "string" },
    only: { type: "string" },
    runs: { type: "string", default: "2" },
    "cpu-prof": { type: "string" }
  }
})
const sizeMb = Number(values["size-mb"])
const runs = Number(values.runs)
if (!Number.isFinite(sizeMb) || sizeMb <= 0 || !Number.isInteger(runs) || runs < 1) {
  console.error(`--size-mb must be a positive number and --runs a positive integer`)
  process.exit(2)
}
const only = values.only === undefined ? undefined : new RegExp(values.only, "iu")
const cpuProfDir = values["cpu-prof"]

interface BenchCase extends Case {
  /** A shell pipeline's upload. */
  readonly upload?: ShellUpload
}

const zstdStage: Stage = { command: "zstd", args: ["-T0", "-q", "-c"] }
const gzipStage: Stage = { command: "gzip", args: ["-1", "-c"] }

const cases: ReadonlyArray<BenchCase> = [
  { label: "pg_dump > /dev/null", kind: "baseline", store: undefined, compression: "none" },
  {
    label: "pg_dump | gzip -1 | curl -T - -> gcs",
    kind: "shell",
    store: "gcs",
    compression: "gzip",
    upload: "curl-stream"
  },
  {
    label: "pg_dump | zstd -T0 | curl -T - -> gcs",
    kind: "shell",
    store: "gcs",
    compression: "zstd",
    upload: "curl-stream"
  },
  { label: "runner zstd -> gcs", kind: "runner", store: "gcs", compression: "zstd" },
  {
    label: "pg_dump | zstd -T0 | curl --aws-sigv4 -T - -> s3",
    kind: "shell",
    store: "s3",
    compression: "zstd",
    upload: "curl-stream"
  },
  {
    label: "pg_dump | zstd -T0 | curl --aws-sigv4 --data-binary @- -> s3 (buffers all)",
    kind: "shell",
    store: "s3",
    compression: "zstd",
    upload: "curl-buffered"
  },
  {
    label: "pg_dump | zstd -T0 | aws s3 cp - -> s3 (multipart)",
    kind: "shell",
    store: "s3",
    compression: "zstd",
    upload: "aws-cli"
  },
  { label: "runner zstd -> s3", kind: "runner", store: "s3", compression: "zstd" },
  { label: "runner gzip -> s3", kind: "runner", store: "s3", compression: "gzip" },
  { label: "runner none -> s3", kind: "runner", store: "s3", compression: "none" },
  { label: "runner zstd+age -> s3", kind: "runner", store: "s3", compression: "zstd", encrypted: true },
  {
    label: "pg_dump | zstd -T0 | curl -T - -> azure",
    kind: "shell",
    store: "azure",
    compression: "zstd",
    upload: "curl-stream"
  },
  {
    label: "pg_dump | zstd -T0 | curl --data-binary @- -> azure (buffers all)",
    kind: "shell",
    store: "azure",
    compression: "zstd",
    upload: "curl-buffered"
  },
  { label: "runner zstd -> azure", kind: "runner", store: "azure", compression: "zstd" },
  { label: "pg_dump | zstd -T0 > file", kind: "shell", store: "file", compression: "zstd", upload: "file" },
  { label: "runner zstd -> file", kind: "runner", store: "file", compression: "zstd" },
  { label: "runner gzip -> file", kind: "runner", store: "file", compression: "gzip" },
  { label: "runner none -> file", kind: "runner", store: "file", compression: "none" }
]
const selected = cases.filter((c) => c.kind !== "baseline" && (only === undefined || only.test(c.label)))

const extensionOf = (compression: Compression) =>
  compression === "gzip" ? ".sql.gz" : compression === "zstd" ? ".sql.zst" : ".sql"
const slugOf = (label: string) =>
  label
    .toLowerCase()
    .replace(/[^a-z0-9]+/gu, "-")
    .replace(/^-|-$/gu, "")

/** The runner's own figures, from its "dump stored" log line. */
const dumpPhase = (stdout: string) => {
  for (const line of stdout.split("\n")) {
    if (!line.includes('"dump stored"')) continue
    const annotations = (JSON.parse(line) as { annotations: Record<string, number> }).annotations
    return {
      dumped: annotations.dumpedBytes ?? 0,
      stored: annotations.storedBytes ?? 0,
      seconds: annotations.elapsedSeconds ?? 0
    }
  }
  return undefined
}

const program = Effect.gen(function* () {
  const fs = yield* FileSystem.FileSystem
  // The runner the way its image ships it (scripts/bundle.ts), or with --source from its sources.
  const runnerBin =
    values.runner ??
    (values.source
      ? fileURLToPath(new URL("../../apps/runner/bin/db-backup-runner.js", import.meta.url))
      : join(yield* fs.makeTempDirectoryScoped({ prefix: "bench-runner-bundle-" }), "runner.mjs"))
  if (!values.source && values.runner === undefined) {
    const source = fileURLToPath(new URL("../../apps/runner/src/main.ts", import.meta.url))
    yield* Effect.promise(() => bundle(source, runnerBin))
  }
  const nodeOptions = imageNodeOptions("runner")
  const identity = yield* Effect.promise(() => generateIdentity())
  const recipient = yield* Effect.promise(() => identityToRecipient(identity))

  const pg = yield* Postgres
  const rows = yield* generate(pg, sizeMb)
  const dump = dumpCommand(pg)
  const pgDump: Stage = { command: dump.pgDump, args: dump.args, env: dump.env }

  console.log("warm-up dump ...")
  const warmUp = yield* measure("warm-up", () => pipeline([pgDump], "pipe"), { stdout: "count" })
  const dumpBytes = warmUp.stdoutBytes
  console.log(`dump: ${(dumpBytes / 1_000_000).toFixed(1)} MB of plain SQL (${rows} rows)`)

  const results: Array<Result> = []
  const done = (result: Result) => {
    results.push(result)
    const speeds = result.runs.map((run) => (dumpBytes / 1_000_000 / run.measured.seconds).toFixed(1))
    console.log(`  ${result.case.label}: ${result.skipped ?? `${speeds.join(" / ")} MB/s`}`)
  }

  // The limit, measured before the other rows and again after them (this machine's load drifts).
  const baselineCase = cases[0]
  const baselineRuns: Array<Run> = []
  const measureBaseline = Effect.gen(function* () {
    for (let i = 0; i < runs; i++) {
      const m = yield* measure("pg_dump", () => pipeline([pgDump]))
      baselineRuns.push({ measured: m, storedBytes: undefined, dumpSeconds: undefined })
    }
  })
  yield* measureBaseline
  console.log(
    `  pg_dump > /dev/null: ${baselineRuns.map((r) => (dumpBytes / 1_000_000 / r.measured.seconds).toFixed(1)).join(" / ")} MB/s`
  )

  const stores: ReadonlyArray<StoreName> = ["gcs", "s3", "azure", "file"]
  for (const store of stores) {
    const group = selected.filter((c) => c.store === store)
    if (group.length === 0) continue
    console.log(`${store}: starting its server ...`)
    yield* withStore(store, (context) =>
      Effect.forEach(group, (c) =>
        runCase(c, context, { pg, dump, pgDump, runnerBin, nodeOptions, recipient }).pipe(
          Effect.catch((error) =>
            Effect.succeed<Result>({ case: c, runs: [], skipped: `failed: ${error.message.split("\n")[0]}` })
          ),
          Effect.tap((result) => Effect.sync(() => done(result)))
        )
      )
    )
  }

  yield* measureBaseline
  if (baselineCase !== undefined) results.unshift({ case: baselineCase, runs: baselineRuns })

  console.log("")
  console.log(
    `dump: ${(dumpBytes / 1_000_000).toFixed(1)} MB of plain SQL (${rows} rows); MB/s = dump MB / wall seconds; ${runs} run(s) each`
  )
  console.log(
    `runner: ${values.runner ?? (values.source ? `${runnerBin} (sources)` : "bundled from apps/runner/src/main.ts")}, NODE_OPTIONS=${JSON.stringify(nodeOptions)} (the image's)`
  )
  console.log(
    `pg_dump > /dev/null: runs 1-${runs} before the other rows, ${runs + 1}-${2 * runs} after them; "vs pg_dump" is over their mean`
  )
  for (const line of report(results, dumpBytes)) console.log(line)
  console.log("")
  console.log(
    "wall s includes the runner's start (Node + module loading) and its version checks; dump-phase MB/s is the runner's own measure from first to last byte."
  )
  console.log(
    "CPU s: user + system of the processes measured (runner: Node plus its pg_dump and psql children). peak RSS: pipeline = its largest process; runner = the runner's Node process."
  )
  console.log(
    "disk written: write_bytes of the processes measured; into a volume it includes the object itself (the shell pipeline does not fsync, the runner does)."
  )
  console.log(`load average at the end: ${(yield* fs.readFileString("/proc/loadavg")).trim()}`)
})

interface Shared {
  readonly pg: PostgresShape
  readonly dump: DumpCommand
  readonly pgDump: Stage
  readonly runnerBin: string
  readonly nodeOptions: string
  readonly recipient: string
}

/** Runs one case `runs` times against its store, removing what each run stored. */
const runCase = (c: BenchCase, context: StoreContext, shared: Shared): Effect.Effect<Result, Error> =>
  Effect.gen(function* () {
    const measured: Array<Run> = []
    for (let i = 1; i <= runs; i++) {
      const base = `backups/bench/bench/${slugOf(c.label)}-${i}`
      const object = `${base}${extensionOf(c.compression)}${c.encrypted === true ? ".age" : ""}`
      const manifest = `${base}.json`
      if (c.kind === "shell") {
        const compressor = c.compression === "gzip" ? gzipStage : c.compression === "zstd" ? zstdStage : undefined
        if (compressor !== undefined && !hasCommand(compressor.command)) {
          return { case: c, runs: [], skipped: `skipped: ${compressor.command} not found` }
        }
        const target: ShellTarget = yield* context.upload(c.upload ?? "curl-stream", object)
        if ("skipped" in target) return { case: c, runs: [], skipped: target.skipped }
        const stages = [shared.pgDump, ...(compressor === undefined ? [] : [compressor])]
        const m: Measured = yield* measure(c.label, () =>
          "stage" in target
            ? pipeline([...stages, target.stage])
            : Effect.gen(function* () {
                // The last stage writes the file, as `> file` in a shell would.
                const fd = yield* Effect.acquireRelease(
                  Effect.sync(() => openSync(target.file, "w", 0o640)),
                  (fd) => Effect.sync(() => closeSync(fd))
                )
                return yield* pipeline(stages, fd)
              })
        )
        const info = yield* context.client.stat(context.bucket, object)
        measured.push({ measured: m, storedBytes: info.size, dumpSeconds: undefined })
        yield* context.client.remove(context.bucket, object)
      } else {
        const m = yield* measure(c.label, () => startRunner(c, context, shared, { object, manifest, run: i }), {
          stdout: "text"
        })
        const phase = dumpPhase(m.stdout)
        measured.push({ measured: m, storedBytes: phase?.stored, dumpSeconds: phase?.seconds })
        yield* context.client.remove(context.bucket, object)
        yield* context.client.remove(context.bucket, manifest)
      }
    }
    return { case: c, runs: measured }
  }).pipe(Effect.mapError((e) => (e instanceof Error ? e : new Error(String(e)))))

const startRunner = (
  c: BenchCase,
  context: StoreContext,
  shared: Shared,
  names: { readonly object: string; readonly manifest: string; readonly run: number }
) =>
  spawnScoped(
    process.execPath,
    [
      ...(cpuProfDir === undefined
        ? []
        : ["--cpu-prof", `--cpu-prof-dir=${cpuProfDir}`, `--cpu-prof-name=${slugOf(c.label)}-${names.run}.cpuprofile`]),
      shared.runnerBin
    ],
    {
      // Nothing of this process's environment (npm's NODE_OPTIONS, AWS_* of the machine) but PATH;
      // the runner image's NODE_OPTIONS (its V8 settings), as it ships.
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        NODE_OPTIONS: shared.nodeOptions,
        DB_HOST: shared.pg.host,
        DB_PORT: String(shared.pg.port),
        DB_USER: role,
        DB_NAME: database,
        DB_SCHEMA: schema,
        PGPASSWORD: rolePassword,
        BACKUP_BUCKET: context.bucket,
        BACKUP_OBJECT: names.object,
        BACKUP_MANIFEST_OBJECT: names.manifest,
        BACKUP_COMPRESSION: c.compression,
        BACKUP_RESOURCE: "bench/bench",
        TERMINATION_MESSAGE_PATH: "/dev/null",
        ...(c.encrypted === true ? { BACKUP_AGE_RECIPIENTS: shared.recipient } : {}),
        ...context.runnerEnv
      },
      stdio: ["ignore", "pipe", "inherit"]
    }
  ).pipe(Effect.map((child) => [child]))

NodeRuntime.runMain(program.pipe(Effect.scoped, Effect.provide(Layer.mergeAll(Postgres.layer, NodeServices.layer))))
