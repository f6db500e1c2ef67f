import { randomBytes } from "node:crypto"
import type { Dirent, Stats } from "node:fs"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { Effect, Layer, type Scope, Stream } from "effect"
import {
  type JsonValue,
  type ListOptions,
  type ObjectInfo,
  ObjectStore,
  type Upload,
  type UploadState,
  uploadOf,
  type WriteOptions
} from "./ObjectStore.ts"
import {
  describe,
  ObjectNotFound,
  type ObjectTarget,
  type StorageError,
  type StorageFailure,
  type StorageOperation,
  storageError
} from "./StorageError.ts"

/**
 * A directory behind {@link ObjectStore}: a PersistentVolumeClaim mounted in
 * the backup Pod (`/var/lib/db-backup/volume`), or any local filesystem.
 *
 * - A bucket is an absolute directory path (the mount, or a directory under
 *   it) that must exist: it is never created, so a volume that is not mounted
 *   fails with `BucketNotFound` instead of filling the container's disk.
 *   Directories for object names (`backups/<ns>/<name>/…`) are created.
 * - Objects are regular files; names are relative paths with `/`. A name that
 *   would leave the bucket (`..`, absolute, NUL) is refused.
 * - Writes go to a hidden temporary file next to the object
 *   (`.<name>.upload-<random>`), which is fsynced and renamed onto the name
 *   (then the directory is fsynced): readers see the old object or the whole
 *   new one, never a part. `list`, `exists`, `stat` and `read` ignore
 *   temporary files, which a process killed mid-upload may leave behind.
 * - Content types and user metadata are not kept (`ObjectInfo.metadata` is
 *   `{}`), and `updated` is the file's modification time.
 * - `remove` deletes the file and leaves its (maybe now empty) directories.
 * - Errors: a missing bucket directory is `BucketNotFound` (also for
 *   `exists` and `remove`), permissions and a read-only volume are
 *   `AccessDenied`, and a full volume's message says so.
 */
export interface FileOptions {
  /** Mode of directories created for object names, before the umask (default `0o750`). */
  readonly directoryMode?: number | undefined
  /** Mode of object files, before the umask (default `0o640`). */
  readonly fileMode?: number | undefined
}

/** Bytes an upload writes between two flushes to the volume (see `upload`). */
const syncEveryBytes = 32 * 1024 * 1024

/** Bytes per read of {@link ObjectStore} `readStream`: large reads keep verifying a backup fast. */
const readChunkBytes = 1024 * 1024

/** What a temporary file is named: `.<name>.upload-<16 hex digits>`. */
const temporaryName = /^\..+\.upload-[0-9a-f]{16}$/u

/** Control characters (a NUL, a newline) percent-encoded, so a URL in a message stays one printable line. */
const printable = (text: string): string =>
  // biome-ignore lint/suspicious/noControlCharactersInRegex: finding them is the point
  text.replace(/[\u0000-\u001f\u007f]/gu, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, "0").toUpperCase()}`)

/**
 * The file URL of an object: `file://` and the absolute path, as is (only
 * control characters are percent-encoded).
 *
 * @example
 * ```ts
 * url("/var/lib/db-backup/volume", "backups/ns/db/a.sql.gz")
 * // "file:///var/lib/db-backup/volume/backups/ns/db/a.sql.gz"
 * ```
 */
export const url = (bucket: string, object: string): string => {
  const dir = path.resolve(bucket)
  return printable(`file://${dir === "/" ? "" : dir}/${object}`)
}

const targetOf = (bucket: string, object: string): ObjectTarget => ({ bucket, object, url: url(bucket, object) })

const codeOf = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null && typeof (error as { code?: unknown }).code === "string"
    ? (error as { code: string }).code
    : undefined

/**
 * A filesystem error as a store-neutral one: permissions (and a read-only
 * volume) are `AccessDenied`; a full volume says so.
 */
