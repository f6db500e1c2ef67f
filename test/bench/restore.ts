/**
 * Benchmark of the restore path: how close `db-backup-runner restore` (store ->
 * sha256 -> zstd decompression -> one psql --single-transaction) gets to plain
 * `psql -f` of the same dump, already decompressed on a local disk.
 *
 *   npm run bench:restore [-- --size-mb N] [--runs R] [--store file|gcs|s3|azure]
 *
 *   --size-mb N  about N MB of plain dump (default 1000)
 *   --runs R     restores by each method (default 2: this machine is noisy, every run is printed)
 *   --store S    where the backup is restored from: file (a directory as the volume, default),
 *                gcs (fake-gcs-server), s3 (versitygw) or azure (Azurite)
 *
 * The runner runs as its image ships it: bundled by scripts/bundle.ts, started
 * with plain `node` and the image's NODE_OPTIONS (docker/runner/Dockerfile).
 *
 * Generates a database of about N MB of dump in one schema, on a throwaway
 * PostgreSQL, backs it up once with the runner (zstd) into the store, and
 * decompresses that backup once into a plain SQL file in a temporary directory.
 * Then, in each run, each method restores into a fresh empty database of its
 * own (psql first in odd runs, the runner first in even ones: this machine's
 * load drifts):
 *   - psql --single-transaction --set=ON_ERROR_STOP=1 --no-psqlrc --quiet
 *     --file=<the plain SQL> (the limit: no store, no decompression, no checksum);
 *   - db-backup-runner restore <the backup's manifest URL> --dbname=<database>
 *     --username=<role>.
 * Both are the newest psql under /usr/lib/postgresql (the runner picks that one too).
 * Each restored database has the rows of its schema's tables counted against
 * the source's (any difference fails the benchmark), and is dropped.
 * Throughput is uncompressed SQL MB per second of wall time; peak RSS is VmHWM
 * from /proc/<pid>/status of the restoring process (psql; the runner's Node
 * process, and apart the largest psql it started), sampled every 100 ms; CPU s
 * is user + system of that process and its reaped children (the runner: with
 * its psql), not the server's.
 */

import { execFileSync } from "node:child_process"
import { existsSync, readdirSync } from "node:fs"
import { availableParallelism, cpus, loadavg } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import { RunnerContract, StorageLocation } from "@db-backup-operator/backup-api/contract"
import { Postgres, type PostgresShape } from "@db-backup-operator/testing"
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Effect, FileSystem, Layer, Stream } from "effect"
import { bundle } from "../../scripts/bundle.ts"
import { imageNodeOptions } from "./imageNodeOptions.ts"
import { sampleChildren } from "./restore/children.ts"
import { checkRows, rowCounts } from "./restore/rows.ts"
import { type Method, type Restore, restoreTable } from "./restore/table.ts"
import { database, generate, role, rolePassword, schema } from "./runner/database.ts"
import { measure, pipeline, spawnScoped } from "./runner/measure.ts"
import { type StoreContext, type StoreName, withStore } from "./runner/stores.ts"

const storeNames: ReadonlyArray<StoreName> = ["file", "gcs", "s3", "azure"]

const { values } = parseArgs({
  options: {
    "size-mb": { type: "string", default: "1000" },
    runs: { type: "string", default: "2" },
    store: { type: "string", default: "file" }
  }
})
const sizeMb = Number(values["size-mb"])
const runs = Number(values.runs)
const store = storeNames.find((name) => name === values.store)
if (!Number.isFinite(sizeMb) || sizeMb <= 0 || !Number.isInteger(runs) || runs < 1 || store === undefined) {
  console.error(
    `--size-mb must be a positive number, --runs a positive integer and --store one of ${storeNames.join(", ")}`
  )
  process.exit(2)
}

/** The newest psql under /usr/lib/postgresql (as the runner picks its tools), else the one on PATH. */
const newestPsql = (): string => {
  const root = "/usr/lib/postgresql"
  const majors = existsSync(root)
    ? readdirSync(root)
        .filter((major) => /^\d+$/u.test(major) && existsSync(join(root, major, "bin", "psql")))
        .sort((a, b) => Number(b) - Number(a))
    : []
  return majors[0] === undefined ? "psql" : join(root, majors[0], "bin", "psql")
}

const labels: Readonly<Record<Method, string>> = {
  psql: "psql --single-transaction -f plain.sql",
  runner: `db-backup-runner restore ${store} (zstd)`
}

/** The runner's last log line, "restore complete", as the runner's own figures. */
const restoreComplete = (stdout: string) => {
  const line = stdout.split("\n").findLast((l) => l.includes('"restore complete"'))
  if (line === undefined) return undefined
  return (JSON.parse(line) as { annotations: { sqlBytes: number; seconds: number; tables: number } }).annotations
}

