/**
 * What a Dockerfile takes from its build context, read from the Dockerfile
 * itself so the list of inputs to hash never drifts from the list of files an
 * image contains; and the check that an image copies exactly the workspaces
 * its app depends on.
 *
 * @module
 */

/** One instruction, continuation lines joined, comments dropped. */
export interface Instruction {
  readonly keyword: string
  readonly args: string
}

/**
 * Splits a Dockerfile into instructions. A line ending in `\` continues on the
 * next; comment lines are dropped, also inside a continued instruction, as
 * Docker does.
 *
 * @example
 * ```ts
 * instructions("FROM a\nRUN x \\\n  # note\n  && y\n") // [{ keyword: "FROM", args: "a" }, { keyword: "RUN", args: "x && y" }]
 * ```
 */
export const instructions = (text: string): ReadonlyArray<Instruction> => {
  const result: Array<Instruction> = []
  let current = ""
  for (const raw of text.split("\n")) {
    const line = raw.trim()
    if (line.startsWith("#")) continue
    if (line.endsWith("\\")) {
      current += `${line.slice(0, -1).trim()} `
      continue
    }
    current += line
    const whole = current.trim()
    current = ""
    if (whole.length === 0) continue
    const space = whole.search(/\s/u)
    result.push(
      space === -1
        ? { keyword: whole.toUpperCase(), args: "" }
        : { keyword: whole.slice(0, space).toUpperCase(), args: whole.slice(space + 1).trim() }
    )
  }
  return result
}

const normalizeSource = (source: string): string => {
  const cleaned = source.replace(/^(?:\.\/)+/u, "").replace(/\/+$/u, "")
  return cleaned === "" || cleaned === "." ? "." : cleaned
}

/**
 * The build-context paths a Dockerfile's `COPY` and `ADD` instructions read
 * (those with `--from` read another stage or image, not the context), in
 * order, without duplicates. Sources are paths relative to the context root.
 *
 * @example
 * ```ts
 * contextSources("COPY package.json package-lock.json ./\nCOPY --from=build /app /app\n")
 * // ["package.json", "package-lock.json"]
 * ```
 */
export const contextSources = (text: string): ReadonlyArray<string> => {
  const sources: Array<string> = []
  for (const { keyword, args } of instructions(text)) {
    if (keyword !== "COPY" && keyword !== "ADD") continue
    let words: Array<string>
    if (args.startsWith("[")) {
      words = JSON.parse(args) as Array<string>
    } else {
      words = args.split(/\s+/u)
    }
    const flags = words.filter((word) => word.startsWith("--"))
    if (flags.some((flag) => flag.startsWith("--from="))) continue
    const paths = words.filter((word) => !word.startsWith("--"))
    for (const source of paths.slice(0, -1)) {
      const normalized = normalizeSource(source)
      if (!sources.includes(normalized)) sources.push(normalized)
    }
  }
  return sources
}

/** A workspace of the monorepo: its directory and its package.json's name and production dependencies. */
export interface Workspace {
  /** Relative to the repository root, e.g. `packages/kube`. */
  readonly dir: string
  readonly name: string
  readonly dependencies: ReadonlyArray<string>
}

/**
 * The workspaces an app needs at run time: itself and, transitively, every
 * workspace named in `dependencies` (never `devDependencies`, which is where
 * the test tooling is). Sorted by directory.
 *
 * @example
 * ```ts
 * workspaceClosure(workspaces, "apps/runner") // ["apps/runner", "packages/backup-api", "packages/kube", ...]
 * ```
 */
export const workspaceClosure = (workspaces: ReadonlyArray<Workspace>, appDir: string): ReadonlyArray<string> => {
  const byName = new Map(workspaces.map((w) => [w.name, w]))
  const byDir = new Map(workspaces.map((w) => [w.dir, w]))
  const seen = new Set<string>()
  const visit = (workspace: Workspace | undefined) => {
    if (workspace === undefined || seen.has(workspace.dir)) return
    seen.add(workspace.dir)
    for (const dependency of workspace.dependencies) visit(byName.get(dependency))
  }
  visit(byDir.get(appDir))
  return [...seen].sort()
}

/**
 * What every app image's build stage needs besides the workspaces: the
 * manifests `npm ci` installs from, and the bundler that turns the app into
 * the one file the image ships.
 */
export const buildStageFiles: ReadonlyArray<string> = ["package.json", "package-lock.json", "scripts/bundle.ts"]

/**
 * Compares the workspaces a Dockerfile copies (their `package.json`, and their
 * `src`) with the ones the app needs, and describes every difference (and a
 * missing {@link buildStageFiles} entry); empty when they agree. A missing workspace would fail at run time (a module not
 * found); an extra one only bloats the image, but usually means a dependency
 * was dropped without updating the Dockerfile.
 *
 * @example
 * ```ts
 * workspaceMismatches(
 *   ["package.json", "package-lock.json", "scripts/bundle.ts", "packages/kube/package.json", "packages/kube/src"],
 *   ["packages/kube", "apps/runner"]
 * ) // ["missing COPY apps/runner/package.json", "missing COPY apps/runner/src"]
 * ```
 */
export const workspaceMismatches = (
  sources: ReadonlyArray<string>,
  needed: ReadonlyArray<string>
): ReadonlyArray<string> => {
  const problems: Array<string> = []
  for (const required of buildStageFiles) {
    if (!sources.includes(required)) problems.push(`missing COPY ${required}`)
  }
  for (const dir of needed) {
    for (const required of [`${dir}/package.json`, `${dir}/src`]) {
      if (!sources.includes(required) && !sources.includes(dir)) problems.push(`missing COPY ${required}`)
    }
  }
  const copied = new Set(
    sources.flatMap((source) => {
      const match = /^((?:apps|packages)\/[^/]+)(?:\/|$)/u.exec(source)
      return match?.[1] === undefined ? [] : [match[1]]
    })
  )
  for (const dir of [...copied].sort()) {
    if (!needed.includes(dir)) problems.push(`copies ${dir}, which the app does not depend on`)
  }
  return problems
}
