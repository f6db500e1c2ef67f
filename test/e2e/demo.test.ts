import { type ChildProcess, execFile, spawn } from "node:child_process"
import { listProcesses, type ProcessInfo } from "@db-backup-operator/testing"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { files } from "../stack/localStack.ts"
import { eventually } from "./support.ts"

/** Every process below `pid` (children, grandchildren, ...), whatever their process group. */
const descendantsOf = (pid: number, processes: ReadonlyArray<ProcessInfo>): ReadonlyArray<ProcessInfo> => {
  const below = new Set([pid])
  let grew = true
  while (grew) {
    grew = false
    for (const process of processes) {
      if (!below.has(process.pid) && below.has(process.ppid)) {
        below.add(process.pid)
        grew = true
      }
    }
  }
  return processes.filter((process) => process.pid !== pid && below.has(process.pid))
}

const commandOf = (process: ProcessInfo) => process.cmdline.join(" ")

/**
 * The demo in its own process group (like a terminal's foreground job): by
 * default the script `npm start` runs, or the given command line.
 */
const startDemo = (command: ReadonlyArray<string> = [process.execPath, `${files.root}test/stack/demo.ts`]) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const [executable = "", ...args] = command
      const child = spawn(executable, args, {
        cwd: files.root,
        detached: true,
        stdio: ["ignore", "pipe", "pipe"]
      })
      const state = { output: "", exit: undefined as { code: number | null; signal: string | null } | undefined }
      child.stdout.on("data", (chunk: Buffer) => {
        state.output += chunk.toString("utf8")
      })
      child.stderr.on("data", (chunk: Buffer) => {
        state.output += chunk.toString("utf8")
      })
      const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
        child.on("exit", (code, signal) => {
          state.exit = { code, signal }
          resolve(state.exit)
        })
      )
      return { child, state, exited }
    }),
    // If the test fails half-way, nothing may outlive it.
    ({ child, state }) => Effect.sync(() => (state.exit === undefined ? killGroup(child) : undefined))
  )

const killGroup = (child: ChildProcess) => {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL")
  } catch {
    // already gone
  }
}

const run = (command: string, args: ReadonlyArray<string>) =>
  Effect.promise(
    () =>
      new Promise<string>((resolve, reject) =>
        execFile(command, args, (error, stdout, stderr) => (error === null ? resolve(stdout) : reject(stderr)))
      )
  )

describe("npm start", () => {
  it.live(
    "brings everything up, shows the first backup succeed, and Ctrl-C stops it all (exit 0, no process left)",
    () =>
      Effect.gen(function* () {
        const demo = yield* startDemo()
        const pid = demo.child.pid ?? 0
        yield* eventually(
          "the demo's 'backup succeeded' line",
          Effect.sync(() => {
            if (demo.state.exit !== undefined)
              throw new Error(`the demo exited (${JSON.stringify(demo.state.exit)}):\n${demo.state.output}`)
            return demo.state.output.includes("demo: backup succeeded") ? true : undefined
          }),
          // It builds nothing, but starts a whole control plane, PostgreSQL and an emulator:
          // on two loaded cores that has taken over 90 s.
          "180 seconds"
        ).pipe(
          Effect.mapError(
            (error) => new Error(`${error.message}; the demo printed:\n${demo.state.output.slice(-4000)}`)
          )
        )
        const output = demo.state.output
        assert.match(
          output,
          /location: gs:\/\/operator-db-backups-bucket\/backups\/backup-job-namespace\/database-backup\//u
        )
        assert.match(output, /size: +\d+ bytes/u)
        assert.match(output, /sha256: +[0-9a-f]{64}/u)

        // The printed watch command works as printed (without -w, which would not return).
        const watch = /kubectl --kubeconfig (\S+) get backupdatabaseschema -n backup-job-namespace -w/u.exec(output)
        assert.isNotNull(watch, output)
        const listed = yield* run("kubectl", [
          "--kubeconfig",
          watch?.[1] ?? "",
          "get",
          "backupdatabaseschema",
          "-n",
          "backup-job-namespace"
        ])
        assert.match(listed, /database-backup\s+Success/u)

        // Everything it started is below it: control plane, PostgreSQL, GCS emulator, the operator.
        const tree = descendantsOf(pid, yield* listProcesses)
        for (const part of ["etcd", "kube-apiserver", "kube-controller-manager", "postgres", "fake-gcs-server"]) {
          assert.isTrue(
            tree.some((p) => commandOf(p).includes(part)),
            `${part} runs under the demo: ${tree.map(commandOf).join("\n")}`
          )
        }
        assert.isTrue(
          tree.some((p) => commandOf(p).includes("db-backup-operator.js")),
          "the operator runs"
        )

        // Ctrl-C: SIGINT to the whole foreground process group.
        process.kill(-pid, "SIGINT")
        const exit = yield* Effect.promise(() => demo.exited).pipe(Effect.timeout("30 seconds"))
        assert.deepStrictEqual(exit, { code: 0, signal: null }, demo.state.output)
        assert.include(demo.state.output, "demo: stopped; nothing is left running")
        // Same pid and same command line: a pid reused meanwhile by another process does not count.
        const left = (yield* listProcesses).filter(
          (p) =>
            p.state !== "Z" &&
            (p.pid === pid || tree.some((child) => child.pid === p.pid && commandOf(child) === commandOf(p)))
        )
        assert.deepStrictEqual(left.map(commandOf), [], "no process outlives the demo")
      }),
    { timeout: 150_000 }
  )

  it.live(
    "SIGTERM to npm (what timeout, an IDE's stop button or a CI cancel send) stops everything it started",
    () =>
      Effect.gen(function* () {
        // npm exits on SIGTERM without passing it on: the demo must notice it lost its parent.
        const demo = yield* startDemo(["npm", "start", "--silent"])
        const npm = demo.child.pid ?? 0
        yield* eventually(
          "the demo's 'everything is up' line",
          Effect.sync(() => {
            if (demo.state.exit !== undefined)
              throw new Error(`npm start exited (${JSON.stringify(demo.state.exit)}):\n${demo.state.output}`)
            return demo.state.output.includes("everything is up") ? true : undefined
          }),
          "90 seconds"
        )
        const tree = descendantsOf(npm, yield* listProcesses)
        assert.isTrue(
          tree.some((p) => commandOf(p).includes("kube-apiserver")),
          tree.map(commandOf).join("\n")
        )
        process.kill(npm, "SIGTERM")
        const alive = (processes: ReadonlyArray<ProcessInfo>) =>
          processes.filter(
            (p) => p.state !== "Z" && tree.some((child) => child.pid === p.pid && commandOf(child) === commandOf(p))
          )
        yield* eventually(
          "every process npm start started to exit",
          Effect.map(listProcesses, (processes) => (alive(processes).length === 0 ? true : undefined)),
          "60 seconds"
        )
        assert.include(demo.state.output, "demo: parent process exited; stopping")
      }),
    { timeout: 180_000 }
  )
})