interface Setup {
  readonly pg: PostgresShape
  readonly psql: string
  readonly runnerBin: string
  readonly nodeOptions: string
  /** The backup's manifest, as a URL `restore` takes. */
  readonly url: string
  /** The store's endpoint and credentials, as a backup Job gets them. */
  readonly storeEnv: Readonly<Record<string, string>>
  readonly plainFile: string
  readonly sqlBytes: number
  readonly sourceRows: ReadonlyArray<string>
}

/** Restores by `method` into a fresh database, checks its rows, drops it. */
const restoreOnce = (setup: Setup, method: Method, run: number, first: boolean): Effect.Effect<Restore, Error> =>
  Effect.gen(function* () {
    const { pg } = setup
    const target = `restore_${method}_${run}`
    yield* pg.createDatabase(target, { owner: role })
    const connection = { PGHOST: pg.host, PGPORT: String(pg.port), PGPASSWORD: rolePassword }
    let restore: Restore
    if (method === "psql") {
      const measured = yield* measure(labels.psql, () =>
        pipeline([
          {
            command: setup.psql,
            args: [
              "--single-transaction",
              "--set=ON_ERROR_STOP=1",
              "--no-psqlrc",
              "--quiet",
              `--username=${role}`,
              `--dbname=${target}`,
              `--file=${setup.plainFile}`
            ],
            env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...connection }
          }
        ])
      )
      restore = { method, run, first, measured }
    } else {
      const psqlPeaks = new Map<number, number>()
      const measured = yield* measure(
        labels.runner,
        () =>
          Effect.gen(function* () {
            const child = yield* spawnScoped(
              process.execPath,
              [setup.runnerBin, "restore", setup.url, `--dbname=${target}`, `--username=${role}`],
              {
                // Nothing of this process's environment (npm's NODE_OPTIONS, PG* of the machine) but PATH;
                // the store's settings as a Job has them, the image's NODE_OPTIONS.
                env: {
                  PATH: process.env.PATH ?? "/usr/bin:/bin",
                  NODE_OPTIONS: setup.nodeOptions,
                  PGPASSWORD: rolePassword,
                  ...setup.storeEnv
                },
                stdio: ["ignore", "pipe", "inherit"]
              }
            )
            if (child.pid !== undefined) yield* Effect.forkScoped(sampleChildren(child.pid, "psql", psqlPeaks))
            return [child]
          }),
        { stdout: "text" }
      )
      const complete = restoreComplete(measured.stdout)
      if (complete === undefined || complete.sqlBytes !== setup.sqlBytes) {
        return yield* Effect.fail(
          new Error(
            `${labels.runner}: ${complete === undefined ? 'no "restore complete" line' : `restored ${complete.sqlBytes} bytes of SQL, the plain file has ${setup.sqlBytes}`}\n${measured.stdout.slice(-3000)}`
          )
        )
      }
      restore = {
        method,
        run,
        first,
        measured,
        psqlHwmKb: Math.max(0, ...psqlPeaks.values()),
        ownSeconds: complete.seconds
      }
    }
    const counted = yield* checkRows(pg, target, schema, setup.sourceRows, labels[method])
    yield* pg.psql(`DROP DATABASE ${target}`)
    const speed = setup.sqlBytes / 1_000_000 / restore.measured.seconds
    console.log(
      `  run ${run} ${labels[method]}: ${restore.measured.seconds.toFixed(2)} s, ${speed.toFixed(1)} MB/s; rows ${counted.join(", ")} (as the source)`
    )
    return restore
  }).pipe(Effect.mapError((e) => (e instanceof Error ? e : new Error(String(e)))))

/** Backs the source schema up once with the runner (zstd) into the store; the dump's and manifest's object names. */
const backUp = (context: StoreContext, pg: PostgresShape, runnerBin: string, nodeOptions: string) =>
  Effect.gen(function* () {
    const resource = { namespace: "bench", name: "bench" }
    const names = StorageLocation.backupObjects({ ...resource, startedAt: new Date(), compression: "zstd" })
    // The variables the operator gives a backup Job (RunnerContract.toEnv), then the store's own.
    const contract: RunnerContract.Contract = {
      host: pg.host,
      port: pg.port,
      user: role,
      database,
      schema,
      sslMode: "prefer",
      allowCleartextPassword: false,
      store: context.store,
      bucket: context.bucket,
      object: names.object,
      manifestObject: names.manifest,
      format: "plain",
      compression: "zstd",
      gzipLevel: RunnerContract.defaultGzipLevel,
      s3ForcePathStyle: false,
      terminationMessagePath: "/dev/null",
      resource
    }
    const jobEnv = Object.fromEntries(RunnerContract.toEnv(contract).map((v) => [v.name, v.value]))
    const measured = yield* measure(
      "backup",
      () =>
        spawnScoped(process.execPath, [runnerBin], {
          env: {
            PATH: process.env.PATH ?? "/usr/bin:/bin",
            NODE_OPTIONS: nodeOptions,
            PGPASSWORD: rolePassword,
            ...jobEnv,
            ...context.runnerEnv
          },
          stdio: ["ignore", "pipe", "inherit"]
        }).pipe(Effect.map((child) => [child])),
      { stdout: "text" }
    )
    const info = yield* context.client.stat(context.bucket, names.object)
    console.log(
      `backup: ${(info.size / 1_000_000).toFixed(1)} MB of zstd in ${measured.seconds.toFixed(1)} s: ${context.client.url(context.bucket, names.manifest)}`
    )
    return names
  })

