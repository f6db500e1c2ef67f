import { createHash } from "node:crypto"
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { gunzipSync } from "node:zlib"
import { decodeManifest, encodeManifest, type RunnerContract } from "@db-backup-operator/backup-api/contract"
import { type BackupOptions, runBackup } from "@db-backup-operator/runner"
import {
  type JsonValue,
  type ObjectInfo,
  ObjectNotFound,
  ObjectStore,
  type StorageError,
  storageError,
  type Upload,
  type WriteOptions
} from "@db-backup-operator/storage"
import { NodeServices } from "@effect/platform-node"
import { afterAll, assert, beforeAll, describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Layer, Logger, Redacted, Sink, Stream } from "effect"

// runBackup against an in-memory ObjectStore and a stand-in pg_dump/psql, so the
// order "dump, then manifest, else delete the dump" is checked without a real
// bucket or server (the integration tests cover those).

const bucket = "backups"
const object = "backups/team/app/backup-20250304-050607.sql.gz"
const manifestObject = "backups/team/app/backup-20250304-050607.json"
const writeCheck = "backups/team/app/.write-check"

const contract: RunnerContract.Contract = {
  host: "db.test",
  port: 5432,
  user: "app",
  database: "app",
  schema: "app",
  sslMode: "disable",
  allowCleartextPassword: false,
  store: "gcs",
  bucket,
  object,
  manifestObject,
  format: "plain",
  compression: "gzip",
  gzipLevel: 1,
  terminationMessagePath: "/dev/termination-log",
  s3ForcePathStyle: false,
  resource: { namespace: "team", name: "app" }
}

// Large enough to span many of pg_dump's pipe reads, small enough to stay fast.
const dumpSql = `${Array.from({ length: 5000 }, (_, i) => `INSERT INTO app.items VALUES (${i}, 'item ${i}');`).join("\n")}\n`

// runBackup finds pg_dump as <root>/<major>/bin/pg_dump (BackupOptions.toolRoots) and
// asks psql beside it for the server version. Major 99 is newer than any real pg_dump
// on PATH, so these two are the ones chosen whatever the machine has installed.
let toolRoot = ""
// The same tools, but a pg_dump that writes the dump and then never exits: a run that only a stop ends.
let endlessToolRoot = ""
// The same tools, but a pg_dump whose dump is its arguments, one per line.
let echoToolRoot = ""
beforeAll(() => {
  const tools = (after: string, dump?: string) => {
    const root = mkdtempSync(join(tmpdir(), "runner-manifest-test-"))
    const bin = join(root, "99", "bin")
    mkdirSync(bin, { recursive: true })
    writeFileSync(join(root, "dump.sql"), dumpSql)
    const script = (name: string, text: string) => {
      writeFileSync(join(bin, name), text)
      chmodSync(join(bin, name), 0o755)
    }
    script(
      "pg_dump",
      `#!/bin/sh\nif [ "$1" = "--version" ]; then echo "pg_dump (PostgreSQL) 99.1"; exit 0; fi\n${dump ?? `cat '${join(root, "dump.sql")}'`}\n${after}\n`
    )
    script("psql", "#!/bin/sh\necho 990001\n")
    return root
  }
  toolRoot = tools("")
  endlessToolRoot = tools("exec sleep 600")
  echoToolRoot = tools("", `printf '%s\\n' "$@"`)
})
afterAll(() => {
  for (const root of [toolRoot, endlessToolRoot, echoToolRoot]) {
    if (root !== "") rmSync(root, { recursive: true, force: true })
  }
})

interface StoredObject {
  readonly bytes: Uint8Array
  readonly info: ObjectInfo
}

/** Faults to inject, by object name; each returns the error the store reports. */
interface Faults {
  readonly writeSmall?: ReadonlyMap<string, StorageError>
  readonly remove?: ReadonlyMap<string, StorageError>
}

/**
 * An ObjectStore in memory that records every call that changes the bucket, and
 * fails the calls named in `faults`. Like GCS, an upload is visible only after
 * commit and is aborted when its Scope closes uncommitted.
 */
const url = (b: string, o: string) => `gs://${b}/${o}`
const targetOf = (b: string, o: string) => ({ bucket: b, object: o, url: url(b, o) })