const fileError = (
  operation: StorageOperation,
  target: ObjectTarget,
  error: unknown,
  reason?: StorageFailure
): StorageError => {
  switch (codeOf(error)) {
    case "EACCES":
    case "EPERM":
    case "EROFS":
      return storageError(operation, target, error, reason ?? "AccessDenied")
    case "ENOSPC":
    case "EDQUOT":
      return storageError(
        operation,
        target,
        new Error(`the volume is full (${describe(error)})`, { cause: error }),
        reason
      )
    default:
      return storageError(operation, target, error, reason)
  }
}

const refused = (operation: StorageOperation, target: ObjectTarget, why: string): StorageError =>
  storageError(operation, target, new Error(why))

const isMissing = (error: unknown): boolean => {
  const code = codeOf(error)
  return code === "ENOENT" || code === "ENOTDIR"
}

/** Why an object name cannot be stored under a bucket, if it cannot. */
const invalidName = (object: string): string | undefined => {
  if (object === "") return "the object name is empty"
  if (object.includes("\0")) return `the object name ${JSON.stringify(object)} contains a NUL character`
  if (object.startsWith("/")) return `the object name ${JSON.stringify(object)} is absolute`
  const segments = object.split("/")
  if (segments.some((segment) => segment === "." || segment === "..")) {
    return `the object name ${JSON.stringify(object)} would leave the bucket`
  }
  if (segments.some((segment) => segment === "")) {
    return `the object name ${JSON.stringify(object)} has an empty path segment`
  }
  return undefined
}

/** Whether an object name is that of a temporary file (hidden, so never an object). */
const isTemporary = (object: string): boolean => temporaryName.test(object.slice(object.lastIndexOf("/") + 1))

/** The bucket's directory, or why a bucket name cannot be one. */
const bucketDir = (bucket: string): string | { readonly refused: string } =>
  bucket.includes("\0")
    ? { refused: `the bucket ${JSON.stringify(bucket)} contains a NUL character` }
    : path.isAbsolute(bucket)
      ? path.resolve(bucket)
      : { refused: `the bucket ${JSON.stringify(bucket)} is not an absolute directory path` }

interface Located {
  readonly target: ObjectTarget
  readonly dir: string
  /** Absolute path of the object's file. */
  readonly file: string
}

/** A name for a temporary file next to `file`, hidden from listings. */
const temporaryFor = (file: string): string =>
  path.join(path.dirname(file), `.${path.basename(file)}.upload-${randomBytes(8).toString("hex")}`)

const infoOf = (bucket: string, object: string, stats: Stats): ObjectInfo => ({
  bucket,
  object,
  size: stats.size,
  metadata: {},
  updated: stats.mtime.toISOString()
})

/**
 * Fsyncs a directory so a rename in it survives a crash. Filesystems that
 * cannot fsync a directory (some network filesystems) are accepted as they are.
 */
const syncDirectory = async (dir: string): Promise<void> => {
  const handle = await fs.open(dir, "r")
  try {
    await handle.sync()
  } catch (error) {
    const code = codeOf(error)
    if (code !== "EINVAL" && code !== "ENOTSUP" && code !== "EBADF" && code !== "EISDIR") throw error
  } finally {
    await handle.close()
  }
}

/** Writes all of `bytes` (a write may take only part of it). */
const writeAll = async (handle: fs.FileHandle, bytes: Uint8Array): Promise<void> => {
  for (let offset = 0; offset < bytes.byteLength; ) {
    const { bytesWritten } = await handle.write(bytes, offset, bytes.byteLength - offset)
    if (bytesWritten <= 0) throw new Error("the file accepted no bytes")
    offset += bytesWritten
  }
}

/** Removes a file, if it is there. */
const unlinkQuietly = (file: string): Promise<void> => fs.unlink(file).catch(() => undefined)

/** Where an upload is in its life; only an `open` upload can be written or committed. */

