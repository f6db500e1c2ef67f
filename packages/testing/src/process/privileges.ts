import { accessSync, constants } from "node:fs"
import type { ChildProcess } from "effect/process"

/** True when this process runs as root, where some servers (initdb, postgres) refuse to run. */
export const isRoot = (): boolean => typeof process.getuid === "function" && process.getuid() === 0

const setprivPath = ((): string | undefined => {
  for (const candidate of ["/usr/bin/setpriv", "/bin/setpriv"]) {
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {}
  }
  return undefined
})()

/** How a command is wrapped before it is spawned. */
export interface WrapOptions {
  /** Run as this user (with its groups) when we are root; ignored otherwise. */
  readonly user?: string | undefined
  /**
   * Signal the kernel sends the process when its parent dies (Linux `PR_SET_PDEATHSIG`),
   * so a crashed or killed test runner never leaves servers behind.
   */
  readonly parentDeathSignal?: ChildProcess.Signal | undefined
}

/**
 * Prefixes `command` with `setpriv` (util-linux) when a user switch or a
 * parent-death signal is asked for. `setpriv` execs the command, so the pid
 * stays the same. The result is an argument array: no shell is ever involved.
 *
 * @example
 * ```ts
 * declare const dir: string
 * const { command, args } = wrapCommand("initdb", ["-D", dir], { user: "postgres" })
 * ```
 */
export const wrapCommand = (
  command: string,
  args: ReadonlyArray<string>,
  options: WrapOptions = {}
): { readonly command: string; readonly args: ReadonlyArray<string> } => {
  const switchUser = options.user !== undefined && isRoot()
  if (setprivPath === undefined) {
    if (switchUser) return { command: "runuser", args: ["-u", options.user ?? "", "--", command, ...args] }
    return { command, args }
  }
  const prefix: Array<string> = []
  if (options.parentDeathSignal !== undefined) prefix.push(`--pdeathsig=${options.parentDeathSignal}`)
  if (switchUser) prefix.push(`--reuid=${options.user}`, `--regid=${options.user}`, "--init-groups")
  if (prefix.length === 0) return { command, args }
  return { command: setprivPath, args: [...prefix, "--", command, ...args] }
}
