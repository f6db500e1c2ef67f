import { execFileSync, spawnSync } from "node:child_process"
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Stream } from "effect"
import * as FileObjectStore from "../src/FileObjectStore.ts"

// What the shared conformance suite cannot see from outside the ObjectStore
// interface: the files on the volume (hidden temporary files, modes, nothing
// written outside the bucket), names that would escape the bucket, a process
// killed mid-upload, and a full or read-only volume.

const store = FileObjectStore.make()
const MiB = 1024 * 1024
const decoder = new TextDecoder()

/** A fresh directory holding a bucket directory `volume` (created) and room for paths beside it. */
const scratch = Effect.acquireRelease(
  Effect.promise(async () => {
    const root = await mkdtemp(join(tmpdir(), "db-backup-operator-file-unit-"))
    const bucket = join(root, "volume")
    await mkdir(bucket)
    return { root, bucket }
  }),
  ({ root }) => Effect.promise(() => rm(root, { recursive: true, force: true }))
)

/** Every file and directory under `dir`, relative, sorted (hidden ones included). */
const onDisk = (dir: string) =>
  Effect.promise(async () => (await readdir(dir, { recursive: true })).map((p) => p.replaceAll("\\", "/")).sort())

const temporaryFile = /^\.backup\.sql\.gz\.upload-[0-9a-f]{16}$/u

