/**
 * Every ```ts example in a TSDoc comment (`/** … *\/`) of a source file under
 * `packages/*\/src` and `apps/*\/src` must type-check, so the documentation cannot
 * show APIs that do not exist (the operator's package is where this lives because it
 * is the framework the examples teach; the test covers every workspace).
 *
 * Convention for an example:
 * - It is a module body, compiled with the repository's settings (`tsconfig.base.json`:
 *   strict, `exactOptionalPropertyTypes`, and the `@db-backup-operator/source` condition
 *   so workspace packages resolve to their sources). Unused names are allowed: examples
 *   are fragments.
 * - A fixed prelude puts in scope what a reader assumes: every module `effect` exports
 *   by name (`Effect`, `Schema`, `Layer`, …, plus `pipe`/`flow`/`identity`), except those
 *   named like a global (`Array`, `Record`, `String`, …, which would shadow the built-ins),
 *   the public exports of `@db-backup-operator/kube`, those of the example's own
 *   workspace package (when it has a `.` export), and the exports of the very module the
 *   comment is in (a reader of `findGo`'s TSDoc assumes `findGo`). On a clash the public
 *   API wins, as users see it: own package, then kube, then the module, then effect (so
 *   `Action.done` in Action.ts is the package's namespace, not the module's `Action` type).
 * - An example may add its own `import` lines (they win over the prelude) and
 *   `declare const x: T` for free variables (the cluster's `kubeconfig`, a `program`).
 * - An example with a top-level `yield` (outside any generator, so `yield* kube.get(…)`
 *   as in the body of an `Effect.gen`) is wrapped in `Effect.gen(function* () { … })`:
 *   the checker parses the example and looks for a `yield` that the parser could not
 *   read as a yield expression (an identifier `yield` with no enclosing generator).
 *   Its `import`s and `declare`s stay at module level.
 * - Only ```ts (and ```typescript) fences are checked; use ```text (or another language)
 *   for anything else.
 *
 * One `ts.Program` holds all examples, not one per example: a first program only lists
 * the prelude's names and hands its parsed files to the second, so effect's declarations
 * are parsed and checked once (15-30 s on two shared cores).
 * Run alone: `npx vitest run packages/operator/test/tsdoc-examples.test.ts`.
 */
import { readdirSync, readFileSync } from "node:fs"
import { basename, dirname, join, relative } from "node:path"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import ts from "typescript"

const root = fileURLToPath(new URL("../../..", import.meta.url))

interface Example {
  /** The source file, relative to the repository root. */
  readonly file: string
  /** 1-based line of the example's first code line in `file`. */
  readonly line: number
  readonly code: string
}

interface Workspace {
  readonly dir: string
  /** The package's name when it exports `.` (so the prelude can import it). */
  readonly importable: string | undefined
}

