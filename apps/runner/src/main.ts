import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Effect, Exit, Layer, Logger, Runtime } from "effect"
import { runFromEnv } from "./cli.ts"

/**
 * `db-backup-runner`: the program a backup Job runs. Configuration comes from
 * the environment (see `RunnerContract` in `@db-backup-operator/backup-api`);
 * logs are JSON lines on stdout.
 */
const program = runFromEnv(process.env).pipe(
  Effect.provide(Layer.mergeAll(NodeServices.layer, Logger.layer([Logger.consoleJson])))
)

NodeRuntime.runMain(program, {
  disableErrorReporting: true,
  // On success the value is the exit code. Exiting explicitly: idle keep-alive sockets of the storage
  // client must not keep a finished Job's Pod running.
  teardown: (exit, onExit) =>
    Exit.isSuccess(exit) && typeof exit.value === "number"
      ? process.exit(exit.value)
      : Runtime.defaultTeardown(exit, onExit)
})
