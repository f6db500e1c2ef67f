import * as NodeServices from "@effect/platform-node/NodeServices"
import { Effect, Exit, Layer, Logger, Runtime } from "effect"
import { runFromEnv } from "./cli.ts"
import { restoreFromArgs } from "./restore/command.ts"

/**
 * `db-backup-runner`: the program a backup Job runs. Configuration comes from
 * the environment (see `RunnerContract` in `@db-backup-operator/backup-api`);
 * logs are JSON lines on stdout. `db-backup-runner restore <URL> …` restores a
 * backup instead (see `restoreUsage`), in a Job or anywhere else; `verify <URL>`
 * restores it into a scratch database and drops it (see `verifyUsage`).
 */

// The first SIGTERM (the Pod deleted or evicted) or SIGINT asks the run to stop, and the run
// decides what stopping means where it is: before its dump is stored it aborts, after it finishes
// (see `BackupOptions.stopRequested`). A second signal interrupts it outright.
let requestStop: () => void = () => {}
const stopSignal = new Promise<void>((resolve) => {
  requestStop = resolve
})

const stopRequested = Effect.promise(() => stopSignal)
const subcommand = process.argv[2]
const command =
  subcommand === "restore" || subcommand === "verify"
    ? restoreFromArgs(process.argv.slice(3), process.env, { stopRequested, mode: subcommand })
    : runFromEnv(process.env, { stopRequested })
const program = command.pipe(Effect.provide(Layer.mergeAll(NodeServices.layer, Logger.layer([Logger.consoleJson]))))

const runMain = Runtime.makeRunMain(({ fiber, teardown }) => {
  let signals = 0
  const onSignal = () => {
    signals += 1
    if (signals === 1) requestStop()
    else fiber.interruptUnsafe(fiber.id)
  }
  // The handlers stay until the process exits: removed when the run ends, a SIGTERM arriving
  // between the end and the exit (a Pod deleted just then) would kill a finished run with 143.
  fiber.addObserver((exit) => {
    teardown(exit, (code) => process.exit(code))
  })
  process.on("SIGINT", onSignal)
  process.on("SIGTERM", onSignal)
})

runMain(program, {
  disableErrorReporting: true,
  // On success the value is the exit code. Exiting explicitly: idle keep-alive sockets of the storage
  // client must not keep a finished Job's Pod running.
  teardown: (exit, onExit) =>
    Exit.isSuccess(exit) && typeof exit.value === "number"
      ? process.exit(exit.value)
      : Runtime.defaultTeardown(exit, onExit)
})
