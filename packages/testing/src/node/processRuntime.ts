import { Effect, Result } from "effect"
import { containerArgv, type ImageMap, lookPath } from "./command.ts"
import { startContainerProcess } from "./containerProcess.ts"
import { type ContainerRuntime, StartError } from "./runtime.ts"

/**
 * Containers as local processes: the image is mapped to a local command line
 * (`imageMap`) or the container's `command` runs as is, in the Pod's work
 * directory, with exactly the resolved env (nothing inherited). There is no
 * image to bring `PATH` and `HOME`, so the runtime provides them, and no
 * mount namespace, so volumes are not mounted and the termination message
 * file is found through `TERMINATION_MESSAGE_PATH`.
 *
 * @example
 * ```ts
 * const runtime = processRuntime({ imageMap: { runner: "node main.ts" }, path: process.env.PATH ?? "/usr/bin" })
 * ```
 */
export const processRuntime = (options: { readonly imageMap: ImageMap; readonly path: string }): ContainerRuntime => ({
  name: "process",
  mountsVolumes: false,
  baseEnv: (_pod, workDir) => ({ PATH: options.path, HOME: workDir }),
  pullImage: () => Effect.void,
  start: (start) =>
    Effect.gen(function* () {
      const env: Record<string, string> = { ...start.env, TERMINATION_MESSAGE_PATH: start.messageFile }
      const argv = containerArgv(start.container, options.imageMap, env)
      if (Result.isFailure(argv)) return yield* new StartError({ message: argv.failure })
      const [command, ...args] = argv.success
      const executable = yield* lookPath(command, { path: env.PATH ?? options.path, cwd: start.workDir }).pipe(
        Effect.mapError((message) => new StartError({ message }))
      )
      const proc = yield* startContainerProcess({ executable, args, env, cwd: start.workDir, logFile: start.logFile })
      return {
        containerID: `process://${proc.pid}`,
        imageID: "",
        exited: Effect.map(proc.exited, (exitCode) => ({ exitCode })),
        stop: proc.stop
      }
    })
})
