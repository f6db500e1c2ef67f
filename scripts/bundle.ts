/**
 * Bundles a deployable (the operator, the runner) into one tree-shaken ESM
 * file, the way its image ships it: only that file and the `node` binary, no
 * `node_modules`, no TypeScript to strip at start-up.
 *
 *   node scripts/bundle.ts operator runner [--outdir DIR] [--metafile]
 *   node scripts/bundle.ts --entry test/bench/operator/main.ts --outfile /tmp/bench-operator.js
 *
 * An app `apps/NAME` is bundled from `apps/NAME/src/main.ts` (what its bin
 * runs) to `DIR/apps/NAME/<its package.json bin>` (default DIR: `dist/bundle`),
 * with a package.json of its name, version and `"type": "module"` beside it,
 * so copying DIR over `/app` of an image replaces the bin with the bundle and
 * the ENTRYPOINT stays `node /app/apps/NAME/bin/<bin>.js`. The image's build
 * stage runs this; `npm run bench:operator` bundles its operator the same way.
 *
 * Workspace packages are bundled from their TypeScript sources (the
 * `@db-backup-operator/source` export condition), their imports from effect's
 * barrels go to effect's modules themselves, every dependency is inlined,
 * and the file needs nothing at run time but Node's built-in modules. It fails
 * when anything from `@db-backup-operator/testing` would end up inside.
 *
 * This file imports only Node and esbuild: the image's build stage has nothing else.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { createRequire, isBuiltin } from "node:module"
import { basename, dirname, extname, join, relative } from "node:path"
import { parseArgs } from "node:util"
import { type BuildOptions, build, type Metafile, type Plugin } from "esbuild"

const root = join(import.meta.dirname, "..")

/**
 * What the barrel `effect` (or `effect/http`, `effect/cli`, ...) re-exports:
 * each name, and the module it comes from with whether it is a namespace
 * (`export * as Effect from "./Effect.js"`) or a named export (`pipe`, from
 * `./Function.js`). Undefined when `specifier` is no barrel of the package.
 */
const barrelExports = (
  effectDir: string,
  specifier: string
): ReadonlyMap<string, { readonly module: string; readonly namespace: boolean }> | undefined => {
  const sub = specifier === "effect" ? "" : specifier.slice("effect/".length)
  if (!/^[a-z-]*$/u.test(sub)) return undefined
  const index = join(effectDir, "dist", sub, "index.js")
  if (!existsSync(index)) return undefined
  const text = readFileSync(index, "utf8").replace(/\/\*[\s\S]*?\*\//gu, "")
  const names = new Map<string, { readonly module: string; readonly namespace: boolean }>()
  for (const [, name, file] of text.matchAll(/export \* as (\w+) from "\.\/([\w/]+)\.js"/gu)) {
    if (name !== undefined && file !== undefined) names.set(name, { module: `${specifier}/${file}`, namespace: true })
  }
  for (const [, list, file] of text.matchAll(/export \{([^}]*)\} from "\.\/([\w/]+)\.js"/gu)) {
    for (const name of (list ?? "").split(",").map((part) => part.trim())) {
      if (/^\w+$/u.test(name) && file !== undefined)
        names.set(name, { module: `${specifier}/${file}`, namespace: false })
    }
  }
  return names
}

/**
 * Rewrites our sources' imports from effect's barrels into imports of the
 * modules themselves, as they are bundled (the sources keep the barrel):
 * `import { Effect, pipe } from "effect"` becomes
 * `import * as Effect from "effect/Effect"` and
 * `import { pipe } from "effect/Function"`. esbuild keeps more of effect
 * through a barrel: the operator's bundle is 0.9 MiB smaller this way and starts
 * with about 10 MiB less RSS. A name it does not recognize stays a barrel import.
 */
