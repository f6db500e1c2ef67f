import { Effect, Result } from "effect"
import { isExecutable } from "../process/executable.ts"

/** Image name -> the local command line that plays its entrypoint (`kube-testenv up --image-map IMAGE=COMMAND`). */
export type ImageMap = Readonly<Record<string, string>>

/** `repo:tag@sha256:...` without the digest, then without the tag (a registry port is not a tag). */
const imageCandidates = (image: string): ReadonlyArray<string> => {
  const withoutDigest = image.split("@")[0] ?? image
  const slash = withoutDigest.lastIndexOf("/")
  const colon = withoutDigest.lastIndexOf(":")
  const repository = colon > slash ? withoutDigest.slice(0, colon) : withoutDigest
  return [...new Set([image, withoutDigest, repository])]
}

/**
 * The mapped command line for an image: an exact match first, then the image
 * without its digest, then without its tag, so `runner` also maps `runner:1.2`.
 */
export const mappedCommand = (imageMap: ImageMap, image: string): ReadonlyArray<string> | undefined => {
  for (const candidate of imageCandidates(image)) {
    const command = imageMap[candidate]
    if (command !== undefined) return command.split(/\s+/u).filter((word) => word !== "")
  }
  return undefined
}

/**
 * Expands `$(VAR)` references the way the kubelet does in env values, `command`
 * and `args`: a defined variable is replaced, an undefined one is left as
 * written, and `$$` escapes a `$`.
 *
 * @example
 * ```ts
 * expandReferences("--name=$(POD_NAME) $$(HOME)", { POD_NAME: "job-abc" }) // "--name=job-abc $(HOME)"
 * ```
 */
export const expandReferences = (input: string, env: Readonly<Record<string, string>>): string => {
  let output = ""
  let checkpoint = 0
  for (let cursor = 0; cursor < input.length; cursor++) {
    if (input[cursor] !== "$" || cursor + 1 >= input.length) continue
    output += input.slice(checkpoint, cursor)
    const next = input[cursor + 1]
    if (next === "$") {
      output += "$"
      cursor += 1
    } else if (next === "(") {
      const close = input.indexOf(")", cursor + 2)
      if (close < 0) {
        output += "$("
        cursor += 1
      } else {
        const name = input.slice(cursor + 2, close)
        output += env[name] ?? `$(${name})`
        cursor = close
      }
    } else {
      output += `$${next}`
      cursor += 1
    }
    checkpoint = cursor + 1
  }
  return output + input.slice(checkpoint)
}

/** The parts of a container that decide what runs. */
export interface ContainerCommand {
  readonly name: string
  readonly image: string
  readonly command?: ReadonlyArray<string> | undefined
  readonly args?: ReadonlyArray<string> | undefined
}

/**
 * The argv a container runs, before the executable is looked up. As in
 * Kubernetes, `command` replaces the entrypoint (here: the mapped command
 * line) and `args` follow it; both get `$(VAR)` expansion. Fails with the
 * message a container runtime would give when there is nothing to run.
 */
export const containerArgv = (
  container: ContainerCommand,
  imageMap: ImageMap,
  env: Readonly<Record<string, string>>
): Result.Result<readonly [string, ...Array<string>], string> => {
  const entrypoint =
    container.command !== undefined && container.command.length > 0
      ? container.command.map((word) => expandReferences(word, env))
      : mappedCommand(imageMap, container.image)
  if (entrypoint === undefined) {
    // A real runtime would run the image's own entrypoint; here there is none to run.
    return Result.fail(
      `no command specified: image "${container.image}" has no mapping on this process node and container "${container.name}" sets no command`
    )
  }
  const args = (container.args ?? []).map((word) => expandReferences(word, env))
  const [executable, ...rest] = [...entrypoint, ...args]
  if (executable === undefined || executable === "") return Result.fail("no command specified")
  return Result.succeed([executable, ...rest])
}

/**
 * Finds an executable as a container runtime does: a name with a `/` is used
 * as is (relative to `cwd`), anything else is searched in the container's
 * `PATH`. Fails with runc's wording.
 */
export const lookPath = (
  executable: string,
  options: { readonly path: string; readonly cwd: string }
): Effect.Effect<string, string> =>
  Effect.gen(function* () {
    if (executable.includes("/")) {
      const file = executable.startsWith("/") ? executable : `${options.cwd}/${executable}`
      if (yield* isExecutable(file)) return file
      return yield* Effect.fail(`exec: "${executable}": stat ${executable}: no such file or directory`)
    }
    for (const dir of options.path.split(":")) {
      if (dir === "") continue
      const file = `${dir}/${executable}`
      if (yield* isExecutable(file)) return file
    }
    return yield* Effect.fail(`exec: "${executable}": executable file not found in $PATH`)
  })
