import { existsSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { goPackages, versions } from "./versions.ts"

/** One cached build: which binaries it yields and how Go makes them. */
export interface ToolBuild {
  /** Cache entry name: `<name>-<version>-<goVersion>`. */
  readonly name: string
  readonly version: string
  /** Binary file names in the entry once built. */
  readonly binaries: ReadonlyArray<string>
  /** For progress messages. */
  readonly description: string
  /** A tools module (`go build ... tool` in it) or a `go install pkg@version`. */
  readonly source:
    | {
        readonly _tag: "ToolsModule"
        readonly dir: string
        /** A line that go.mod must contain, proving it pins `version`. */
        readonly pin: RegExp
        /** Built file name -> cached file name. */
        readonly rename: Readonly<Record<string, string>>
      }
    | { readonly _tag: "Install"; readonly pkg: string }
}

/**
 * The package's root: the nearest directory above this module with a package.json.
 * This module runs from `src/binaries` in a checkout and from `dist/esm/binaries`
 * in an installed package, and the Go modules sit in `go/` at the root in both.
 */
const packageRoot = (): string => {
  const here = dirname(fileURLToPath(import.meta.url))
  for (let dir = here; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json"))) return dir
    if (dirname(dir) === dir) throw new Error(`no package.json above ${here}: cannot find the Go tools modules`)
  }
}

const goDir = (name: string) => join(packageRoot(), "go", name)

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/gu, "\\$&")

/** kube-apiserver and kube-controller-manager, from `go/kubernetes`. */
export const kubernetesTool: ToolBuild = {
  name: "kubernetes",
  version: versions.kubernetes,
  binaries: ["kube-apiserver", "kube-controller-manager"],
  description: `kube-apiserver and kube-controller-manager (${goPackages.kubernetesModule} ${versions.kubernetes})`,
  source: {
    _tag: "ToolsModule",
    dir: goDir("kubernetes"),
    pin: new RegExp(
      `^require ${escapeRegExp(goPackages.kubernetesModule)} ${escapeRegExp(versions.kubernetes)}$`,
      "mu"
    ),
    rename: {}
  }
}

/** etcd, from `go/etcd` (Go names the binary after the module's last element, `server`). */
export const etcdTool: ToolBuild = {
  name: "etcd",
  version: versions.etcd,
  binaries: ["etcd"],
  description: `etcd (${goPackages.etcdServer} ${versions.etcd})`,
  source: {
    _tag: "ToolsModule",
    dir: goDir("etcd"),
    pin: new RegExp(`^\\s*${escapeRegExp(goPackages.etcdServer)} ${escapeRegExp(versions.etcd)}( // indirect)?$`, "mu"),
    rename: { server: "etcd" }
  }
}

/** fake-gcs-server, with `go install`. */
export const fakeGcsServerTool: ToolBuild = {
  name: "fake-gcs-server",
  version: versions.fakeGcsServer,
  binaries: ["fake-gcs-server"],
  description: `fake-gcs-server (${goPackages.fakeGcsServer} ${versions.fakeGcsServer})`,
  source: { _tag: "Install", pkg: `${goPackages.fakeGcsServer}@${versions.fakeGcsServer}` }
}

/** helm, with `go install` (the binary reports its version as `v4.3`, without the patch). */
export const helmTool: ToolBuild = {
  name: "helm",
  version: versions.helm,
  binaries: ["helm"],
  description: `helm (${goPackages.helm} ${versions.helm})`,
  source: { _tag: "Install", pkg: `${goPackages.helm}@${versions.helm}` }
}

/** age and age-keygen (and the other commands of the age module), with `go install`. */
export const ageTool: ToolBuild = {
  name: "age",
  version: versions.age,
  binaries: ["age", "age-keygen"],
  description: `age (${goPackages.age} ${versions.age})`,
  source: { _tag: "Install", pkg: `${goPackages.age}@${versions.age}` }
}

/** versitygw (an S3 gateway; its `posix` backend serves a local directory), with `go install`. */
export const versitygwTool: ToolBuild = {
  name: "versitygw",
  version: versions.versitygw,
  binaries: ["versitygw"],
  description: `versitygw (${goPackages.versitygw} ${versions.versitygw})`,
  source: { _tag: "Install", pkg: `${goPackages.versitygw}@${versions.versitygw}` }
}
