import { createHash } from "node:crypto"
import { readdir, readFile } from "node:fs/promises"
import { join } from "node:path"
import { NodeServices } from "@effect/platform-node"
import { Effect } from "effect"
import { BinariesError } from "./BinariesError.ts"
import { ensureBuilt } from "./build.ts"
import type { ToolBuild } from "./tools.ts"

/** A Go program kept in the repository, built like the test binaries. */
export interface GoModuleBuild {
  /** Cache entry name, e.g. `bench-controller-runtime`. */
  readonly name: string
  /** The module: a go.mod whose `tool` line names the program's package, and its go.sum. */
  readonly dir: string
  /** The binary Go builds: the last element of the tool's package path. */
  readonly binary: string
  /** The dependency whose version, as go.mod requires it, names the entry (e.g. `sigs.k8s.io/controller-runtime`). */
  readonly pinnedBy: string
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/gu, "\\$&")

const requiredVersion = (dir: string, module: string): Effect.Effect<string, BinariesError> =>
  Effect.tryPromise({
    try: () => readFile(join(dir, "go.mod"), "utf8"),
    catch: (cause) => new BinariesError({ message: `cannot read ${dir}/go.mod: ${String(cause)}`, cause })
  }).pipe(
    Effect.flatMap((goMod) => {
      const version = new RegExp(`^\\s*(?:require )?${escapeRegExp(module)} (v\\S+)`, "mu").exec(goMod)?.[1]
      return version === undefined
        ? Effect.fail(new BinariesError({ message: `${dir}/go.mod does not require ${module}` }))
        : Effect.succeed(version)
    })
  )

// The source is ours and changes without a version bump: a digest of go.mod, go.sum and
// every .go file keys the entry, so an edited program is rebuilt, never served stale.
const sourceDigest = (dir: string): Effect.Effect<string, BinariesError> =>
  Effect.tryPromise({
    try: async () => {
      const files = (await readdir(dir, { recursive: true }))
        .filter((file) => file === "go.mod" || file === "go.sum" || file.endsWith(".go"))
        .sort()
      const hash = createHash("sha256")
      for (const file of files)
        hash
          .update(`${file}\0`)
          .update(await readFile(join(dir, file)))
          .update("\0")
      return hash.digest("hex").slice(0, 12)
    },
    catch: (cause) => new BinariesError({ message: `cannot read the Go module in ${dir}: ${String(cause)}`, cause })
  })

/**
 * The path of a repository Go program's binary, built first if needed into the
 * same cache as the test binaries (`<cache>/bin/<name>-<pinned version>-<source digest>-<go version>`),
 * with the same lock and progress lines.
 *
 * @example
 * ```ts
 * const operator = yield* ensureGoModuleBuilt({
 *   name: "bench-controller-runtime",
 *   dir: "test/bench/operator/controller-runtime",
 *   binary: "controller-runtime",
 *   pinnedBy: "sigs.k8s.io/controller-runtime"
 * })
 * ```
 */
export const ensureGoModuleBuilt = (build: GoModuleBuild): Effect.Effect<string, BinariesError> =>
  Effect.gen(function* () {
    const version = yield* requiredVersion(build.dir, build.pinnedBy)
    const digest = yield* sourceDigest(build.dir)
    const tool: ToolBuild = {
      name: build.name,
      version: `${version}-${digest}`,
      binaries: [build.binary],
      description: `${build.name} (${build.pinnedBy} ${version})`,
      source: {
        _tag: "ToolsModule",
        dir: build.dir,
        // Read from go.mod above, so this holds by construction.
        pin: new RegExp(`^\\s*(?:require )?${escapeRegExp(build.pinnedBy)} ${escapeRegExp(version)}\\b`, "mu"),
        rename: {}
      }
    }
    return join(yield* ensureBuilt(tool), build.binary)
  }).pipe(Effect.provide(NodeServices.layer))