describe("FileObjectStore", () => {
  it("names objects by file URL", () => {
    expect(store.url("/var/lib/db-backup/volume", "backups/ns/db/backup-1.sql.gz")).toBe(
      "file:///var/lib/db-backup/volume/backups/ns/db/backup-1.sql.gz"
    )
    expect(store.url("/var/lib/db-backup/volume/", "a.json")).toBe("file:///var/lib/db-backup/volume/a.json")
    expect(store.url("/", "a.json")).toBe("file:///a.json")
    expect(store.url("/v", "a\nb\0.json")).toBe("file:///v/a%0Ab%00.json")
  })

  it.live.each<readonly [object: string, why: string]>([
    ["../outside.json", "would leave the bucket"],
    ["backups/../../outside.json", "would leave the bucket"],
    ["./a.json", "would leave the bucket"],
    ["/etc/outside.json", "is absolute"],
    ["backups/a\0.json", "NUL"],
    ["backups//a.json", "empty path segment"],
    ["backups/", "empty path segment"],
    ["", "empty"],
    ["backups/.a.json.upload-0123456789abcdef", "reserved for temporary files"]
  ])("refuses to write the object name %j", ([object, why]) =>
    Effect.gen(function* () {
      const { root, bucket } = yield* scratch
      const write = yield* Effect.flip(store.writeSmall(bucket, object, "x"))
      expect(write).toMatchObject({ _tag: "StorageError", operation: "write" })
      expect(write.message).toContain(why)
      expect(write.message).not.toContain("\0")
      const upload = yield* Effect.flip(
        Effect.scoped(
          Effect.gen(function* () {
            const started = yield* store.upload(bucket, object, { contentType: "text/plain" })
            yield* started.write(new Uint8Array(10))
            return yield* started.commit
          })
        )
      )
      expect(upload).toMatchObject({ _tag: "StorageError", operation: "upload" })
      expect(upload.message).toContain(why)
      // Nothing was written, inside the bucket or beside it.
      expect(yield* onDisk(root)).toEqual(["volume"])
    })
  )

  it.live("refuses reads and deletes outside the bucket, and relative buckets", () =>
    Effect.gen(function* () {
      const { root, bucket } = yield* scratch
      yield* Effect.promise(() => writeFile(join(root, "secret.txt"), "not a backup"))
      for (const object of ["../secret.txt", "a/../../secret.txt", join(root, "secret.txt")]) {
        expect((yield* Effect.flip(store.read(bucket, object)))._tag).toBe("StorageError")
        expect((yield* Effect.flip(store.stat(bucket, object)))._tag).toBe("StorageError")
        expect((yield* Effect.flip(store.exists(bucket, object)))._tag).toBe("StorageError")
        expect((yield* Effect.flip(Stream.runCollect(store.readStream(bucket, object))))._tag).toBe("StorageError")
        expect((yield* Effect.flip(store.remove(bucket, object)))._tag).toBe("StorageError")
      }
      expect((yield* Effect.flip(store.list(bucket, { prefix: "../" }))).message).toContain("would leave the bucket")
      expect((yield* Effect.flip(store.list(bucket, { prefix: "a/../../" }))).message).toContain(
        "would leave the bucket"
      )
      expect(yield* onDisk(root)).toEqual(["secret.txt", "volume"])
      const relative = yield* Effect.flip(store.writeSmall("volume", "a.json", {}))
      expect(relative.message).toContain("is not an absolute directory path")
    })
  )

  it.live("never creates the bucket: a missing or non-directory mount is BucketNotFound", () =>
    Effect.gen(function* () {
      const { root } = yield* scratch
      const missing = join(root, "not-mounted")
      const write = yield* Effect.flip(store.writeSmall(missing, "backups/a.json", {}))
      expect(write).toMatchObject({ _tag: "StorageError", reason: "BucketNotFound" })
      const upload = yield* Effect.flip(Effect.scoped(store.upload(missing, "backups/a.sql.gz", { contentType: "x" })))
      expect(upload).toMatchObject({ _tag: "StorageError", reason: "BucketNotFound" })
      expect((yield* Effect.flip(store.remove(missing, "backups/a.json"))).reason).toBe("BucketNotFound")
      expect((yield* Effect.flip(store.exists(missing, "backups/a.json"))).reason).toBe("BucketNotFound")
      expect(yield* onDisk(root)).toEqual(["volume"])

      yield* Effect.promise(() => writeFile(join(root, "file"), "x"))
      const notDirectory = yield* Effect.flip(store.list(join(root, "file")))
      expect(notDirectory).toMatchObject({ _tag: "StorageError", reason: "BucketNotFound" })
      expect(notDirectory.message).toContain("is not a directory")
    })
  )

  it.live("an upload is a hidden temporary file until commit, which renames it; abort removes it", () =>
    Effect.gen(function* () {
      const { bucket } = yield* scratch
      yield* store.writeSmall(bucket, "backups/backup.sql.gz", "previous")
      yield* Effect.scoped(
        Effect.gen(function* () {
          const upload = yield* store.upload(bucket, "backups/backup.sql.gz", { contentType: "application/gzip" })
          yield* upload.write(new Uint8Array(2 * MiB).fill(7))
          const files = yield* onDisk(join(bucket, "backups"))
          expect(files).toHaveLength(2)
          expect(files.filter((name) => name !== "backup.sql.gz")[0]).toMatch(temporaryFile)
          const temporary = `backups/${files.find((name) => name !== "backup.sql.gz")}`
          // Readers see the previous object, whole, and nothing of the temporary file.
          expect(decoder.decode(yield* store.read(bucket, "backups/backup.sql.gz"))).toBe("previous")
          expect((yield* store.list(bucket)).map((info) => info.object)).toEqual(["backups/backup.sql.gz"])
          expect(yield* store.exists(bucket, temporary)).toBe(false)
          expect((yield* Effect.flip(store.stat(bucket, temporary)))._tag).toBe("ObjectNotFound")
          expect((yield* Effect.flip(store.read(bucket, temporary)))._tag).toBe("ObjectNotFound")
          expect((yield* upload.commit).size).toBe(2 * MiB)
        })
      )
      expect(yield* onDisk(join(bucket, "backups"))).toEqual(["backup.sql.gz"])
      expect((yield* store.stat(bucket, "backups/backup.sql.gz")).size).toBe(2 * MiB)

      yield* Effect.scoped(
        Effect.gen(function* () {
          const upload = yield* store.upload(bucket, "backups/other.sql.gz", { contentType: "application/gzip" })
          yield* upload.write(new Uint8Array(MiB))
          yield* upload.abort("test")
        })
      )
      const failed = yield* Effect.exit(
        Effect.scoped(
          Effect.gen(function* () {
            const upload = yield* store.upload(bucket, "backups/failed.sql.gz", { contentType: "application/gzip" })
            yield* upload.write(new Uint8Array(MiB))
            return yield* Effect.fail("pg_dump failed")
          })
        )
      )
      expect(failed).toEqual(Exit.fail("pg_dump failed"))
      // No temporary file is left behind.
      expect(yield* onDisk(join(bucket, "backups"))).toEqual(["backup.sql.gz"])
    })
  )

  it.live("a process killed mid-upload leaves only a hidden temporary file, which list ignores", () =>
    Effect.gen(function* () {
      const { bucket } = yield* scratch
      yield* store.writeSmall(bucket, "backups/older.sql.gz", "older")
      const child = spawnSync(
        process.execPath,
        [
          "--conditions=@db-backup-operator/source",
          fileURLToPath(new URL("./fileStoreCrashChild.ts", import.meta.url)),
          bucket,
          "backups/backup.sql.gz"
        ],
        { encoding: "utf8", timeout: 60_000 }
      )
      expect({ signal: child.signal, stderr: child.stderr }).toEqual({ signal: "SIGKILL", stderr: "" })
      const files = yield* onDisk(join(bucket, "backups"))
      expect(files).toHaveLength(2)
      const leftover = files.find((name) => name !== "older.sql.gz") ?? ""
      expect(leftover).toMatch(temporaryFile)
      expect((yield* Effect.promise(() => stat(join(bucket, "backups", leftover)))).size).toBe(3 * MiB)

      expect((yield* store.list(bucket)).map((info) => info.object)).toEqual(["backups/older.sql.gz"])
      expect((yield* store.list(bucket, { prefix: "backups/." })).map((info) => info.object)).toEqual([])
      expect(yield* store.exists(bucket, "backups/backup.sql.gz")).toBe(false)
      // The next run's upload of the same name is not disturbed by the leftover.
      yield* Effect.scoped(
        Effect.gen(function* () {
          const upload = yield* store.upload(bucket, "backups/backup.sql.gz", { contentType: "application/gzip" })
          yield* upload.write(new TextEncoder().encode("complete"))
          yield* upload.commit
        })
      )
      expect(decoder.decode(yield* store.read(bucket, "backups/backup.sql.gz"))).toBe("complete")
      expect((yield* store.list(bucket)).map((info) => info.object)).toEqual([
        "backups/backup.sql.gz",
        "backups/older.sql.gz"
      ])
    })
  )

  it.live("lists in name order, and a limit returns the first names", () =>
    Effect.gen(function* () {
      const { bucket } = yield* scratch
      // `a-c` < `a.txt` < `a/b` < `b` byte-wise, as GCS and S3 list: a directory sorts as `a/`.
      for (const object of ["b", "a/b", "a.txt", "a-c", "a/a/z"]) yield* store.writeSmall(bucket, object, object)
      const all = yield* store.list(bucket)
      expect(all.map((info) => info.object)).toEqual(["a-c", "a.txt", "a/a/z", "a/b", "b"])
      expect(all[2]).toMatchObject({ bucket, object: "a/a/z", size: 5, metadata: {} })
      expect(Number.isNaN(Date.parse(all[2]?.updated ?? ""))).toBe(false)
      expect((yield* store.list(bucket, { limit: 3 })).map((info) => info.object)).toEqual(["a-c", "a.txt", "a/a/z"])
      expect((yield* store.list(bucket, { prefix: "a" })).map((info) => info.object)).toEqual([
        "a-c",
        "a.txt",
        "a/a/z",
        "a/b"
      ])
      expect((yield* store.list(bucket, { prefix: "a/a" })).map((info) => info.object)).toEqual(["a/a/z"])
      expect(yield* store.list(bucket, { prefix: "nothing/here/" })).toEqual([])
      // A directory is no object.
      expect(yield* store.exists(bucket, "a")).toBe(false)
      expect((yield* Effect.flip(store.read(bucket, "a")))._tag).toBe("ObjectNotFound")
    })
  )

  it.live("creates directories and files with no access for others", () =>
    Effect.gen(function* () {
      const { bucket } = yield* scratch
      yield* store.writeSmall(bucket, "backups/ns/a.json", {})
      for (const path of [join(bucket, "backups"), join(bucket, "backups/ns"), join(bucket, "backups/ns/a.json")]) {
        expect((yield* Effect.promise(() => stat(path))).mode & 0o007).toBe(0)
      }
    })
  )

  it.live(
    "a full volume fails with a message saying so and keeps the previous object; a read-only one is AccessDenied",
    (ctx) =>
      Effect.gen(function* () {
        const { root } = yield* scratch
        const volume = join(root, "tmpfs")
        yield* Effect.promise(() => mkdir(volume))
        const mounted = yield* Effect.acquireRelease(
          Effect.sync(() => {
            try {
              execFileSync("mount", ["-t", "tmpfs", "-o", "size=4m", "tmpfs", volume], { stdio: "pipe" })
              return true
            } catch {
              return false
            }
          }),
          (ok) => (ok ? Effect.sync(() => execFileSync("umount", [volume], { stdio: "pipe" })) : Effect.void)
        )
        if (!mounted)
          return yield* Effect.sync(() => ctx.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)"))

        yield* store.writeSmall(volume, "backups/backup.sql.gz", "previous")
        const full = yield* Effect.flip(
          Effect.scoped(
            Effect.gen(function* () {
              const upload = yield* store.upload(volume, "backups/backup.sql.gz", { contentType: "application/gzip" })
              for (let i = 0; i < 8; i++) yield* upload.write(new Uint8Array(MiB).fill(i))
              return yield* upload.commit
            })
          )
        )
        expect(full._tag).toBe("StorageError")
        expect(full.message).toContain(store.url(volume, "backups/backup.sql.gz"))
        expect(full.message).toContain("the volume is full")
        // The space is given back and the previous backup is untouched.
        expect(yield* onDisk(join(volume, "backups"))).toEqual(["backup.sql.gz"])
        expect(decoder.decode(yield* store.read(volume, "backups/backup.sql.gz"))).toBe("previous")
        const small = yield* Effect.flip(store.writeSmall(volume, "backups/big.bin", new Uint8Array(5 * MiB)))
        expect(small.message).toContain("the volume is full")
        expect(yield* onDisk(join(volume, "backups"))).toEqual(["backup.sql.gz"])

        yield* Effect.sync(() => execFileSync("mount", ["-o", "remount,ro", volume], { stdio: "pipe" }))
        const readOnly = yield* Effect.flip(store.writeSmall(volume, "backups/a.json", {}))
        expect(readOnly).toMatchObject({ _tag: "StorageError", reason: "AccessDenied" })
        expect((yield* store.list(volume)).map((info) => info.object)).toEqual(["backups/backup.sql.gz"])
      })
  )
})
