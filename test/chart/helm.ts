import { fileURLToPath } from "node:url"
import {
  type BinariesError,
  type ProcessError,
  type RunResult,
  resolveBinaries,
  runProcess
} from "@db-backup-operator/testing"
import { NodeServices } from "@effect/platform-node"
import { type Duration, Effect } from "effect"
import { Yaml } from "effect/encoding"

/**
 * The real helm (v4, built from the Go module proxy and cached by `kube-testenv build`,
 * or `TEST_ASSET_HELM`) run against the chart in `charts/db-backup-operator`, for the
 * chart tests and for the end-to-end test that runs the operator with the chart's RBAC.
 */

/** The chart's directory. */
export const chartDir = fileURLToPath(new URL("../../charts/db-backup-operator", import.meta.url))

/** The release and namespace the docs install into (`helm install db-backup-operator ... -n db-backup-operator`). */
export const defaultRelease = "db-backup-operator"

/** Options of {@link helmTemplate}: the `helm template` flags the tests use. */
export interface TemplateOptions {
  /** Release name (default `db-backup-operator`). */
  readonly release?: string
  /** `--namespace` (default `db-backup-operator`). */
  readonly namespace?: string
  /** Values, one `--set-json key=<json>` per top-level key, so a wrong type stays wrong. */
  readonly values?: Readonly<Record<string, unknown>>
  /** `--show-only` templates, e.g. `templates/rbac.yaml`. */
  readonly showOnly?: ReadonlyArray<string>
  /** `--api-versions`, capabilities the cluster is assumed to have. */
  readonly apiVersions?: ReadonlyArray<string>
  /** `--include-crds`: the chart's `crds/` in the output. */
  readonly includeCrds?: boolean
}

/**
 * Runs helm with `args`; a non-zero exit is a result (tests of bad values look at it).
 * Killed after `timeout` (default 2 minutes; `install --wait` needs longer).
 *
 * @example
 * ```ts
 * const { exitCode, stderr } = yield* helm(["lint", "--strict", chartDir])
 * ```
 */
export const helm = (
  args: ReadonlyArray<string>,
  timeout: Duration.Input = "2 minutes"
): Effect.Effect<RunResult, BinariesError | ProcessError> =>
  Effect.gen(function* () {
    const { helm: binary } = yield* resolveBinaries(["helm"])
    return yield* runProcess(binary, args, { timeout })
  }).pipe(Effect.provide(NodeServices.layer))

/** The `helm template` command line for `options`. */
export const templateArgs = (options: TemplateOptions = {}): ReadonlyArray<string> => [
  "template",
  options.release ?? defaultRelease,
  chartDir,
  "--namespace",
  options.namespace ?? defaultRelease,
  ...Object.entries(options.values ?? {}).flatMap(([key, value]) => ["--set-json", `${key}=${JSON.stringify(value)}`]),
  ...(options.showOnly ?? []).flatMap((template) => ["--show-only", template]),
  ...(options.apiVersions ?? []).flatMap((api) => ["--api-versions", api]),
  ...(options.includeCrds === true ? ["--include-crds"] : [])
]

/**
 * `helm template` of the chart; a non-zero exit is a result.
 *
 * @example
 * ```ts
 * const { exitCode, stderr } = yield* helmTemplate({ values: { replicaCount: -1 } })
 * ```
 */
export const helmTemplate = (options: TemplateOptions = {}) => helm(templateArgs(options))

/**
 * The rendered manifests (YAML documents), failing with helm's stderr when it refuses.
 *
 * @example
 * ```ts
 * const yaml = yield* renderChart({ showOnly: ["templates/serviceaccount.yaml", "templates/rbac.yaml"] })
 * ```
 */
export const renderChart = (options: TemplateOptions = {}): Effect.Effect<string, Error> =>
  helmTemplate(options).pipe(
    Effect.flatMap((result) =>
      result.exitCode === 0
        ? Effect.succeed(result.stdout)
        : Effect.fail(new Error(`helm ${templateArgs(options).join(" ")} failed: ${result.stderr.trim()}`))
    )
  )

/** One YAML document of a multi-document stream: its text and what it parses to. */
export interface YamlDocument {
  readonly text: string
  readonly value: unknown
}

/**
 * Splits helm's output at its `---` lines and parses each document (Effect's YAML parser
 * reads one document at a time); documents holding only comments are dropped.
 */
export const yamlDocuments = (stream: string): ReadonlyArray<YamlDocument> =>
  stream
    .split(/^---[ \t]*$/mu)
    .map((text) => ({ text, value: Yaml.parse(text) }))
    .filter((document) => document.value !== null && document.value !== undefined)