/**
 * Builds a filesystem-backed {@link ObjectStore}.
 *
 * @example
 * ```ts
 * const store = FileObjectStore.make()
 * const program = Effect.gen(function* () {
 *   yield* store.writeSmall("/var/lib/db-backup/volume", "backups/ns/a.json", { ok: true })
 *   return yield* store.list("/var/lib/db-backup/volume", { prefix: "backups/ns/" })
 * })
 * ```
 */
export const make = (options: FileOptions = {}): ObjectStore["Service"] => {
  const directoryMode = options.directoryMode ?? 0o750
  const fileMode = options.fileMode ?? 0o640

  /** The paths of an object, or a StorageError for a name or bucket that cannot be one. */
  const locate = (operation: StorageOperation, bucket: string, object: string): Effect.Effect<Located, StorageError> =>
    Effect.suspend(() => {
      const target = targetOf(bucket, object)
      const dir = bucketDir(bucket)
      if (typeof dir !== "string") return Effect.fail(refused(operation, target, dir.refused))
      const invalid = invalidName(object)
      if (invalid !== undefined) return Effect.fail(refused(operation, target, invalid))
      return Effect.succeed({ target, dir, file: path.join(dir, ...object.split("/")) })
    })

  /** {@link locate} for a write: a temporary file's name cannot be written either. */
  const locateForWrite = (
    operation: StorageOperation,
    bucket: string,
    object: string
  ): Effect.Effect<Located, StorageError> =>
    isTemporary(object)
      ? Effect.fail(
          refused(
            operation,
            targetOf(bucket, object),
            `the object name ${JSON.stringify(object)} is reserved for temporary files`
          )
        )
      : locate(operation, bucket, object)

  /** Fails unless the bucket's directory exists (it is never created). */
  const checkBucket = (
    operation: StorageOperation,
    target: ObjectTarget,
    dir: string
  ): Effect.Effect<void, StorageError> =>
    Effect.tryPromise({
      try: () => fs.stat(dir),
      catch: (error) => fileError(operation, target, error, isMissing(error) ? "BucketNotFound" : undefined)
    }).pipe(
      Effect.flatMap((stats) =>
        stats.isDirectory()
          ? Effect.void
          : Effect.fail(storageError(operation, target, new Error(`${dir} is not a directory`), "BucketNotFound"))
      )
    )

  /** An object that is not there: `BucketNotFound` if its bucket is not there either, else ObjectNotFound. */
  const notFound = (
    operation: StorageOperation,
    located: Located
  ): Effect.Effect<never, StorageError | ObjectNotFound> =>
    checkBucket(operation, located.target, located.dir).pipe(
      Effect.andThen(Effect.fail(ObjectNotFound.of(located.target)))
    )

  /**
   * Checks the bucket, then creates the directories of the object's name one
   * by one below it (not `recursive`, which would recreate a bucket that
   * vanished meanwhile, e.g. an unmounted volume).
   */
  const prepare = (operation: StorageOperation, located: Located): Effect.Effect<void, StorageError> =>
    checkBucket(operation, located.target, located.dir).pipe(
      Effect.andThen(
        Effect.tryPromise({
          try: async () => {
            const segments = located.target.object.split("/").slice(0, -1)
            for (let depth = 1; depth <= segments.length; depth++) {
              await fs
                .mkdir(path.join(located.dir, ...segments.slice(0, depth)), { mode: directoryMode })
                .catch((error: unknown) => {
                  if (codeOf(error) !== "EEXIST") throw error
                })
            }
          },
          catch: (error) =>
            fileError(operation, located.target, error, codeOf(error) === "ENOENT" ? "BucketNotFound" : undefined)
        })
      )
    )

  /** Puts a finished temporary file in place: rename onto the name, fsync the directory, stat. */
  const publish = async (temporary: string, file: string): Promise<Stats> => {
    await fs.rename(temporary, file)
    try {
      await syncDirectory(path.dirname(file))
    } catch (error) {
      // The rename may not survive a crash: report the failure and leave nothing behind.
      await unlinkQuietly(file)
      throw error
    }
    return fs.stat(file)
  }

  const upload = (
    bucket: string,
    object: string,
    _writeOptions: WriteOptions
  ): Effect.Effect<Upload, StorageError, Scope.Scope> =>
    Effect.gen(function* () {
      const located = yield* locateForWrite("upload", bucket, object)
      const { target, file } = located
      yield* prepare("upload", located)
      const temporary = temporaryFor(file)
      let state: UploadState = "open"
      let bytes = 0
      let closed = false
      const close = (handle: fs.FileHandle): Promise<void> => {
        if (closed) return Promise.resolve()
        closed = true
        return handle.close()
      }
      const discard = (handle: fs.FileHandle): Promise<void> =>
        close(handle)
          .catch(() => undefined)
          .then(() => unlinkQuietly(temporary))
      const abortWith = (handle: fs.FileHandle): Effect.Effect<void> =>
        Effect.suspend(() => {
          if (state === "committed" || state === "aborted") return Effect.void
          state = "aborted"
          return Effect.promise(() => discard(handle))
        })
      // Closing the Scope before a successful commit (a failure, an interruption) aborts.
      const handle = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () => fs.open(temporary, "wx", fileMode),
          catch: (error) => fileError("upload", target, error)
        }),
        abortWith
      )
      const notOpen = () => refused("upload", target, `the upload is already ${state}`)

      // Written data is flushed to the volume as the upload goes (one flush at a time, not awaited by
      // writes), so the commit's fsync has only the last bytes left: the whole file at the end took
      // 0.2 s per 280 MB on a VM disk, at the end of every backup.
      let unsynced = 0
      let syncing: Promise<void> | undefined
      let syncFailure: unknown
      const syncInBackground = () => {
        unsynced = 0
        syncing = handle
          .datasync()
          .catch((error: unknown) => {
            syncFailure ??= error
          })
          .finally(() => {
            syncing = undefined
          })
      }

      // Each write is awaited (backpressure) and never abandoned midway, so an abort never races a write.
      const write = (chunk: Uint8Array): Effect.Effect<void, StorageError> =>
        Effect.suspend(() => {
          if (state !== "open") return Effect.fail(notOpen())
          if (syncFailure !== undefined) return Effect.fail(fileError("upload", target, syncFailure))
          return Effect.tryPromise({
            try: () => writeAll(handle, chunk),
            catch: (error) => fileError("upload", target, error)
          }).pipe(
            Effect.tap(() =>
              Effect.sync(() => {
                bytes += chunk.byteLength
                unsynced += chunk.byteLength
                if (unsynced >= syncEveryBytes && syncing === undefined) syncInBackground()
              })
            ),
            Effect.uninterruptible
          )
        })

      // Uninterruptible: a commit stopped halfway could leave a renamed but unsynced file.
      const commit: Effect.Effect<ObjectInfo, StorageError> = Effect.suspend(() => {
        if (state !== "open") return Effect.fail(notOpen())
        state = "committing"
        return Effect.tryPromise({
          try: async () => {
            await syncing
            if (syncFailure !== undefined) throw syncFailure
            await handle.sync()
            await close(handle)
            return publish(temporary, file)
          },
          catch: (error) => fileError("upload", target, error)
        }).pipe(
          Effect.tap(() =>
            Effect.sync(() => {
              state = "committed"
            })
          ),
          Effect.tapError(() =>
            Effect.promise(() => {
              state = "aborted"
              return discard(handle)
            })
          ),
          Effect.map((stats) => infoOf(bucket, object, stats)),
          Effect.uninterruptible
        )
      })

      return uploadOf({
        bucket,
        object,
        write,
        bytesWritten: Effect.sync(() => bytes),
        commit,
        abort: (_reason: string) => abortWith(handle)
      })
    })

  const writeSmall = (
    bucket: string,
    object: string,
    data: Uint8Array | string | JsonValue,
    _writeOptions?: Partial<WriteOptions>
  ): Effect.Effect<ObjectInfo, StorageError> =>
    Effect.gen(function* () {
      const located = yield* locateForWrite("write", bucket, object)
      yield* prepare("write", located)
      const body =
        data instanceof Uint8Array ? data : Buffer.from(typeof data === "string" ? data : JSON.stringify(data), "utf8")
      const temporary = temporaryFor(located.file)
      const stats = yield* Effect.tryPromise({
        try: async () => {
          const handle = await fs.open(temporary, "wx", fileMode)
          try {
            await writeAll(handle, body)
            await handle.sync()
          } finally {
            await handle.close()
          }
          return publish(temporary, located.file)
        },
        catch: (error) => fileError("write", located.target, error)
      }).pipe(
        Effect.tapError(() => Effect.promise(() => unlinkQuietly(temporary))),
        Effect.uninterruptible
      )
      return infoOf(bucket, object, stats)
    })

  /**
   * The object's file stats, or ObjectNotFound (a temporary file's name, a
   * directory, anything but a regular file).
   */
  const statFile = (
    operation: StorageOperation,
    bucket: string,
    object: string
  ): Effect.Effect<{ readonly located: Located; readonly stats: Stats }, StorageError | ObjectNotFound> =>
    Effect.gen(function* () {
      const located = yield* locate(operation, bucket, object)
      // A temporary file is no object (yet): as if it were not there.
      if (isTemporary(object)) return yield* Effect.fail(ObjectNotFound.of(located.target))
      const stats = yield* Effect.tryPromise({
        try: () => fs.stat(located.file),
        catch: (error) => error
      }).pipe(
        Effect.catch((error) =>
          isMissing(error) ? notFound(operation, located) : Effect.fail(fileError(operation, located.target, error))
        )
      )
      if (!stats.isFile()) return yield* Effect.fail(ObjectNotFound.of(located.target))
      return { located, stats }
    })

  const stat = (bucket: string, object: string) =>
    statFile("stat", bucket, object).pipe(Effect.map(({ stats }) => infoOf(bucket, object, stats)))

  const exists = (bucket: string, object: string): Effect.Effect<boolean, StorageError> =>
    statFile("exists", bucket, object).pipe(
      Effect.as(true),
      Effect.catchTag("ObjectNotFound", () => Effect.succeed(false))
    )

  const read = (bucket: string, object: string): Effect.Effect<Uint8Array, StorageError | ObjectNotFound> =>
    statFile("read", bucket, object).pipe(
      Effect.flatMap(({ located }) =>
        Effect.tryPromise({ try: () => fs.readFile(located.file), catch: (error) => error }).pipe(
          Effect.catch((error) =>
            isMissing(error) ? notFound("read", located) : Effect.fail(fileError("read", located.target, error))
          )
        )
      ),
      Effect.map((contents) => new Uint8Array(contents.buffer, contents.byteOffset, contents.byteLength))
    )

  const readStream = (bucket: string, object: string): Stream.Stream<Uint8Array, StorageError | ObjectNotFound> =>
    Stream.unwrap(
      Effect.gen(function* () {
        const { located } = yield* statFile("read", bucket, object)
        const handle = yield* Effect.acquireRelease(
          Effect.tryPromise({ try: () => fs.open(located.file, "r"), catch: (error) => error }).pipe(
            Effect.catch((error) =>
              isMissing(error) ? notFound("read", located) : Effect.fail(fileError("read", located.target, error))
            )
          ),
          (opened) => Effect.promise(() => opened.close().catch(() => undefined))
        )
        return Stream.fromAsyncIterable(
          handle.createReadStream({ autoClose: false, highWaterMark: readChunkBytes }) as AsyncIterable<Uint8Array>,
          (error) => fileError("read", located.target, error)
        )
      })
    )

  /**
   * Object names under `dir` (relative to the bucket as `prefix`), in name
   * order, depth first, stopping once `limit` were found: entries sort as
   * their full names do (a directory `a` as `a/`, after `a.txt`).
   */
  const walk = async (
    dir: string,
    relative: string,
    accept: (object: string) => boolean,
    found: Array<{ readonly object: string; readonly file: string }>,
    limit: number
  ): Promise<void> => {
    let entries: Array<Dirent>
    try {
      entries = await fs.readdir(dir, { withFileTypes: true })
    } catch (error) {
      if (isMissing(error)) return // removed meanwhile
      throw error
    }
    const keyed = entries
      .filter((entry) => entry.isDirectory() || (entry.isFile() && !temporaryName.test(entry.name)))
      .map((entry) => ({ entry, key: entry.isDirectory() ? `${entry.name}/` : entry.name }))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    for (const { entry, key } of keyed) {
      if (found.length >= limit) return
      const name = `${relative}${key}`
      if (entry.isDirectory()) {
        // The walk starts at the prefix's directory part, so the rest of the prefix has no `/`:
        // a directory can hold a match only if its own name (with `/`) matches.
        if (accept(name)) await walk(path.join(dir, entry.name), name, accept, found, limit)
      } else if (accept(name)) {
        found.push({ object: name, file: path.join(dir, entry.name) })
      }
    }
  }

  const list = (bucket: string, listOptions?: ListOptions): Effect.Effect<ReadonlyArray<ObjectInfo>, StorageError> =>
    Effect.gen(function* () {
      const prefix = listOptions?.prefix ?? ""
      const target = targetOf(bucket, prefix)
      const dir = bucketDir(bucket)
      if (typeof dir !== "string") return yield* Effect.fail(refused("list", target, dir.refused))
      if (prefix.includes("\0"))
        return yield* Effect.fail(refused("list", target, "the prefix contains a NUL character"))
      // Start at the deepest directory the prefix names in full (`a/b/c` → `a/b/`).
      const directoryPart = prefix.slice(0, prefix.lastIndexOf("/") + 1)
      const segments = directoryPart === "" ? [] : directoryPart.slice(0, -1).split("/")
      if (prefix.startsWith("/") || segments.some((s) => s === "" || s === "." || s === "..")) {
        return yield* Effect.fail(
          refused("list", target, `the prefix ${JSON.stringify(prefix)} would leave the bucket`)
        )
      }
      yield* checkBucket("list", target, dir)
      const limit = listOptions?.limit ?? Number.POSITIVE_INFINITY
      return yield* Effect.tryPromise({
        try: async () => {
          const found: Array<{ readonly object: string; readonly file: string }> = []
          await walk(path.join(dir, ...segments), directoryPart, (name) => name.startsWith(prefix), found, limit)
          const infos: Array<ObjectInfo> = []
          for (const { object, file } of found) {
            try {
              infos.push(infoOf(bucket, object, await fs.stat(file)))
            } catch (error) {
              if (!isMissing(error)) throw error // removed meanwhile
            }
          }
          return infos
        },
        catch: (error) => fileError("list", target, error)
      })
    })

  const remove = (bucket: string, object: string): Effect.Effect<void, StorageError> =>
    Effect.gen(function* () {
      const located = yield* locate("delete", bucket, object)
      yield* Effect.tryPromise({ try: () => fs.unlink(located.file), catch: (error) => error }).pipe(
        Effect.catch((error) => {
          const code = codeOf(error)
          // Missing (or a directory, which is no object): nothing to delete, if the bucket is there.
          return isMissing(error) || code === "EISDIR"
            ? checkBucket("delete", located.target, located.dir)
            : Effect.fail(fileError("delete", located.target, error))
        })
      )
    })

  return ObjectStore.of({ url, upload, writeSmall, read, readStream, exists, stat, list, remove })
}

/**
 * The filesystem {@link ObjectStore} as a Layer.
 *
 * @example
 * ```ts
 * declare const program: Effect.Effect<void, never, ObjectStore>
 * program.pipe(Effect.provide(FileObjectStore.layer({ directoryMode: 0o750 })))
 * ```
 */
export const layer = (options: FileOptions = {}): Layer.Layer<ObjectStore> =>
  Layer.sync(ObjectStore, () => make(options))
