/**
 * Benchmark of the backup path: how close the runner (pg_dump -> gzip ->
 * sha256 -> streaming upload) gets to pg_dump alone.
 *
 *   npm run bench:runner [-- --size-mb N] [--source]     (default N = 1000)
 *
 * The runner runs as its image ships it: bundled by scripts/bundle.ts, started
 * with plain `node`; with --source, from its TypeScript sources (apps/runner/bin).
 *
 * Generates a database of about N MB of dump in one schema, on a throwaway
 * PostgreSQL, then measures, each once after a warm-up dump:
 *   - pg_dump alone to /dev/null
 *   - pg_dump | gzip -1 to /dev/null (two processes, connected by a pipe; no shell)
 *   - pg_dump | curl -T - to fake-gcs-server (the same upload without Node)
 *   - db-backup-runner to fake-gcs-server, compression none and gzip
 * and prints throughput (uncompressed dump MB per second of wall time), the
 * ratio to pg_dump alone, peak RSS (VmHWM from /proc/<pid>/status, sampled
 * every 100 ms) and bytes written to disk (write_bytes from /proc/<pid>/io).
 */

import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, mkdtempSync } from "node:fs"
import { readFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import { GcsObjectStore } from "@db-backup-operator/storage"
import { GcsEmulator, Postgres } from "@db-backup-operator/testing"
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Effect, Layer, Schedule, type Scope } from "effect"
import { bundle } from "../../scripts/bundle.ts"

const { values } = parseArgs({
  options: { "size-mb": { type: "string", default: "1000" }, source: { type: "boolean", default: false } }
})
const sizeMb = Number(values["size-mb"])
if (!Number.isFinite(sizeMb) || sizeMb <= 0) {
  console.error(`--size-mb must be a positive number, got ${values["size-mb"]}`)
  process.exit(2)
}

// The runner the way its image ships it (scripts/bundle.ts), or with --source from its sources.
const runnerSource = fileURLToPath(new URL("../../apps/runner/src/main.ts", import.meta.url))
const runnerBin = values.source
  ? fileURLToPath(new URL("../../apps/runner/bin/db-backup-runner.js", import.meta.url))
  : join(mkdtempSync(join(tmpdir(), "bench-runner-bundle-")), "runner.mjs")
if (!values.source) await bundle(runnerSource, runnerBin)
const role = "bench"
const rolePassword = "bench-password"
const database = "bench"
const schema = "data"
const bucket = "bench-backups"
/** Approximate bytes one generated row takes in the plain dump. */
const bytesPerRow = 190
const rowsPerBatch = 250_000

// ---------------------------------------------------------------- processes

interface Usage {
  /** Peak resident set size, KiB (largest of the processes measured). */
  hwmKb: number
  /** Bytes written to the storage layer (sum over the processes measured). */
  writeBytes: number
  /** CPU seconds, user + system, including reaped children (sum over the processes measured). */
  cpuSeconds: number
}

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux). */
const ticksPerSecond = 100

const readUsage = async (pid: number): Promise<Usage | undefined> => {
  try {
    const [status, io, stat] = await Promise.all([
      readFile(`/proc/${pid}/status`, "utf8"),
      readFile(`/proc/${pid}/io`, "utf8"),
      readFile(`/proc/${pid}/stat`, "utf8")
    ])
    const hwm = /^VmHWM:\s+(\d+) kB$/mu.exec(status)?.[1]
    const write = /^write_bytes:\s+(\d+)$/mu.exec(io)?.[1]
    // Fields after the parenthesised command name: utime, stime, cutime, cstime are fields 14-17.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i] ?? 0), 0)
    return { hwmKb: Number(hwm ?? 0), writeBytes: Number(write ?? 0), cpuSeconds: ticks / ticksPerSecond }
  } catch {
    return undefined
  }
}

/**
 * Samples /proc for the given processes every 100 ms until interrupted, keeping
 * each one's highest values (a process that just exited reads as zero).
 */