export const effectDeepImports = (repoRoot: string = root): Plugin => ({
  name: "effect-deep-imports",
  setup: (pluginBuild) => {
    const effectDir = dirname(createRequire(join(repoRoot, "package.json")).resolve("effect/package.json"))
    const barrels = new Map<string, ReturnType<typeof barrelExports>>()
    const barrel = (specifier: string) => {
      if (!barrels.has(specifier)) barrels.set(specifier, barrelExports(effectDir, specifier))
      return barrels.get(specifier)
    }
    const importFrom = /import\s+(type\s+)?\{([^}]*)\}\s*from\s*"(effect(?:\/[a-z-]+)?)"/gu
    pluginBuild.onLoad({ filter: /\.ts$/ }, (args) => {
      if (args.path.includes("/node_modules/")) return undefined
      const source = readFileSync(args.path, "utf8")
      const contents = source.replace(
        importFrom,
        (statement, typeOnly: string | undefined, list: string, specifier) => {
          const names = barrel(specifier)
          if (names === undefined) return statement
          const lines: Array<string> = []
          const kept: Array<string> = []
          const named = new Map<string, Array<string>>()
          for (const part of list
            .split(",")
            .map((item) => item.trim())
            .filter((item) => item.length > 0)) {
            const match = /^(type\s+)?(\w+)(?:\s+as\s+(\w+))?$/u.exec(part)
            const name = match?.[2]
            const found = name === undefined ? undefined : names.get(name)
            if (match === null || name === undefined || found === undefined) {
              kept.push(part)
              continue
            }
            const local = match[3] ?? name
            const isType = typeOnly !== undefined || match[1] !== undefined
            if (found.namespace) lines.push(`import ${isType ? "type " : ""}* as ${local} from "${found.module}"`)
            else
              named.set(found.module, [
                ...(named.get(found.module) ?? []),
                `${isType ? "type " : ""}${name} as ${local}`
              ])
          }
          for (const [module, parts] of named) lines.push(`import { ${parts.join(", ")} } from "${module}"`)
          if (kept.length > 0) lines.push(`import ${typeOnly ?? ""}{ ${kept.join(", ")} } from "${specifier}"`)
          // As many lines as before, so esbuild's line numbers (and stack traces) still match the source.
          const newlines = statement.split("\n").length - 1
          return `${lines.join("; ")}${"\n".repeat(newlines)}`
        }
      )
      return { contents, loader: "ts", resolveDir: dirname(args.path) }
    })
  }
})

/**
 * The options every bundle is built with: `entry` to `outfile`, and beside it,
 * in `chunks/`, the code it shares with what it imports dynamically and that
 * code itself. So `@kubernetes/client-node`, which only a kubeconfig user with
 * an auth plugin needs (packages/kube/src/client/clientNodeAuth.ts), is a chunk
 * Node never reads otherwise: inlined, even unevaluated, it cost 13 MiB of RSS and
 * 80 ms at every start. `require` is defined for the CommonJS dependencies that
 * load Node's built-in modules. Nothing is minified, so a stack trace from a Pod
 * reads like the source (a function esbuild had to rename ends in a digit).
 * Not `keepNames`: it defines the name of every function as it is created, which
 * cost the operator 0.15 s of CPU before ready and a quarter more CPU under load
 * (npm run bench:operator); effect's errors are named after their tags anyway.
 * The file extension of `outfile` (`.js`, `.mjs`) is the chunks'.
 */
export const bundleOptions = (entry: string, outfile: string): BuildOptions => {
  const extension = extname(outfile)
  return {
    entryPoints: [{ in: entry, out: basename(outfile, extension) }],
    outdir: dirname(outfile),
    outExtension: { ".js": extension },
    splitting: true,
    chunkNames: "chunks/[name]-[hash]",
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node24",
    conditions: ["@db-backup-operator/source"],
    legalComments: "eof",
    logLevel: "warning",
    metafile: true,
    plugins: [effectDeepImports()],
    banner: {
      js: [
        "#!/usr/bin/env node",
        'import { createRequire as __bundleCreateRequire } from "node:module";',
        "const require = __bundleCreateRequire(import.meta.url);"
      ].join("\n")
    }
  }
}

/**
 * Modules that dependencies `require` inside a `try`, using them when installed:
 * ws's native `bufferutil` and `utf-8-validate`, debug's `supports-color`. None
 * is installed; esbuild leaves those calls as they are.
 */
const optional = new Set(["bufferutil", "utf-8-validate", "supports-color"])

/** What one bundle is made of. */
export interface BundleReport {
  readonly outfile: string
  /** What Node reads at start: the entry file and the chunks it imports statically. */
  readonly bytes: number
  /** The chunks only a dynamic `import()` loads. */
  readonly lazyBytes: number
  /** Every file written, the entry's first. */
  readonly files: ReadonlyArray<string>
  /** Package (or workspace directory) to bytes read at start, largest first. */
  readonly inputs: ReadonlyArray<readonly [string, number]>
}

const packageOf = (input: string): string => {
  const modules = input.lastIndexOf("node_modules/")
  if (modules === -1) return input.split("/").slice(0, 2).join("/")
  const rest = input.slice(modules + "node_modules/".length).split("/")
  return rest[0]?.startsWith("@") === true ? rest.slice(0, 2).join("/") : (rest[0] ?? input)
}

