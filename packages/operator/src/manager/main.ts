import { NodeRuntime } from "@effect/platform-node"
import { Cause, Effect, Exit, Layer, Logger, References, type Runtime } from "effect"

const teardown: Runtime.Teardown = (exit, onExit) => {
  // SIGTERM/SIGINT interrupt the program: that is a clean, graceful stop.
  if (Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause)) onExit(0)
  else onExit(1)
}

/**
 * Runs an operator's main program as a process: JSON-line logs at `logLevel`
 * (default Info), graceful shutdown on SIGTERM/SIGINT (exit 0), exit 1 on failure
 * (for example `LeadershipLost`, so the Deployment restarts the replica).
 *
 * @example
 * ```ts
 * declare const widgets: Controller.Controller<never>
 * const KubeLive = KubeClient.layer({ _tag: "Default" })
 * Manager.runMain(Manager.run({ controllers: [widgets] }).pipe(Effect.provide(KubeLive)))
 * ```
 */
export const runMain = <E>(
  program: Effect.Effect<void, E>,
  options?: { readonly logLevel?: "Debug" | "Info" | "Warn" | "Error" }
): void =>
  NodeRuntime.runMain(
    program.pipe(
      Effect.tapCause((cause) => (Cause.hasInterruptsOnly(cause) ? Effect.void : Effect.logError("exiting", cause))),
      Effect.provide(
        Layer.mergeAll(
          Logger.layer([Logger.consoleJson]),
          Layer.succeed(References.MinimumLogLevel, options?.logLevel ?? "Info")
        )
      )
    ),
    { teardown, disableErrorReporting: true }
  )