const sample = (pids: ReadonlyArray<number>, peaks: Map<number, Usage>) =>
  Effect.promise(async () => {
    for (const pid of pids) {
      const usage = await readUsage(pid)
      if (usage === undefined) continue
      const peak = peaks.get(pid) ?? { hwmKb: 0, writeBytes: 0, cpuSeconds: 0 }
      peaks.set(pid, {
        hwmKb: Math.max(peak.hwmKb, usage.hwmKb),
        writeBytes: Math.max(peak.writeBytes, usage.writeBytes),
        cpuSeconds: Math.max(peak.cpuSeconds, usage.cpuSeconds)
      })
    }
  }).pipe(Effect.repeat(Schedule.spaced("100 millis")), Effect.asVoid)

const usageOf = (peaks: Map<number, Usage>): Usage => ({
  hwmKb: Math.max(0, ...[...peaks.values()].map((u) => u.hwmKb)),
  writeBytes: [...peaks.values()].reduce((sum, u) => sum + u.writeBytes, 0),
  cpuSeconds: [...peaks.values()].reduce((sum, u) => sum + u.cpuSeconds, 0)
})

/** A child process that lives in the current Scope (killed if the Scope closes first). */
const spawnScoped = (command: string, args: ReadonlyArray<string>, options: Parameters<typeof spawn>[2]) =>
  Effect.acquireRelease(
    Effect.sync(() => spawn(command, [...args], options)),
    (child) => Effect.sync(() => (child.exitCode === null && child.signalCode === null ? child.kill("SIGKILL") : true))
  )

const exitOf = (child: ChildProcess) =>
  Effect.callback<number>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resume(Effect.succeed(child.exitCode ?? 128))
      return
    }
    child.once("exit", (code, signal) => resume(Effect.succeed(code ?? (signal === null ? 128 : 128 + 15))))
  })

interface Measured {
  readonly seconds: number
  readonly usage: Usage
  readonly stdout: string
}

/** Starts the processes, samples them, waits for all to exit, and fails if any exit non-zero. */
const measure = (
  label: string,
  start: () => Effect.Effect<ReadonlyArray<ChildProcess>, never, Scope.Scope>,
  options: { readonly captureStdout?: boolean } = {}
) =>
  Effect.scoped(
    Effect.gen(function* () {
      const began = performance.now()
      const children = yield* start()
      const peaks = new Map<number, Usage>()
      const pids = children.flatMap((c) => (c.pid === undefined ? [] : [c.pid]))
      let stdout = ""
      // Only where asked: a pipe handed to another process (pg_dump | gzip) must not also be read here.
      if (options.captureStdout === true) {
        for (const child of children) child.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")))
      }
      yield* Effect.forkScoped(sample(pids, peaks))
      const codes = yield* Effect.forEach(children, exitOf, { concurrency: "unbounded" })
      const seconds = (performance.now() - began) / 1000
      if (codes.some((code) => code !== 0)) {
        return yield* Effect.die(new Error(`${label}: exit codes ${codes.join(", ")}\n${stdout.slice(-2000)}`))
      }
      return { seconds, usage: usageOf(peaks), stdout } satisfies Measured
    })
  )

// ---------------------------------------------------------------- the benchmark