const summarize = (outfile: string, metafile: Metafile): BundleReport => {
  const outputs = metafile.outputs
  const entry = Object.keys(outputs).find((path) => outputs[path]?.entryPoint !== undefined)
  const atStart = new Set<string>()
  const visit = (path: string) => {
    const output = outputs[path]
    if (output === undefined || atStart.has(path)) return
    atStart.add(path)
    for (const imported of output.imports) {
      if (!imported.external && imported.kind === "import-statement") visit(imported.path)
    }
  }
  if (entry !== undefined) visit(entry)
  const byPackage = new Map<string, number>()
  let bytes = 0
  let lazyBytes = 0
  for (const [path, output] of Object.entries(outputs)) {
    if (!atStart.has(path)) {
      lazyBytes += output.bytes
      continue
    }
    bytes += output.bytes
    for (const [input, { bytesInOutput }] of Object.entries(output.inputs)) {
      const key = packageOf(input)
      byPackage.set(key, (byPackage.get(key) ?? 0) + bytesInOutput)
    }
  }
  const files = Object.keys(outputs).sort((a, b) => (a === entry ? -1 : b === entry ? 1 : a < b ? -1 : 1))
  return { outfile, bytes, lazyBytes, files, inputs: [...byPackage.entries()].sort((a, b) => b[1] - a[1]) }
}

/**
 * Bundles `entry` into `outfile` (and `chunks/` beside it; paths relative to the
 * current directory or absolute). Throws when the build fails, when the bundle
 * would contain the test tooling, or when it would load anything at run time but
 * Node's own modules (and the optional ones above).
 */
export const bundle = async (entry: string, outfile: string): Promise<BundleReport> => {
  const result = await build(bundleOptions(entry, outfile))
  const metafile = result.metafile
  if (metafile === undefined) throw new Error(`esbuild returned no metafile for ${entry}`)
  const testing = Object.keys(metafile.inputs).filter(
    (input) => input.includes("packages/testing/") || input.includes("@db-backup-operator/testing")
  )
  if (testing.length > 0) {
    throw new Error(`${entry} pulls the test tooling into its bundle: ${testing.slice(0, 5).join(", ")}`)
  }
  const external = Object.values(metafile.outputs).flatMap((output) =>
    output.imports
      .filter((imported) => imported.external && !isBuiltin(imported.path) && !optional.has(imported.path))
      .map((imported) => imported.path)
  )
  if (external.length > 0) {
    throw new Error(
      `the bundle of ${entry} would load from node_modules at run time: ${[...new Set(external)].join(", ")}`
    )
  }
  return summarize(outfile, metafile)
}

/**
 * The entry point and the bin path (relative to the repository root) of
 * `apps/<app>`, and the package.json to ship beside the bundle: the app's name
 * and version, and `"type": "module"`, so Node loads the `.js` bundle as ESM at
 * once (no dependencies: there is nothing left to install).
 */
export const appBundle = (
  app: string,
  repoRoot: string = root
): { entry: string; bin: string; manifestPath: string; manifest: string } => {
  const dir = join("apps", app)
  const manifest = JSON.parse(readFileSync(join(repoRoot, dir, "package.json"), "utf8")) as {
    readonly name?: string
    readonly version?: string
    readonly license?: string
    readonly bin?: Readonly<Record<string, string>>
  }
  const bins = Object.values(manifest.bin ?? {})
  if (bins.length !== 1 || bins[0] === undefined) {
    throw new Error(`${dir}/package.json must have exactly one bin, has ${bins.length}`)
  }
  const shipped = {
    name: manifest.name,
    version: manifest.version,
    private: true,
    license: manifest.license,
    type: "module",
    bin: manifest.bin
  }
  return {
    entry: join(dir, "src", "main.ts"),
    bin: join(dir, bins[0]),
    manifestPath: join(dir, "package.json"),
    manifest: `${JSON.stringify(shipped, null, 2)}\n`
  }
}

const describe = (report: BundleReport): string => {
  const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(2)} MiB`
  const top = report.inputs
    .slice(0, 6)
    .map(([name, bytes]) => `${name} ${mib(bytes)}`)
    .join(", ")
  return (
    `${report.outfile}: ${mib(report.bytes)} read at start (${top}, ...), ` +
    `${mib(report.lazyBytes)} only when imported; ${report.files.length} files`
  )
}

const main = async () => {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      outdir: { type: "string", default: join(root, "dist", "bundle") },
      entry: { type: "string" },
      outfile: { type: "string" }
    }
  })
  if (values.entry !== undefined || values.outfile !== undefined) {
    if (values.entry === undefined || values.outfile === undefined || positionals.length > 0) {
      throw new Error("--entry and --outfile go together, without app names")
    }
    console.log(describe(await bundle(values.entry, values.outfile)))
    return
  }
  if (positionals.length === 0) throw new Error("name the apps to bundle: operator, runner")
  for (const app of positionals) {
    const { entry, bin, manifestPath, manifest } = appBundle(app)
    const outfile = join(values.outdir, bin)
    const report = await bundle(join(root, entry), outfile)
    mkdirSync(join(values.outdir, manifestPath, ".."), { recursive: true })
    writeFileSync(join(values.outdir, manifestPath), manifest)
    console.log(describe({ ...report, outfile: relative(process.cwd(), outfile) }))
  }
}

if (import.meta.main) {
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : String(error))
    process.exitCode = 1
  })
}