const memoryStore = (faults: Faults = {}, observe: (call: string) => void = () => {}) => {
  const objects = new Map<string, StoredObject>()
  const recorded: Array<string> = []
  const calls = {
    push: (call: string) => {
      recorded.push(call)
      observe(call)
    }
  }
  const put = (b: string, o: string, bytes: Uint8Array, options: Partial<WriteOptions>): ObjectInfo => {
    const info: ObjectInfo = {
      bucket: b,
      object: o,
      size: bytes.byteLength,
      ...(options.contentType === undefined ? {} : { contentType: options.contentType }),
      metadata: { ...options.metadata }
    }
    objects.set(url(b, o), { bytes, info })
    return info
  }

  const upload = (b: string, o: string, options: WriteOptions) =>
    Effect.acquireRelease(
      Effect.sync(() => {
        calls.push(`upload ${url(b, o)}`)
        let state: "open" | "committed" | "aborted" = "open"
        const chunks: Array<Uint8Array> = []
        let bytes = 0
        const notOpen = () => storageError("upload", targetOf(b, o), new Error(`the upload is ${state}`))
        const write = (chunk: Uint8Array): Effect.Effect<void, StorageError> =>
          Effect.suspend(() => {
            if (state !== "open") return Effect.fail(notOpen())
            chunks.push(chunk)
            bytes += chunk.byteLength
            return Effect.void
          })
        const commit = Effect.suspend(() => {
          if (state !== "open") return Effect.fail(notOpen())
          state = "committed"
          calls.push(`commit ${url(b, o)}`)
          return Effect.succeed(put(b, o, Buffer.concat(chunks), options))
        })
        const abort = (_reason: string) =>
          Effect.sync(() => {
            if (state !== "open") return
            state = "aborted"
            calls.push(`abort ${url(b, o)}`)
          })
        const result: Upload = {
          bucket: b,
          object: o,
          write,
          sink: Sink.forEach(write),
          bytesWritten: Effect.sync(() => bytes),
          commit,
          abort
        }
        return result
      }),
      (u) => u.abort("the upload's scope closed before commit")
    )

  const writeSmall = (
    b: string,
    o: string,
    data: Uint8Array | string | JsonValue,
    options: Partial<WriteOptions> = {}
  ): Effect.Effect<ObjectInfo, StorageError> =>
    Effect.suspend(() => {
      calls.push(`writeSmall ${url(b, o)}`)
      const fault = faults.writeSmall?.get(o)
      if (fault !== undefined) return Effect.fail(fault)
      const bytes =
        data instanceof Uint8Array ? data : Buffer.from(typeof data === "string" ? data : JSON.stringify(data))
      return Effect.succeed(put(b, o, bytes, options))
    })

  const find = (b: string, o: string) =>
    Effect.suspend(() => {
      const found = objects.get(url(b, o))
      return found === undefined ? Effect.fail(ObjectNotFound.of(targetOf(b, o))) : Effect.succeed(found)
    })

  const service = ObjectStore.of({
    url,
    upload,
    writeSmall,
    read: (b, o) => find(b, o).pipe(Effect.map((s) => s.bytes)),
    readStream: (b, o) => Stream.unwrap(find(b, o).pipe(Effect.map((s) => Stream.make(s.bytes)))),
    exists: (b, o) => Effect.sync(() => objects.has(url(b, o))),
    stat: (b, o) => find(b, o).pipe(Effect.map((s) => s.info)),
    list: (b, options) =>
      Effect.sync(() =>
        [...objects.values()]
          .map((s) => s.info)
          .filter((info) => info.bucket === b && info.object.startsWith(options?.prefix ?? ""))
      ),
    remove: (b, o) =>
      Effect.suspend(() => {
        calls.push(`remove ${url(b, o)}`)
        const fault = faults.remove?.get(o)
        if (fault !== undefined) return Effect.fail(fault)
        objects.delete(url(b, o))
        return Effect.void
      })
  })
  return { objects, calls: recorded, layer: Layer.succeed(ObjectStore, service) }
}

interface LogLine {
  readonly level: string
  readonly message: unknown
  readonly annotations: Record<string, unknown>
}

/**
 * Runs a backup with the stand-in tools and `store`, collecting its log lines instead of printing them;
 * `changes` to the contract, if any.
 */
const backup = (
  store: ReturnType<typeof memoryStore>,
  options: BackupOptions = {},
  changes: Partial<RunnerContract.Contract> = {}
) => {
  const logs: Array<LogLine> = []
  const collect = Logger.map(Logger.formatStructured, (entry) => {
    logs.push({
      level: entry.level,
      message: Array.isArray(entry.message) && entry.message.length === 1 ? entry.message[0] : entry.message,
      annotations: entry.annotations
    })
  })
  return runBackup(
    { ...contract, ...changes },
    { password: Redacted.make("not-a-real-password") },
    { toolRoots: [toolRoot], ...options }
  ).pipe(
    Effect.provide(Layer.mergeAll(store.layer, NodeServices.layer, Logger.layer([collect]))),
    Effect.exit,
    Effect.map((exit) => ({ exit, logs }))
  )
}

