import { chmod, lstat, mkdir, readdir, readFile, readlink, symlink, writeFile } from "node:fs/promises"
import { dirname, join } from "node:path"
import { Effect } from "effect"
import { type IgnoreRule, isIgnored } from "./dockerignore.ts"
import { ImageBuildError } from "./ImageBuildError.ts"
import type { HashInput } from "./inputHash.ts"

/** One file of a build context, read once: what is hashed is what is staged. */
export interface ContextFile {
  /** Relative to the context root, `/`-separated. */
  readonly path: string
  readonly kind: "file" | "executable" | "symlink"
  /** The file's bytes, or a symlink's target. */
  readonly content: Uint8Array
}

const fsTry = <A>(what: string, run: () => Promise<A>) =>
  Effect.tryPromise({
    try: run,
    catch: (cause) => new ImageBuildError({ message: `${what}: ${String(cause)}`, cause })
  })

const readEntry = (root: string, path: string): Effect.Effect<ReadonlyArray<ContextFile>, ImageBuildError> =>
  Effect.gen(function* () {
    const full = join(root, path)
    const info = yield* fsTry(`cannot read ${path} (a COPY source of the Dockerfile)`, () => lstat(full))
    if (info.isSymbolicLink()) {
      const target = yield* fsTry(`cannot read the link ${path}`, () => readlink(full))
      return [{ path, kind: "symlink", content: Buffer.from(target) }]
    }
    if (info.isDirectory()) {
      const names = yield* fsTry(`cannot list ${path}`, () => readdir(full))
      const nested = yield* Effect.forEach(names.sort(), (name) =>
        readEntry(root, path === "." ? name : `${path}/${name}`)
      )
      return nested.flat()
    }
    if (!info.isFile()) return []
    const content = yield* fsTry(`cannot read ${path}`, () => readFile(full))
    // Docker keeps the mode bits; of those only "executable" ever differs in this repository.
    return [{ path, kind: (info.mode & 0o111) === 0 ? "file" : "executable", content }]
  })

/**
 * Reads every file under `sources` (files or directories, relative to `root`)
 * that the ignore rules let into the build context, sorted by path, each once.
 *
 * @example
 * ```ts
 * const files = yield* readContext(repo, ["package.json", "apps/runner/src"], parseDockerignore(text))
 * ```
 */
export const readContext = (
  root: string,
  sources: ReadonlyArray<string>,
  rules: ReadonlyArray<IgnoreRule>
): Effect.Effect<ReadonlyArray<ContextFile>, ImageBuildError> =>
  Effect.forEach(sources, (source) => readEntry(root, source)).pipe(
    Effect.map((lists) => {
      const byPath = new Map<string, ContextFile>()
      for (const file of lists.flat()) if (!isIgnored(rules, file.path)) byPath.set(file.path, file)
      return [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
    })
  )

/** The hash inputs of a context: each file's path, kind and bytes. */
export const contextHashInputs = (files: ReadonlyArray<ContextFile>): ReadonlyArray<HashInput> =>
  files.map((file) => [`context ${file.kind} ${file.path}`, file.content] as const)

/**
 * Writes `files` under `dir` (which should be empty): the build context buildah
 * gets, byte for byte what was hashed.
 */
export const stageContext = (dir: string, files: ReadonlyArray<ContextFile>): Effect.Effect<void, ImageBuildError> =>
  Effect.forEach(
    files,
    (file) =>
      fsTry(`cannot stage ${file.path}`, async () => {
        const target = join(dir, file.path)
        await mkdir(dirname(target), { recursive: true })
        if (file.kind === "symlink") {
          await symlink(Buffer.from(file.content).toString(), target)
        } else {
          await writeFile(target, file.content)
          await chmod(target, file.kind === "executable" ? 0o755 : 0o644)
        }
      }),
    { discard: true }
  )
