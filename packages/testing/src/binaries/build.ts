import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { Console, Duration, Effect, Schedule } from "effect"
import type { ChildProcessSpawner } from "effect/process"
import { runProcess } from "../process/run.ts"
import { BinariesError } from "./BinariesError.ts"
import { binCacheDir, entryDir, isComplete } from "./cache.ts"
import { findGo, goVersion } from "./go.ts"
import { withDirLock } from "./lock.ts"
import type { ToolBuild } from "./tools.ts"

const fsTry = <A>(what: string, run: () => Promise<A>) =>
  Effect.tryPromise({ try: run, catch: (cause) => new BinariesError({ message: `${what}: ${String(cause)}`, cause }) })

const say = (line: string) => Console.error(`kube-testenv: ${line}`)

// go.mod must pin the version versions.ts names, or the cache key would lie.
const checkPin = (tool: ToolBuild) =>
  tool.source._tag === "ToolsModule"
    ? Effect.gen(function* () {
        const source = tool.source
        if (source._tag !== "ToolsModule") return
        const goMod = yield* fsTry(`cannot read ${source.dir}/go.mod`, () =>
          readFile(join(source.dir, "go.mod"), "utf8")
        )
        if (!source.pin.test(goMod)) {
          return yield* new BinariesError({
            message: `${source.dir}/go.mod does not pin ${tool.name} ${tool.version}; run \`node packages/testing/scripts/pin-go-tools.ts\``
          })
        }
      })
    : Effect.void

const goCommand = (tool: ToolBuild, outDir: string) => {
  const flags = ["-trimpath", "-ldflags=-s -w"]
  // Static binaries: no C compiler needed, and nothing depends on the host's libc.
  const env = { CGO_ENABLED: "0" }
  return tool.source._tag === "ToolsModule"
    ? { args: ["build", ...flags, "-o", `${outDir}/`, "tool"], cwd: tool.source.dir, env }
    : { args: ["install", ...flags, tool.source.pkg], cwd: outDir, env: { ...env, GOBIN: outDir } }
}

/**
 * Returns the cache directory holding `tool`'s binaries, building them first
 * if needed. Builds go to a temporary directory renamed into place when
 * complete, one at a time across processes (a lock in the cache), with progress
 * lines on stderr.
 *
 * @example
 * ```ts
 * const dir = yield* ensureBuilt(etcdTool) // ~/.cache/db-backup-operator/bin/etcd-v3.6.16-go1.26.8
 * ```
 */
export const ensureBuilt = (
  tool: ToolBuild
): Effect.Effect<string, BinariesError, ChildProcessSpawner.ChildProcessSpawner> =>
  Effect.gen(function* () {
    const go = yield* findGo
    const version = yield* goVersion(go, tool.source._tag === "ToolsModule" ? tool.source.dir : undefined)
    const dir = entryDir(tool.name, tool.version, version)
    if (yield* isComplete(dir, tool.binaries)) return dir

    const cache = binCacheDir()
    yield* fsTry(`cannot create ${cache}`, () => mkdir(cache, { recursive: true }))
    return yield* Effect.scoped(
      Effect.gen(function* () {
        yield* withDirLock(join(cache, ".build.lock"), tool.description)
        if (yield* isComplete(dir, tool.binaries)) return dir // another process built it meanwhile
        yield* checkPin(tool)

        // Left over by an interrupted build: nobody else builds while we hold the lock.
        const prefix = `.tmp-${tool.name}-`
        for (const name of yield* fsTry("cannot list the cache", () => readdir(cache))) {
          if (name.startsWith(prefix))
            yield* fsTry("cannot clean the cache", () => rm(join(cache, name), { recursive: true, force: true }))
        }
        const tmp = join(cache, `${prefix}${tool.version}-${version}-${process.pid}`)
        yield* fsTry(`cannot create ${tmp}`, () => mkdir(tmp, { recursive: true }))
        yield* Effect.addFinalizer(() => Effect.promise(() => rm(tmp, { recursive: true, force: true })))

        const started = Date.now()
        const elapsed = () => Math.round((Date.now() - started) / 1000)
        const command = goCommand(tool, tmp)
        yield* say(
          `building ${tool.description} with ${version} (${go} ${command.args.join(" ")}), this takes a while once`
        )
        yield* Effect.sleep(Duration.seconds(15)).pipe(
          Effect.andThen(Effect.suspend(() => say(`still building ${tool.name} ${tool.version}: ${elapsed()} s`))),
          Effect.repeat(Schedule.forever),
          Effect.forkScoped
        )
        const result = yield* runProcess(go, command.args, {
          cwd: command.cwd,
          env: command.env,
          timeout: Duration.minutes(90)
        }).pipe(Effect.mapError((cause) => new BinariesError({ message: `go failed to run: ${cause.message}`, cause })))
        if (result.exitCode !== 0) {
          return yield* new BinariesError({
            message: `building ${tool.description} failed (go ${command.args.join(" ")}, exit code ${result.exitCode}):\n${result.stderr.split("\n").slice(-40).join("\n")}`
          })
        }
        if (tool.source._tag === "ToolsModule") {
          for (const [from, to] of Object.entries(tool.source.rename)) {
            yield* fsTry(`cannot rename ${from}`, () => rename(join(tmp, from), join(tmp, to)))
          }
        }
        if (!(yield* isComplete(tmp, tool.binaries))) {
          return yield* new BinariesError({ message: `go did not produce ${tool.binaries.join(", ")} in ${tmp}` })
        }
        const manifest = {
          tool: tool.name,
          version: tool.version,
          go: version,
          builtAt: new Date().toISOString(),
          seconds: elapsed()
        }
        yield* fsTry("cannot write the manifest", () =>
          writeFile(join(tmp, "manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`)
        )
        yield* fsTry(`cannot move the build to ${dir}`, async () => {
          await rm(dir, { recursive: true, force: true })
          await rename(tmp, dir)
        })
        yield* say(`built ${tool.name} ${tool.version} in ${elapsed()} s: ${dir}`)
        return dir
      })
    )
  })
