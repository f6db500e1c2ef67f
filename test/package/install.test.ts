import { type ChildProcess, execFile, spawn } from "node:child_process"
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { delimiter, dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { eventually, freePorts, listProcesses, liveGroupMembers } from "@db-backup-operator/testing"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect } from "effect"

// The framework as a user gets it: the three packages are packed into tarballs and
// installed into a fresh project outside this repository (no workspace links;
// everything else comes from the registry), then the quick start of
// packages/operator/README.md is followed word for word: its files are written
// from the README's blocks, its shell blocks run as they stand, and the output it
// shows must appear. Editing the quick start edits this test.

const repoRoot = fileURLToPath(new URL("../../", import.meta.url))
const packageNames = ["kube", "operator", "testing"] as const
const readme = readFileSync(join(repoRoot, "packages/operator/README.md"), "utf8")

/** The README's section under `## title`, up to the next `## ` heading. */
const section = (title: string): string => {
  const start = readme.indexOf(`\n## ${title}\n`)
  if (start < 0) throw new Error(`packages/operator/README.md has no "## ${title}" section`)
  const end = readme.indexOf("\n## ", start + 1)
  return readme.slice(start, end < 0 ? undefined : end)
}

const blocksOf = (text: string): ReadonlyArray<{ readonly lang: string; readonly text: string }> =>
  [...text.matchAll(/^```(\w+)\n([\s\S]*?)^```$/gmu)].map((match) => ({ lang: match[1] ?? "", text: match[2] ?? "" }))

const quickStart = blocksOf(section("Quick start"))
/** Blocks whose first line is a comment naming the file they are (`// src/main.ts`, `# greeting.yaml`). */
const projectFiles = quickStart.flatMap((block) => {
  const path = /^(?:\/\/|#) ([\w./-]+)\n/u.exec(block.text)?.[1]
  return block.lang === "sh" || path === undefined ? [] : [{ path, text: block.text }]
})
const shellBlocks = quickStart.filter((block) => block.lang === "sh").map((block) => block.text.trimEnd())
const expectedOutput = quickStart.find((block) => block.lang === "text")?.text ?? ""

// The two commands that keep running, each in a terminal of its own. Every other
// shell block runs to completion, in order.
const testenvUp = "npx kube-testenv up --dir .testenv"
const operatorRun = "node src/main.ts"

type Env = Readonly<Record<string, string>>

const definedEntries = (env: NodeJS.ProcessEnv): Record<string, string> =>
  Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined))

/**
 * A user's shell: none of the variables `npm run` and Vitest set (this repository's
 * `--conditions` among them), and nothing of this checkout on PATH but the Node
 * that runs this test.
 */
const userEnv = (extra: Env): Env => {
  const env = definedEntries(process.env)
  for (const name of Object.keys(env)) {
    if (/^(npm_|VITEST)/iu.test(name) || ["NODE_OPTIONS", "NODE_ENV", "INIT_CWD", "TEST"].includes(name)) {
      delete env[name]
    }
  }
  const path = (process.env.PATH ?? "").split(delimiter).filter((dir) => dir !== "" && !dir.startsWith(repoRoot))
  // Quieter, and no audit round trip; what gets installed is the same.
  const npm = { npm_config_update_notifier: "false", npm_config_audit: "false", npm_config_fund: "false" }
  return { ...env, ...npm, PATH: [dirname(process.execPath), ...path].join(delimiter), ...extra }
}