const workspaces = (): ReadonlyArray<Workspace> =>
  ["packages", "apps"].flatMap((group) =>
    readdirSync(join(root, group), { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => {
        const dir = join(root, group, entry.name)
        const manifest: { name?: string; exports?: Record<string, unknown> } = JSON.parse(
          readFileSync(join(dir, "package.json"), "utf8")
        )
        return { dir, importable: manifest.exports?.["."] === undefined ? undefined : manifest.name }
      })
  )

const sourcesOf = (workspace: Workspace): ReadonlyArray<string> => {
  const src = join(workspace.dir, "src")
  return readdirSync(src, { recursive: true, encoding: "utf8" })
    .filter((path) => path.endsWith(".ts") && !path.endsWith(".d.ts"))
    .map((path) => join(src, path))
    .sort()
}

/** The ```ts blocks of every `/** … *\/` comment, found with the scanner (so strings and `//` comments are skipped). */
const extractExamples = (file: string, text: string): ReadonlyArray<Example> => {
  const examples: Array<Example> = []
  const scanner = ts.createScanner(ts.ScriptTarget.Latest, false, ts.LanguageVariant.Standard, text)
  for (let token = scanner.scan(); token !== ts.SyntaxKind.EndOfFileToken; token = scanner.scan()) {
    if (token !== ts.SyntaxKind.MultiLineCommentTrivia || !scanner.getTokenText().startsWith("/**")) continue
    const startLine = text.slice(0, scanner.getTokenStart()).split("\n").length
    const lines = scanner
      .getTokenText()
      .split("\n")
      .map((line) => line.replace(/^\s*(\/\*\*|\*\/|\*(?!\/))? ?/u, "").replace(/\*\/\s*$/u, ""))
    let fence: { readonly line: number; readonly code: Array<string> } | undefined
    lines.forEach((line, index) => {
      if (fence === undefined) {
        if (/^```(ts|typescript)\s*$/u.test(line.trim())) fence = { line: startLine + index + 1, code: [] }
      } else if (line.trim() === "```") {
        examples.push({ file, line: fence.line, code: fence.code.join("\n") })
        fence = undefined
      } else {
        fence.code.push(line)
      }
    })
  }
  return examples
}

// Names that effect exports but that would shadow a built-in the examples use as is.
const shadowsGlobal = (checker: ts.TypeChecker, name: string): boolean =>
  checker.resolveName(name, undefined, ts.SymbolFlags.Value | ts.SymbolFlags.Type, false) !== undefined

interface Binding {
  readonly name: string
  readonly isType: boolean
}

const exportsOf = (program: ts.Program, probe: ts.SourceFile, specifier: string): ReadonlyArray<Binding> => {
  const checker = program.getTypeChecker()
  const declaration = probe.statements
    .filter(ts.isImportDeclaration)
    .find((statement) => ts.isStringLiteral(statement.moduleSpecifier) && statement.moduleSpecifier.text === specifier)
  const namespace = declaration?.importClause?.namedBindings
  if (namespace === undefined || !ts.isNamespaceImport(namespace)) throw new Error(`no probe import of ${specifier}`)
  const alias = checker.getSymbolAtLocation(namespace.name)
  const module = alias === undefined ? undefined : checker.getAliasedSymbol(alias)
  if (module === undefined) throw new Error(`cannot resolve ${specifier}`)
  return checker.getExportsOfModule(module).map((symbol) => {
    // A `type` re-export of a value is still type-only for `verbatimModuleSyntax`.
    const typeOnlyExport = (symbol.declarations ?? []).some(
      (node) => ts.isExportSpecifier(node) && (node.isTypeOnly || node.parent.parent.isTypeOnly)
    )
    const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol
    return { name: symbol.name, isType: typeOnlyExport || (target.flags & ts.SymbolFlags.Value) === 0 }
  })
}

/** Names an example binds at module level (its own imports and declarations), which the prelude must not import again. */
const topLevelNames = (statements: ReadonlyArray<ts.Statement>): ReadonlySet<string> => {
  const names = new Set<string>()
  const addBinding = (name: ts.BindingName): void => {
    if (ts.isIdentifier(name)) names.add(name.text)
    else for (const element of name.elements) if (!ts.isOmittedExpression(element)) addBinding(element.name)
  }
  for (const statement of statements) {
    if (ts.isImportDeclaration(statement)) {
      const clause = statement.importClause
      if (clause?.name !== undefined) names.add(clause.name.text)
      const bindings = clause?.namedBindings
      if (bindings !== undefined && ts.isNamespaceImport(bindings)) names.add(bindings.name.text)
      if (bindings !== undefined && ts.isNamedImports(bindings))
        for (const element of bindings.elements) names.add(element.name.text)
    } else if (ts.isVariableStatement(statement)) {
      for (const declaration of statement.declarationList.declarations) addBinding(declaration.name)
    } else if (
      (ts.isFunctionDeclaration(statement) ||
        ts.isClassDeclaration(statement) ||
        ts.isInterfaceDeclaration(statement) ||
        ts.isTypeAliasDeclaration(statement) ||
        ts.isEnumDeclaration(statement) ||
        ts.isModuleDeclaration(statement)) &&
      statement.name !== undefined &&
      ts.isIdentifier(statement.name)
    ) {
      names.add(statement.name.text)
    }
  }
  return names
}

/** A `yield` the parser read as an identifier: one outside any generator. */
const hasTopLevelYield = (file: ts.SourceFile): boolean => {
  let found = false
  const visit = (node: ts.Node): void => {
    if (found) return
    if (ts.isFunctionLike(node) && "asteriskToken" in node && node.asteriskToken !== undefined) return
    if (ts.isIdentifier(node) && node.text === "yield") found = true
    else ts.forEachChild(node, visit)
  }
  visit(file)
  return found
}

const staysAtModuleLevel = (statement: ts.Statement): boolean =>
  ts.isImportDeclaration(statement) ||
  ts.isImportEqualsDeclaration(statement) ||
  (ts.canHaveModifiers(statement) &&
    (ts.getModifiers(statement) ?? []).some((modifier) => modifier.kind === ts.SyntaxKind.DeclareKeyword))

interface Virtual {
  readonly example: Example
  readonly path: string
  readonly text: string
  /** For each line of `text`, the line of `example.file` it came from (the example's first line for the prelude). */
  readonly lines: ReadonlyArray<number>
}

const buildVirtual = (
  example: Example,
  index: number,
  prelude: ReadonlyMap<string, { readonly from: string; readonly isType: boolean }>
): Virtual => {
  const parsed = ts.createSourceFile("example.ts", example.code, ts.ScriptTarget.Latest, true)
  const wrap = hasTopLevelYield(parsed)
  const moduleLevel = wrap ? parsed.statements.filter(staysAtModuleLevel) : parsed.statements
  const taken = topLevelNames(moduleLevel)
  const bySource = new Map<string, Array<string>>()
  for (const [name, { from, isType }] of prelude) {
    if (taken.has(name)) continue
    bySource.set(from, [...(bySource.get(from) ?? []), isType ? `type ${name}` : name])
  }
  const out: Array<string> = []
  const lines: Array<number> = []
  const emit = (text: string, line: number) => {
    for (const part of text.split("\n")) {
      out.push(part)
      lines.push(line)
    }
  }
  for (const [from, names] of bySource) emit(`import { ${names.join(", ")} } from "${from}"`, example.line)
  emit("export {}", example.line)
  const lineOf = (position: number) => example.line + parsed.getLineAndCharacterOfPosition(position).line
  const emitStatement = (statement: ts.Statement) => {
    const start = statement.getStart(parsed)
    const firstLine = parsed.getLineAndCharacterOfPosition(start).line
    // From the start of its first line, so columns (and the lines in between) stay as written.
    const text = example.code.slice(parsed.getPositionOfLineAndCharacter(firstLine, 0), statement.getEnd())
    text.split("\n").forEach((part, offset) => {
      out.push(part)
      lines.push(lineOf(start) + offset)
    })
  }
  if (wrap) {
    for (const statement of moduleLevel) emitStatement(statement)
    emit("export const __example = Effect.gen(function* () {", example.line)
    for (const statement of parsed.statements) if (!staysAtModuleLevel(statement)) emitStatement(statement)
    emit("})", example.line)
  } else {
    example.code.split("\n").forEach((part, offset) => {
      out.push(part)
      lines.push(example.line + offset)
    })
  }
  const source = join(root, example.file)
  return {
    example,
    path: join(dirname(source), `__tsdoc_example_${index}.ts`),
    text: out.join("\n"),
    lines
  }
}

const compilerOptions = (): ts.CompilerOptions => {
  const configPath = join(root, "tsconfig.base.json")
  const config = ts.readConfigFile(configPath, ts.sys.readFile)
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, root, undefined, configPath)
  return {
    ...parsed.options,
    // Examples are fragments, checked, never emitted.
    noUnusedLocals: false,
    noUnusedParameters: false,
    noEmit: true,
    composite: false,
    declaration: false,
    emitDeclarationOnly: false,
    incremental: false
  }
}

const makeHost = (options: ts.CompilerOptions, virtual: ReadonlyMap<string, string>): ts.CompilerHost => {
  const host = ts.createCompilerHost(options, true)
  const { getSourceFile, fileExists, readFile } = host
  return {
    ...host,
    fileExists: (path) => virtual.has(path) || fileExists.call(host, path),
    readFile: (path) => virtual.get(path) ?? readFile.call(host, path),
    getSourceFile: (path, language, onError, shouldCreate) => {
      const text = virtual.get(path)
      return text === undefined
        ? getSourceFile.call(host, path, language, onError, shouldCreate)
        : ts.createSourceFile(path, text, language, true)
    }
  }
}

interface Failure {
  /** `file:line` of the example's first line. */
  readonly example: string
  /** `file:line` of the diagnostic. */
  readonly at: string
  readonly message: string
}

/** Type-checks every example; returns how many there are and what fails. */
const checkExamples = (): { readonly count: number; readonly failures: ReadonlyArray<Failure> } => {
  const options = compilerOptions()
  const spaces = workspaces()
  const examples = spaces.flatMap((space) =>
    sourcesOf(space).flatMap((path) => extractExamples(relative(root, path), readFileSync(path, "utf8")))
  )

  // First program: only the prelude's sources, to list their exports.
  const documented = [...new Set(examples.map((example) => join(root, example.file)))]
  const specifiers = [
    "effect",
    "@db-backup-operator/kube",
    ...spaces.flatMap((space) => space.importable ?? []),
    ...documented
  ]
  const probePath = join(root, "packages", "operator", "src", "__tsdoc_probe.ts")
  const probeText = specifiers.map((specifier, i) => `import * as m${i} from "${specifier}"`).join("\n")
  const probeProgram = ts.createProgram([probePath], options, makeHost(options, new Map([[probePath, probeText]])))
  const probe = probeProgram.getSourceFile(probePath)
  if (probe === undefined) throw new Error("probe not parsed")
  const checker = probeProgram.getTypeChecker()
  const exported = new Map(specifiers.map((specifier) => [specifier, exportsOf(probeProgram, probe, specifier)]))
  const effectNames = (exported.get("effect") ?? []).filter((binding) => !shadowsGlobal(checker, binding.name))

  const preludeFor = (file: string) => {
    const path = join(root, file)
    const own = spaces.find((space) => path.startsWith(`${space.dir}/`))?.importable
    const prelude = new Map<string, { readonly from: string; readonly isType: boolean }>()
    // Later sources overwrite earlier ones: own package, kube, the module, effect.
    const layers: ReadonlyArray<readonly [string, ReadonlyArray<Binding>]> = [
      ["effect", effectNames],
      [`./${basename(path)}`, exported.get(path) ?? []],
      ["@db-backup-operator/kube", exported.get("@db-backup-operator/kube") ?? []],
      ...(own === undefined ? [] : [[own, exported.get(own) ?? []] as const])
    ]
    for (const [from, bindings] of layers) for (const { name, isType } of bindings) prelude.set(name, { from, isType })
    return prelude
  }

  const virtuals = examples.map((example, index) => buildVirtual(example, index, preludeFor(example.file)))
  const texts = new Map(virtuals.map((v) => [v.path, v.text]))
  const program = ts.createProgram(
    virtuals.map((v) => v.path),
    options,
    makeHost(options, texts),
    probeProgram
  )
  const failures: Array<Failure> = []
  for (const v of virtuals) {
    const file = program.getSourceFile(v.path)
    if (file === undefined) throw new Error(`${v.path} not in the program`)
    for (const diagnostic of [...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)]) {
      const line =
        diagnostic.start === undefined
          ? v.example.line
          : (v.lines[file.getLineAndCharacterOfPosition(diagnostic.start).line] ?? v.example.line)
      failures.push({
        example: `${v.example.file}:${v.example.line}`,
        at: `${v.example.file}:${line}`,
        message: `TS${diagnostic.code} ${ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n  ")}`
      })
    }
  }
  return { count: examples.length, failures }
}

describe("TSDoc examples", () => {
  it("type-check", { timeout: 120_000 }, () => {
    const { count, failures } = checkExamples()
    assert.isAtLeast(count, 100, "the extractor found too few examples")
    assert.deepStrictEqual(
      failures.map((failure) => `${failure.at}: ${failure.message}`),
      [],
      `${failures.length} problems in ${new Set(failures.map((failure) => failure.example)).size} of ${count} examples`
    )
  })
})