const program = Effect.gen(function* () {
  const fs = yield* FileSystem.FileSystem
  const work = yield* fs.makeTempDirectoryScoped({ prefix: "bench-restore-" })
  // The runner the way its image ships it (scripts/bundle.ts).
  const runnerBin = join(work, "runner.mjs")
  yield* Effect.promise(() =>
    bundle(fileURLToPath(new URL("../../apps/runner/src/main.ts", import.meta.url)), runnerBin)
  )
  const nodeOptions = imageNodeOptions("runner")
  const psql = newestPsql()
  const psqlVersion = execFileSync(psql, ["--version"], { encoding: "utf8" }).trim()
  const loadBefore = loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")

  const pg = yield* Postgres
  const rows = yield* generate(pg, sizeMb)
  const sourceRows = yield* rowCounts(pg, database, schema)

  console.log(`${store}: starting its store ...`)
  const restores = yield* withStore(store, (context) =>
    Effect.gen(function* () {
      const names = yield* backUp(context, pg, runnerBin, nodeOptions)
      // The dump, once, out of the store and decompressed: what psql -f restores.
      const zstFile = join(work, "dump.sql.zst")
      const plainFile = join(work, "plain.sql")
      yield* Stream.run(context.client.readStream(context.bucket, names.object), fs.sink(zstFile))
      yield* measure("zstd -d", () =>
        pipeline([{ command: "zstd", args: ["-d", "-q", "-f", "-o", plainFile, zstFile] }])
      )
      yield* fs.remove(zstFile)
      const sqlBytes = Number((yield* fs.stat(plainFile)).size)
      console.log(`plain SQL: ${(sqlBytes / 1_000_000).toFixed(1)} MB (${rows} rows)`)

      const { [RunnerContract.EnvVar.store]: _kind, ...storeEnv } = context.runnerEnv
      const setup: Setup = {
        pg,
        psql,
        runnerBin,
        nodeOptions,
        url: context.client.url(context.bucket, names.manifest),
        storeEnv,
        plainFile,
        sqlBytes,
        sourceRows
      }
      const done: Array<Restore> = []
      for (let run = 1; run <= runs; run++) {
        const order: ReadonlyArray<Method> = run % 2 === 1 ? ["psql", "runner"] : ["runner", "psql"]
        for (const [i, method] of order.entries()) done.push(yield* restoreOnce(setup, method, run, i === 0))
      }
      return { restores: done, sqlBytes }
    })
  )

  console.log("")
  console.log(
    `restore of ${(restores.sqlBytes / 1_000_000).toFixed(1)} MB of plain SQL (${rows} rows in schema ${schema}); MB/s = SQL MB / wall seconds; ${runs} run(s) each`
  )
  console.log(
    `runner: bundled from apps/runner/src/main.ts, NODE_OPTIONS=${JSON.stringify(nodeOptions)} (the image's), from ${store}`
  )
  console.log(
    `versions: Node ${process.version}; ${psqlVersion} (${psql}); server PostgreSQL ${pg.version}; ` +
      `machine: ${availableParallelism()} CPUs (${cpus()[0]?.model.trim() ?? "?"}), load average ${loadBefore} before`
  )
  for (const line of restoreTable(labels, restores.restores, restores.sqlBytes)) console.log(line)
  console.log("")
  console.log(
    "wall s: the runner's includes its start (Node + module loading), reading the manifest, its server checks and the count of tables after the commit; runner's own s is from its log."
  )
  console.log(
    "peak RSS: psql's, or the runner's Node process; its psql's peak RSS: the largest psql the runner started. CPU s: the process and its reaped children, not the server."
  )
  console.log(`load average at the end: ${(yield* fs.readFileString("/proc/loadavg")).trim()}`)
})

NodeRuntime.runMain(program.pipe(Effect.scoped, Effect.provide(Layer.mergeAll(Postgres.layer, NodeServices.layer))))