/** The error a failed run failed with (what the CLI writes to the termination message). */
const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  if (Exit.isSuccess(exit)) return assert.fail("the backup succeeded, but it should have failed")
  const error = Cause.findErrorOption(exit.cause)
  if (error._tag === "None") return assert.fail(`the backup died instead of failing: ${Cause.pretty(exit.cause)}`)
  return error.value
}

// Each run starts several processes (every pg_dump found, psql, the dump): seconds on a
// busy two-core machine, so more than vitest's default 5 seconds.
const timeout = 30_000

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")

const unavailable = (o: string) =>
  storageError("write", targetOf(bucket, o), Object.assign(new Error("Service Unavailable"), { code: 503 }))

describe("runBackup and the manifest", () => {
  it.live(
    "stores the dump and then a manifest whose sha256 and size match the dump's bytes",
    () =>
      Effect.gen(function* () {
        const store = memoryStore()
        const { exit } = yield* backup(store)
        if (Exit.isFailure(exit)) return assert.fail(`the backup failed: ${Cause.pretty(exit.cause)}`)

        // The location is checked writable before the dump, and the check object removed.
        expect(store.calls).toEqual([
          `writeSmall gs://${bucket}/${writeCheck}`,
          `remove gs://${bucket}/${writeCheck}`,
          `upload gs://${bucket}/${object}`,
          `commit gs://${bucket}/${object}`,
          `writeSmall gs://${bucket}/${manifestObject}`
        ])
        expect([...store.objects.keys()].sort()).toEqual(
          [`gs://${bucket}/${manifestObject}`, `gs://${bucket}/${object}`].sort()
        )
        const dump = store.objects.get(`gs://${bucket}/${object}`)?.bytes ?? new Uint8Array()
        expect(gunzipSync(dump).toString("utf8")).toBe(dumpSql)

        const manifestBytes = store.objects.get(`gs://${bucket}/${manifestObject}`)?.bytes ?? new Uint8Array()
        const manifest = yield* decodeManifest(Buffer.from(manifestBytes).toString("utf8"))
        expect(manifest).toMatchObject({
          bucket,
          object,
          format: "plain",
          compression: "gzip",
          sizeBytes: dump.byteLength,
          sha256: sha256(dump),
          serverVersion: "990001",
          pgDumpVersion: "pg_dump (PostgreSQL) 99.1",
          resource: { namespace: "team", name: "app" }
        })
        expect(exit.value).toEqual({
          location: `gs://${bucket}/${object}`,
          manifestLocation: `gs://${bucket}/${manifestObject}`,
          manifest
        })
      }),
    timeout
  )

  it.live(
    "with format custom, asks pg_dump for an uncompressed custom archive, compresses it itself and records the format",
    () =>
      Effect.gen(function* () {
        const customObject = "backups/team/app/backup-20250304-050607.dump.gz"
        const store = memoryStore()
        const { exit } = yield* backup(store, { toolRoots: [echoToolRoot] }, { format: "custom", object: customObject })
        if (Exit.isFailure(exit)) return assert.fail(`the backup failed: ${Cause.pretty(exit.cause)}`)
        const stored = store.objects.get(`gs://${bucket}/${customObject}`)
        if (stored === undefined) return assert.fail("no dump object")
        // The stand-in pg_dump's output is its arguments: the runner's gzip stage alone compresses.
        const args = gunzipSync(stored.bytes).toString("utf8").split("\n")
        expect(args).toEqual(expect.arrayContaining(["--format=custom", "--compress=0"]))
        expect(args).not.toContain("--format=plain")
        expect(stored.info.contentType).toBe("application/gzip")
        const manifestBytes = store.objects.get(`gs://${bucket}/${manifestObject}`)?.bytes ?? new Uint8Array()
        const manifest = yield* decodeManifest(Buffer.from(manifestBytes).toString("utf8"))
        expect(manifest).toMatchObject({ object: customObject, format: "custom", compression: "gzip" })
        expect(manifest.sha256).toBe(sha256(stored.bytes))

        // Uncompressed, a custom archive is binary: not stored as SQL.
        const uncompressed = memoryStore()
        const plainNamed = "backups/team/app/backup-20250304-050607.dump"
        yield* backup(
          uncompressed,
          { toolRoots: [echoToolRoot] },
          { format: "custom", compression: "none", object: plainNamed }
        )
        expect(uncompressed.objects.get(`gs://${bucket}/${plainNamed}`)?.info.contentType).toBe(
          "application/octet-stream"
        )

        // A plain run over this run's names does not take the custom backup for its own: it dumps.
        store.calls.length = 0
        const plain = yield* backup(store, { toolRoots: [echoToolRoot] }, { object: customObject })
        if (Exit.isFailure(plain.exit)) return assert.fail(`the backup failed: ${Cause.pretty(plain.exit.cause)}`)
        expect(store.calls).toContain(`commit gs://${bucket}/${customObject}`)
        expect(plain.exit.value.manifest.format).toBe("plain")
      }),
    timeout
  )

  it.live(
    "a location that refuses the write check fails before pg_dump runs; one that only refuses its removal backs up",
    () =>
      Effect.gen(function* () {
        const denied = memoryStore({ writeSmall: new Map([[writeCheck, unavailable(writeCheck)]]) })
        const refused = yield* backup(denied)
        // Nothing was uploaded: the dump never started.
        expect(denied.calls).toEqual([`writeSmall gs://${bucket}/${writeCheck}`])
        expect(failureOf(refused.exit)).toMatchObject({
          _tag: "UploadFailed",
          message: `gs://${bucket} cannot be written (checked before the dump): write gs://${bucket}/${writeCheck} failed (HTTP 503): Service Unavailable`
        })

        // A create-only identity: the empty check object stays, and the backup goes on.
        const createOnly = memoryStore({ remove: new Map([[writeCheck, unavailable(writeCheck)]]) })
        const { exit, logs } = yield* backup(createOnly)
        if (Exit.isFailure(exit)) return assert.fail(`the backup failed: ${Cause.pretty(exit.cause)}`)
        expect([...createOnly.objects.keys()].sort()).toEqual(
          [`gs://${bucket}/${writeCheck}`, `gs://${bucket}/${manifestObject}`, `gs://${bucket}/${object}`].sort()
        )
        expect(createOnly.objects.get(`gs://${bucket}/${writeCheck}`)?.bytes.byteLength).toBe(0)
        expect(logs).toContainEqual(
          expect.objectContaining({
            level: "INFO",
            message: "the write check object stays (cannot remove it)",
            annotations: expect.objectContaining({ object: writeCheck })
          })
        )
      }),
    timeout
  )

  it.live(
    "deletes the dump when its manifest cannot be written, and fails naming the manifest",
    () =>
      Effect.gen(function* () {
        const store = memoryStore({ writeSmall: new Map([[manifestObject, unavailable(manifestObject)]]) })
        const { exit, logs } = yield* backup(store)

        // The dump was complete before the manifest failed, and was deleted after.
        expect(store.calls).toEqual([
          `writeSmall gs://${bucket}/${writeCheck}`,
          `remove gs://${bucket}/${writeCheck}`,
          `upload gs://${bucket}/${object}`,
          `commit gs://${bucket}/${object}`,
          `writeSmall gs://${bucket}/${manifestObject}`,
          `remove gs://${bucket}/${object}`
        ])
        expect([...store.objects.keys()]).toEqual([])

        // This message becomes the Pod's termination message: one line saying what and why.
        expect(failureOf(exit)).toMatchObject({
          _tag: "UploadFailed",
          message: `cannot write the manifest gs://${bucket}/${manifestObject}: write gs://${bucket}/${manifestObject} failed (HTTP 503): Service Unavailable`
        })
        expect(logs).toContainEqual(
          expect.objectContaining({
            level: "WARN",
            message: "deleted the dump object: its manifest could not be written",
            annotations: expect.objectContaining({ location: `gs://${bucket}/${object}` })
          })
        )
      }),
    timeout
  )

  it.live(
    "still fails with the manifest's error when the dump cannot be deleted either, and logs why",
    () =>
      Effect.gen(function* () {
        const store = memoryStore({
          writeSmall: new Map([[manifestObject, unavailable(manifestObject)]]),
          remove: new Map([
            [
              object,
              storageError("delete", targetOf(bucket, object), Object.assign(new Error("Forbidden"), { code: 403 }))
            ]
          ])
        })
        const { exit, logs } = yield* backup(store)

        expect(store.calls.at(-1)).toBe(`remove gs://${bucket}/${object}`)
        // The reason the backup failed is the manifest, not the cleanup.
        expect(failureOf(exit)).toMatchObject({
          _tag: "UploadFailed",
          message: `cannot write the manifest gs://${bucket}/${manifestObject}: write gs://${bucket}/${manifestObject} failed (HTTP 503): Service Unavailable`
        })
        expect(logs).toContainEqual(
          expect.objectContaining({
            level: "ERROR",
            message: "cannot delete the incomplete dump object",
            annotations: expect.objectContaining({
              location: `gs://${bucket}/${object}`,
              error: `delete gs://${bucket}/${object} failed (HTTP 403): Forbidden`
            })
          })
        )
      }),
    timeout
  )
})

