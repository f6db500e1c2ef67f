import { join } from "node:path"
import { NodeServices } from "@effect/platform-node"
import { Effect } from "effect"
import { isExecutable } from "../process/executable.ts"
import { BinariesError } from "./BinariesError.ts"
import { ensureBuilt } from "./build.ts"
import {
  ageTool,
  etcdTool,
  fakeGcsServerTool,
  helmTool,
  kubernetesTool,
  type ToolBuild,
  versitygwTool
} from "./tools.ts"

/** Absolute paths of the binaries the local test environment runs. */
export interface BinaryPaths {
  readonly kubeApiServer: string
  readonly kubeControllerManager: string
  readonly etcd: string
  readonly fakeGcsServer: string
  /** helm, for the chart tests (lint, template). */
  readonly helm: string
  /** versitygw, the S3 server of the S3 object store tests. */
  readonly versitygw: string
  /** age and age-keygen, the reference CLI the runner's encryption is checked against. */
  readonly age: string
  readonly ageKeygen: string
}

/** One of the binaries in {@link BinaryPaths}. */
export type BinaryName = keyof BinaryPaths

const sources: Record<
  BinaryName,
  {
    readonly file: string
    readonly env: string
    readonly tool: ToolBuild
    readonly kubebuilder: "required" | "optional" | "no"
  }
> = {
  kubeApiServer: {
    file: "kube-apiserver",
    env: "TEST_ASSET_KUBE_APISERVER",
    tool: kubernetesTool,
    kubebuilder: "required"
  },
  etcd: { file: "etcd", env: "TEST_ASSET_ETCD", tool: etcdTool, kubebuilder: "required" },
  kubeControllerManager: {
    file: "kube-controller-manager",
    env: "TEST_ASSET_KUBE_CONTROLLER_MANAGER",
    tool: kubernetesTool,
    kubebuilder: "optional"
  },
  fakeGcsServer: {
    file: "fake-gcs-server",
    env: "TEST_ASSET_FAKE_GCS_SERVER",
    tool: fakeGcsServerTool,
    kubebuilder: "no"
  },
  // Not in KUBEBUILDER_ASSETS: setup-envtest ships only kube-apiserver, etcd and kubectl.
  helm: { file: "helm", env: "TEST_ASSET_HELM", tool: helmTool, kubebuilder: "no" },
  versitygw: { file: "versitygw", env: "TEST_ASSET_VERSITYGW", tool: versitygwTool, kubebuilder: "no" },
  age: { file: "age", env: "TEST_ASSET_AGE", tool: ageTool, kubebuilder: "no" },
  ageKeygen: { file: "age-keygen", env: "TEST_ASSET_AGE_KEYGEN", tool: ageTool, kubebuilder: "no" }
}

const nonEmpty = (value: string | undefined) => (value === undefined || value === "" ? undefined : value)

// An explicitly named binary must exist: silently building another one would hide a typo.
const fromEnvironment = (name: BinaryName): Effect.Effect<string | undefined, BinariesError> =>
  Effect.gen(function* () {
    const source = sources[name]
    const explicit = nonEmpty(process.env[source.env])
    if (explicit !== undefined) {
      if (yield* isExecutable(explicit)) return explicit
      return yield* new BinariesError({ message: `${source.env}=${explicit} is not an executable file` })
    }
    const assets = nonEmpty(process.env.KUBEBUILDER_ASSETS)
    if (assets === undefined || source.kubebuilder === "no") return undefined
    const candidate = join(assets, source.file)
    if (yield* isExecutable(candidate)) return candidate
    if (source.kubebuilder === "optional") return undefined
    return yield* new BinariesError({ message: `KUBEBUILDER_ASSETS=${assets} has no executable ${source.file}` })
  })

/**
 * Paths of the asked-for binaries: from `TEST_ASSET_KUBE_APISERVER`,
 * `TEST_ASSET_ETCD`, `TEST_ASSET_KUBE_CONTROLLER_MANAGER`,
 * `TEST_ASSET_FAKE_GCS_SERVER`, `TEST_ASSET_HELM`, `TEST_ASSET_VERSITYGW`, `TEST_ASSET_AGE`,
 * `TEST_ASSET_AGE_KEYGEN` or `KUBEBUILDER_ASSETS` when set, otherwise
 * from the cache, built there with Go first if missing.
 *
 * @example
 * ```ts
 * const { fakeGcsServer } = yield* resolveBinaries(["fakeGcsServer"])
 * ```
 */
export const resolveBinaries = <const N extends BinaryName>(
  names: ReadonlyArray<N>
): Effect.Effect<{ readonly [K in N]: string }, BinariesError> =>
  Effect.gen(function* () {
    const paths: Partial<Record<BinaryName, string>> = {}
    for (const name of names) {
      const given = yield* fromEnvironment(name)
      paths[name] = given ?? join(yield* ensureBuilt(sources[name].tool), sources[name].file)
    }
    return paths as { readonly [K in N]: string }
  }).pipe(Effect.provide(NodeServices.layer))

const allNames: ReadonlyArray<BinaryName> = [
  "kubeApiServer",
  "kubeControllerManager",
  "etcd",
  "fakeGcsServer",
  "helm",
  "versitygw",
  "age",
  "ageKeygen"
]

/**
 * The test binaries, located or built and cached (see {@link resolveBinaries}).
 *
 * @example
 * ```ts
 * const { kubeApiServer, etcd } = yield* Binaries.resolve
 * ```
 */
export const Binaries = {
  /** Every binary. */
  resolve: resolveBinaries(allNames) satisfies Effect.Effect<BinaryPaths, BinariesError>,
  /** Only the named binaries (a GCS-only test does not build Kubernetes). */
  resolveOnly: resolveBinaries
} as const