interface Ran {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Runs a script with `bash -euo pipefail`, to completion. */
const bash = (script: string, cwd: string, env: Env) =>
  Effect.callback<Ran>((resume) => {
    const child = execFile(
      "bash",
      ["-euo", "pipefail", "-c", script],
      { cwd, env, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1
        resume(Effect.succeed({ code, stdout, stderr }))
      }
    )
    return Effect.sync(() => {
      child.kill("SIGKILL")
    })
  })

/** Like {@link bash}, failing with the output's tail unless the script exits 0. */
const succeeds = (script: string, cwd: string, env: Env) =>
  Effect.flatMap(bash(script, cwd, env), (ran) =>
    ran.code === 0
      ? Effect.succeed(ran.stdout)
      : Effect.fail(new Error(`exit code ${ran.code}:\n$ ${script}\n${`${ran.stdout}${ran.stderr}`.slice(-4000)}`))
  )

interface Background {
  readonly child: ChildProcess
  readonly pgid: number
  readonly state: { output: string; exit: number | string | undefined }
}

const signalGroup = (pgid: number, signal: NodeJS.Signals) => {
  try {
    process.kill(-pgid, signal)
  } catch {
    // already gone
  }
}

/** Ctrl-C in its terminal: SIGTERM to the whole process group, then wait until every member is gone. */
const stop = (background: Background) =>
  Effect.andThen(
    Effect.sync(() => signalGroup(background.pgid, "SIGTERM")),
    eventually(
      `process group ${background.pgid} to exit`,
      Effect.map(liveGroupMembers(background.pgid), (left) => (left.length === 0 ? true : undefined)),
      { timeout: "60 seconds", interval: "200 millis" }
    )
  )

/**
 * A command left running in a terminal of its own (after `prefix`, the session's
 * `export` lines): its own process group, stopped with the scope at the latest.
 */
const inBackground = (prefix: string, command: string, cwd: string, env: Env) =>
  Effect.acquireRelease(
    Effect.sync((): Background => {
      // exec: the group leader is the command itself, so its exit code is the command's.
      const child = spawn("bash", ["-c", `${prefix}exec ${command}`], {
        cwd,
        env,
        detached: true,
        stdio: ["ignore", "pipe", "pipe"]
      })
      const state: Background["state"] = { output: "", exit: undefined }
      const collect = (chunk: Buffer) => {
        state.output += chunk.toString("utf8")
      }
      child.stdout?.on("data", collect)
      child.stderr?.on("data", collect)
      child.on("exit", (code, signal) => {
        state.exit = code ?? signal ?? "unknown"
      })
      return { child, pgid: child.pid ?? 0, state }
    }),
    (background) =>
      stop(background).pipe(Effect.catch(() => Effect.sync(() => signalGroup(background.pgid, "SIGKILL"))))
  )

let workDir = ""
let tarballs = ""
/** `npm pack --json`'s report, one entry per package. */
let packed: ReadonlyArray<{
  readonly name: string
  readonly version: string
  readonly filename: string
  readonly files: ReadonlyArray<{ readonly path: string }>
}> = []

const fromTarball = (filename: string, path: string) =>
  Effect.runPromise(succeeds(`tar -xzOf ${filename} package/${path}`, tarballs, definedEntries(process.env)))

beforeAll(async () => {
  workDir = mkdtempSync(join(tmpdir(), "db-backup-operator-install-"))
  tarballs = join(workDir, "tarballs")
  mkdirSync(tarballs)
  // The README's command with this run's destination; each package's prepack compiles it.
  const pack = `npm pack ${packageNames.map((name) => `-w packages/${name}`).join(" ")} --pack-destination`
  assert.include(section("Installation"), pack, "the README packs the packages as this test does")
  const json = await Effect.runPromise(succeeds(`${pack} ${tarballs} --json`, repoRoot, definedEntries(process.env)))
  packed = JSON.parse(json)
}, 600_000)

afterAll(() => {
  if (workDir !== "") rmSync(workDir, { recursive: true, force: true })
})

describe("the packed packages", () => {
  it("hold compiled ES modules, declarations, source maps, README and licence, and no tests", async () => {
    assert.deepStrictEqual(
      packed.map((p) => p.name),
      packageNames.map((name) => `@db-backup-operator/${name}`)
    )
    const versions = new Map(packed.map((p) => [p.name, p.version]))
    const licence = readFileSync(join(repoRoot, "LICENSE"), "utf8")
    for (const tarball of packed) {
      const files = new Set(tarball.files.map((file) => file.path))
      for (const path of [
        "package.json",
        "README.md",
        "LICENSE",
        "dist/esm/index.js",
        "dist/esm/index.js.map",
        "dist/esm/index.d.ts",
        "dist/esm/index.d.ts.map",
        "src/index.ts"
      ]) {
        assert.isTrue(files.has(path), `${tarball.name} ships ${path}`)
      }
      const unwanted = [...files].filter((path) => /(^|\/)test\/|\.test\.ts$|tsbuildinfo|(^|\/)tsconfig/u.test(path))
      assert.deepStrictEqual(unwanted, [], `${tarball.name} ships no tests and no build state`)
      const manifest = JSON.parse(await fromTarball(tarball.filename, "package.json"))
      assert.isUndefined(manifest.private, `${tarball.name} is publishable`)
      assert.strictEqual(manifest.license, "GPL-3.0-only")
      assert.strictEqual(await fromTarball(tarball.filename, "LICENSE"), licence)
      assert.deepStrictEqual(manifest.exports["."], {
        "@db-backup-operator/source": "./src/index.ts",
        types: "./dist/esm/index.d.ts",
        default: "./dist/esm/index.js"
      })
      // The packages depend on each other at exactly the versions packed with them.
      for (const [dependency, range] of Object.entries(manifest.dependencies as Record<string, string>)) {
        if (dependency.startsWith("@db-backup-operator/")) assert.strictEqual(range, versions.get(dependency))
      }
    }
    const testing = new Set(packed.find((p) => p.name === "@db-backup-operator/testing")?.files.map((f) => f.path))
    for (const path of [
      "bin/kube-testenv.js",
      "dist/esm/cli/main.js",
      "go/kubernetes/go.mod",
      "go/kubernetes/go.sum",
      "go/etcd/go.mod",
      "go/etcd/go.sum"
    ]) {
      assert.isTrue(testing.has(path), `@db-backup-operator/testing ships ${path}`)
    }
  })

  it.live(
    "installed into a new project, the README's quick start type-checks, runs on kube-testenv and writes the status",
    () =>
      Effect.gen(function* () {
        assert.includeMembers(
          projectFiles.map((file) => file.path),
          ["tsconfig.json", "src/main.ts", "greeting.yaml"],
          "the quick start's files"
        )
        assert.include(shellBlocks, testenvUp)
        assert.include(shellBlocks, operatorRun)
        const project = /^mkdir (\S+) && cd \1\n/u.exec(shellBlocks[0] ?? "")?.[1]
        assert.isDefined(project, "the quick start begins with `mkdir <project> && cd <project>`")
        const projectDir = join(workDir, project ?? "")
        const [metricsPort = 0, healthPort = 0] = yield* freePorts(2)
        const env = userEnv({ TARBALLS: tarballs, METRICS_PORT: String(metricsPort), HEALTH_PORT: String(healthPort) })

        // `export` lines hold for the rest of the session, as in a terminal.
        let exports = ""
        let operator: Background | undefined
        for (const [i, block] of shellBlocks.entries()) {
          if (block === testenvUp) {
            const up = yield* inBackground(exports, block, projectDir, env)
            yield* eventually(
              "kube-testenv to print that it is ready",
              Effect.sync(() => {
                if (up.state.exit !== undefined) throw new Error(`kube-testenv exited:\n${up.state.output}`)
                return up.state.output.includes("kube-testenv: ready in") ? true : undefined
              }),
              { timeout: "180 seconds", interval: "250 millis" }
            )
          } else if (block === operatorRun) {
            operator = yield* inBackground(exports, block, projectDir, env)
          } else {
            // The first block makes the project; its files are written before anything else runs there.
            yield* succeeds(`${exports}${block}`, i === 0 ? workDir : projectDir, env)
            if (i === 0) {
              for (const file of projectFiles) {
                mkdirSync(dirname(join(projectDir, file.path)), { recursive: true })
                writeFileSync(join(projectDir, file.path), file.text)
              }
            }
            for (const line of block.split("\n")) if (line.startsWith("export ")) exports += `${line}\n`
          }
        }

        // The last command is what the user looks at: it shows the operator's answer once it has reconciled.
        const lastLine = shellBlocks.at(-1)?.split("\n").at(-1) ?? ""
        const normalize = (text: string) => text.trim().replace(/[ \t]+/gu, " ")
        const shown = yield* eventually(
          `\`${lastLine}\` to show the README's output`,
          Effect.map(bash(`${exports}${lastLine}`, projectDir, env), (ran) =>
            normalize(ran.stdout).includes(normalize(expectedOutput)) ? ran.stdout : undefined
          ),
          { timeout: "90 seconds", interval: "500 millis" }
        ).pipe(
          Effect.catch((error) =>
            Effect.fail(new Error(`${error.message}\noperator output:\n${operator?.state.output ?? "(not started)"}`))
          )
        )
        assert.include(normalize(shown), normalize(expectedOutput))

        // Ctrl-C: the operator stops gracefully (exit 0); kube-testenv's teardown runs with the scope.
        if (operator !== undefined) {
          const { state } = operator
          yield* stop(operator)
          const exit = yield* eventually(
            "the operator to exit",
            Effect.sync(() => state.exit)
          )
          assert.strictEqual(exit, 0, state.output)
        }
      }).pipe(
        Effect.scoped,
        // Once every terminal is stopped, nothing the quick start started is left running.
        Effect.andThen(
          Effect.map(listProcesses, (processes) => {
            const left = processes.filter((p) => p.state !== "Z" && p.cmdline.some((arg) => arg.includes(workDir)))
            assert.deepStrictEqual(
              left.map((p) => p.cmdline.join(" ")),
              [],
              "no process of the quick start outlives it"
            )
          })
        )
      ),
    600_000
  )
})
