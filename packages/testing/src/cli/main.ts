import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Cause, Effect, Exit, Runtime } from "effect"
import { Command } from "effect/cli"
import { buildCommand } from "./build.ts"
import { upCommand } from "./up.ts"

const cli = Command.make("kube-testenv").pipe(
  Command.withDescription(
    "A real local test environment: etcd, kube-apiserver, kube-controller-manager, PostgreSQL, fake-gcs-server"
  ),
  Command.withSubcommands([buildCommand, upCommand])
)

NodeRuntime.runMain(Command.run(cli, { version: "0.1.0" }).pipe(Effect.provide(NodeServices.layer)), {
  // SIGINT/SIGTERM interrupt the program; once everything is torn down, that is a clean exit.
  teardown: (exit, onExit) =>
    Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : Runtime.defaultTeardown(exit, onExit)
})