/** An in-memory store that asks the run to stop (its SIGTERM) once it sees a call starting with `call`. */
const stoppingAt = (call: string) => {
  let requestStop = () => {}
  const stop = new Promise<void>((resolve) => {
    requestStop = resolve
  })
  const store = memoryStore({}, (made) => {
    if (made.startsWith(call)) requestStop()
  })
  return { store, stopRequested: Effect.promise(() => stop) }
}

describe("a run whose Pod is lost", () => {
  // A Job starts a new Pod when one is deleted or evicted; with podReplacementPolicy Failed the old
  // one has stopped by then, but it may have stopped after storing the whole backup.
  it.live(
    "reports an earlier attempt's complete backup without dumping again, and dumps over another run's manifest",
    () =>
      Effect.gen(function* () {
        const store = memoryStore()
        const first = yield* backup(store)
        if (Exit.isFailure(first.exit)) return assert.fail(`the backup failed: ${Cause.pretty(first.exit.cause)}`)
        store.calls.length = 0

        const again = yield* backup(store)
        if (Exit.isFailure(again.exit)) return assert.fail(`the retry failed: ${Cause.pretty(again.exit.cause)}`)
        // Nothing written, nothing removed: the stored backup is this run's.
        expect(store.calls).toEqual([])
        expect(again.exit.value).toEqual(first.exit.value)
        expect(again.logs).toContainEqual(
          expect.objectContaining({ message: "backup already complete: an earlier attempt of this run stored it" })
        )

        // A manifest at this name that describes another dump (here: another database) is not this run's.
        const manifestUrl = `gs://${bucket}/${manifestObject}`
        const other = { ...first.exit.value.manifest, database: "other" }
        store.objects.set(manifestUrl, {
          bytes: Buffer.from(encodeManifest(other)),
          info: { bucket, object: manifestObject, size: 0, metadata: {} }
        })
        const redone = yield* backup(store)
        if (Exit.isFailure(redone.exit)) return assert.fail(`the backup failed: ${Cause.pretty(redone.exit.cause)}`)
        expect(store.calls).toContain(`commit gs://${bucket}/${object}`)
        expect(redone.exit.value.manifest.database).toBe("app")

        // Nor is a manifest whose dump is not the size it records (the dump of a later, lost attempt).
        store.calls.length = 0
        const dumpUrl = `gs://${bucket}/${object}`
        const dump = store.objects.get(dumpUrl)
        if (dump === undefined) return assert.fail("no dump object")
        store.objects.set(dumpUrl, { ...dump, info: { ...dump.info, size: dump.info.size + 1 } })
        yield* backup(store)
        expect(store.calls).toContain(`commit gs://${bucket}/${object}`)
      }),
    timeout
  )

  it.live(
    "stops when asked before the dump is stored: the upload is aborted and nothing is left",
    () =>
      Effect.gen(function* () {
        // Asked to stop while the dump streams (pg_dump here never exits on its own).
        const { store, stopRequested } = stoppingAt("upload ")
        const { exit } = yield* backup(store, { toolRoots: [endlessToolRoot], stopRequested })
        expect(failureOf(exit)).toMatchObject({
          _tag: "Stopped",
          message: "stopped (SIGTERM) before the dump was stored: the upload was aborted, nothing of this run was kept"
        })
        expect(store.calls).toEqual([
          `writeSmall gs://${bucket}/${writeCheck}`,
          `remove gs://${bucket}/${writeCheck}`,
          `upload gs://${bucket}/${object}`,
          `abort gs://${bucket}/${object}`
        ])
        expect([...store.objects.keys()]).toEqual([])
      }),
    timeout
  )

  it.live(
    "once the dump is stored, finishes when asked to stop: manifest written and verified, the backup reported",
    () =>
      Effect.gen(function* () {
        const { store, stopRequested } = stoppingAt("commit ")
        const { exit } = yield* backup(store, { stopRequested })
        if (Exit.isFailure(exit)) return assert.fail(`the backup failed: ${Cause.pretty(exit.cause)}`)
        expect(store.calls.slice(-2)).toEqual([
          `commit gs://${bucket}/${object}`,
          `writeSmall gs://${bucket}/${manifestObject}`
        ])
        expect([...store.objects.keys()].sort()).toEqual(
          [`gs://${bucket}/${manifestObject}`, `gs://${bucket}/${object}`].sort()
        )
      }),
    timeout
  )
})