const program = Effect.gen(function* () {
  const pg = yield* Postgres
  const gcs = yield* GcsEmulator
  const major = pg.version.split(".")[0] ?? ""
  const pgDump = existsSync(`/usr/lib/postgresql/${major}/bin/pg_dump`)
    ? `/usr/lib/postgresql/${major}/bin/pg_dump`
    : "pg_dump"
  const libpqEnv = { ...process.env, PGPASSWORD: rolePassword, PGCONNECT_TIMEOUT: "30" }
  const dumpArgs = [
    `--host=${pg.host}`,
    `--port=${pg.port}`,
    `--username=${role}`,
    `--dbname=${database}`,
    `--schema="${schema}"`,
    "--no-password",
    "--format=plain"
  ]

  console.log(`generating ~${sizeMb} MB in schema ${schema} (PostgreSQL ${pg.version}) ...`)
  const generationStarted = performance.now()
  yield* pg.createRole(role, rolePassword)
  yield* pg.createDatabase(database, { owner: role })
  yield* pg.createSchema(database, schema, { owner: role })
  const asRole = { database, user: role, password: rolePassword }
  yield* pg.psql(
    `CREATE TABLE ${schema}.orders (
       id bigint PRIMARY KEY, created timestamptz NOT NULL, customer text NOT NULL, email text,
       amount numeric(12,2) NOT NULL, status text NOT NULL, payload text NOT NULL)`,
    asRole
  )
  const rows = Math.max(1000, Math.round((sizeMb * 1_000_000) / bytesPerRow))
  for (let first = 1; first <= rows; first += rowsPerBatch) {
    const last = Math.min(rows, first + rowsPerBatch - 1)
    yield* pg.psql(
      `INSERT INTO ${schema}.orders
       SELECT g, timestamptz '2024-01-01' + g * interval '17 seconds',
              'customer ' || (g % 100000), 'user' || (g % 100000) || '@example.com',
              (g % 100000) / 100.0, (ARRAY['new','paid','shipped','returned'])[1 + g % 4],
              md5(g::text) || md5((g * 31)::text) || repeat(' lorem ipsum', 1 + g % 5)
       FROM generate_series(${first}, ${last}) AS g`,
      asRole
    )
  }
  yield* pg.psql("VACUUM ANALYZE", asRole)
  const tableSize = yield* pg.psql(`SELECT pg_size_pretty(pg_total_relation_size('${schema}.orders'))`, asRole)
  console.log(`${rows} rows, table ${tableSize}, in ${((performance.now() - generationStarted) / 1000).toFixed(1)} s`)

  yield* gcs.createBucket(bucket)
  const store = GcsObjectStore.make({ apiEndpoint: gcs.endpoint })

  const pgDumpAlone = () =>
    spawnScoped(pgDump, dumpArgs, { env: libpqEnv, stdio: ["ignore", "ignore", "inherit"] }).pipe(
      Effect.map((c) => [c])
    )
  const pgDumpGzip = () =>
    Effect.gen(function* () {
      const dump = yield* spawnScoped(pgDump, dumpArgs, { env: libpqEnv, stdio: ["ignore", "pipe", "inherit"] })
      if (dump.stdout === null) return yield* Effect.die(new Error("pg_dump has no stdout"))
      // gzip reads pg_dump's pipe directly, as in a shell pipeline: no byte passes through this process.
      const gzip = yield* spawnScoped("gzip", ["-1"], { stdio: [dump.stdout, "ignore", "inherit"] })
      return [dump, gzip]
    })
  // The same upload without Node: what the emulator and this machine allow for a plain streamed upload.
  const pgDumpCurl = () =>
    Effect.gen(function* () {
      const dump = yield* spawnScoped(pgDump, dumpArgs, { env: libpqEnv, stdio: ["ignore", "pipe", "inherit"] })
      if (dump.stdout === null) return yield* Effect.die(new Error("pg_dump has no stdout"))
      const url = `${gcs.endpoint}/upload/storage/v1/b/${bucket}/o?uploadType=media&name=backups/bench/curl.sql`
      const curl = yield* spawnScoped(
        "curl",
        ["--silent", "--show-error", "--fail", "--output", "/dev/null", "-X", "POST", "-T", "-", url],
        { stdio: [dump.stdout, "ignore", "inherit"] }
      )
      return [dump, curl]
    })
  const runner = (compression: "none" | "gzip") => () =>
    spawnScoped(process.execPath, [runnerBin], {
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        DB_HOST: pg.host,
        DB_PORT: String(pg.port),
        DB_USER: role,
        DB_NAME: database,
        DB_SCHEMA: schema,
        PGPASSWORD: rolePassword,
        BACKUP_BUCKET: bucket,
        BACKUP_OBJECT: `backups/bench/${compression}/backup.sql${compression === "gzip" ? ".gz" : ""}`,
        BACKUP_MANIFEST_OBJECT: `backups/bench/${compression}/backup.json`,
        BACKUP_COMPRESSION: compression,
        BACKUP_RESOURCE: "bench/bench",
        GCS_ENDPOINT: gcs.endpoint,
        TERMINATION_MESSAGE_PATH: "/dev/null"
      },
      stdio: ["ignore", "pipe", "inherit"]
    }).pipe(Effect.map((c) => [c]))

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
    return { dumped: 0, stored: 0, seconds: 0 }
  }

  console.log("warm-up dump ...")
  yield* measure("warm-up", pgDumpAlone)
  const alone = yield* measure("pg_dump", pgDumpAlone)
  const piped = yield* measure("pg_dump | gzip -1", pgDumpGzip)
  const curled = yield* measure("pg_dump | curl", pgDumpCurl)
  yield* store.remove(bucket, "backups/bench/curl.sql").pipe(Effect.orDie)
  const none = yield* measure("runner none", runner("none"), { captureStdout: true })
  const noneDump = dumpPhase(none.stdout)
  yield* store.remove(bucket, "backups/bench/none/backup.sql").pipe(Effect.orDie)
  const gzip = yield* measure("runner gzip", runner("gzip"), { captureStdout: true })
  const gzipDump = dumpPhase(gzip.stdout)
  yield* store.remove(bucket, "backups/bench/gzip/backup.sql.gz").pipe(Effect.orDie)

  const dumpBytes = noneDump.dumped
  const mbps = (seconds: number) => dumpBytes / 1_000_000 / seconds
  const base = mbps(alone.seconds)
  const rowsOut = [
    ["pg_dump > /dev/null", alone, undefined],
    ["pg_dump | gzip -1 > /dev/null", piped, undefined],
    ["pg_dump | curl -T - -> GCS emulator", curled, undefined],
    ["runner, none -> GCS emulator", none, noneDump],
    ["runner, gzip -> GCS emulator", gzip, gzipDump]
  ] as const
  const header = [
    "case",
    "wall s",
    "MB/s",
    "vs pg_dump",
    "dump-phase MB/s",
    "CPU s",
    "peak RSS",
    "disk written",
    "stored MB"
  ]
  const table = rowsOut.map(([name, m, phase]) => [
    name,
    m.seconds.toFixed(2),
    mbps(m.seconds).toFixed(1),
    `${(mbps(m.seconds) / base).toFixed(2)}x`,
    phase === undefined ? "" : (dumpBytes / 1_000_000 / phase.seconds).toFixed(1),
    m.usage.cpuSeconds.toFixed(1),
    `${(m.usage.hwmKb / 1024).toFixed(0)} MiB`,
    `${(m.usage.writeBytes / 1_000_000).toFixed(1)} MB`,
    phase === undefined ? "" : (phase.stored / 1_000_000).toFixed(1)
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => (r[i] ?? "").length)))
  const format = (cells: ReadonlyArray<string>) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  ")
  console.log("")
  console.log(
    `dump: ${(dumpBytes / 1_000_000).toFixed(1)} MB of plain SQL (${rows} rows); MB/s = dump MB / wall seconds`
  )
  console.log(format(header))
  console.log(format(widths.map((w) => "-".repeat(w))))
  for (const row of table) console.log(format(row))
  console.log("")
  console.log(
    "wall s includes the runner's start (Node + module loading) and its version checks; dump-phase MB/s is the runner's own measure from first to last byte."
  )
  console.log(
    "CPU s: user + system of the processes measured (runner: Node plus its pg_dump and psql children). peak RSS: pg_dump alone = pg_dump; pipeline = largest of pg_dump and gzip; runner = the runner's Node process."
  )
  console.log(`load average at the end: ${(yield* Effect.promise(() => readFile("/proc/loadavg", "utf8"))).trim()}`)
})

NodeRuntime.runMain(program.pipe(Effect.provide(Layer.mergeAll(Postgres.layer, GcsEmulator.layer, NodeServices.layer))))
