import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { afterEach, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { type AppImageSpec, appImages, repoRoot } from "./config.ts"
import { contextSources, workspaceClosure, workspaceMismatches } from "./dockerfile.ts"
import { isIgnored, parseDockerignore } from "./dockerignore.ts"
import { type AppPlan, type Plans, planAppImage, readWorkspaces, toBuild } from "./images.ts"
import { inputHash } from "./inputHash.ts"

const dockerfile = `ARG NODE_IMAGE=node:24-trixie-slim
FROM \${NODE_IMAGE} AS build
COPY package.json package-lock.json ./
COPY packages/lib/package.json packages/lib/
COPY apps/app/package.json apps/app/
RUN npm ci --omit=dev
COPY packages/lib/src packages/lib/src
COPY apps/app/src apps/app/src
COPY scripts/bundle.ts scripts/
RUN node scripts/bundle.ts app --outdir /bundle
FROM debian
COPY --from=build /bundle /app
`

const ignore = `*
!package.json
!package-lock.json
!packages/*/package.json
!packages/*/src
!apps/*/package.json
!apps/*/src
!scripts/bundle.ts
packages/testing
**/*.test.ts
**/test
`

const spec: AppImageSpec = {
  role: "runner",
  repository: "localhost/fixture-app",
  dockerfile: "docker/app/Dockerfile",
  appDir: "apps/app"
}

const manifest = (name: string, dependencies: Record<string, string>, devDependencies: Record<string, string> = {}) =>
  JSON.stringify({ name, version: "1.2.3", dependencies, devDependencies })

// A small monorepo with one app, the library it depends on, and a test-only workspace.
const fixture = (): string => {
  const root = mkdtempSync(join(tmpdir(), "images-test-"))
  const files: Record<string, string> = {
    "package.json": JSON.stringify({ name: "root", workspaces: ["packages/*", "apps/*"] }),
    "package-lock.json": "{}",
    ".dockerignore": ignore,
    "docker/app/Dockerfile": dockerfile,
    "README.md": "readme",
    "packages/lib/package.json": manifest("@x/lib", { effect: "4.1.0" }),
    "packages/lib/src/index.ts": "export const lib = 1\n",
    "packages/lib/src/index.test.ts": "test\n",
    "packages/lib/test/lib.test.ts": "test\n",
    "packages/testing/package.json": manifest("@x/testing", {}),
    "packages/testing/src/index.ts": "export const testing = 1\n",
    "apps/app/package.json": manifest("@x/app", { "@x/lib": "*" }, { "@x/testing": "*" }),
    "apps/app/src/main.ts": "import '@x/lib'\n",
    "apps/app/bin/app.js": "import '../src/main.ts'\n",
    "scripts/bundle.ts": "export {}\n",
    "scripts/other.ts": "export {}\n",
    "apps/app/test/app.test.ts": "test\n"
  }
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true })
    writeFileSync(join(root, path), content)
  }
  return root
}

const roots: Array<string> = []
afterEach(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true })
})

const args = { NODE_IMAGE: "localhost/base-node:1", RUNTIME_IMAGE: "localhost/base-debian:1" }
const refIn = (root: string, buildArgs: Record<string, string> = args) =>
  planAppImage(root, spec, buildArgs).pipe(Effect.map((plan) => plan.ref))

describe("app image input hash", () => {
  it.effect("is stable, and ignores what the image does not contain", () =>
    Effect.gen(function* () {
      const root = fixture()
      roots.push(root)
      const first = yield* refIn(root)
      expect(first).toMatch(/^localhost\/fixture-app:1\.2\.3-[0-9a-f]{12}$/u)
      expect(yield* refIn(root)).toBe(first)
      for (const path of [
        "packages/lib/src/index.test.ts",
        "packages/lib/test/lib.test.ts",
        "apps/app/test/app.test.ts",
        "apps/app/bin/app.js",
        "packages/testing/src/index.ts",
        "scripts/other.ts",
        "README.md"
      ]) {
        writeFileSync(join(root, path), "changed\n")
        expect(yield* refIn(root), path).toBe(first)
      }
    })
  )

  it.effect("changes with every input the image is built from", () =>
    Effect.gen(function* () {
      const root = fixture()
      roots.push(root)
      const seen = new Set([yield* refIn(root)])
      const expectNew = (what: string, ref: string) => {
        expect(seen.has(ref), what).toBe(false)
        seen.add(ref)
      }
      writeFileSync(join(root, "apps/app/src/main.ts"), "import '@x/lib' // edited\n")
      expectNew("a source file", yield* refIn(root))
      writeFileSync(join(root, "packages/lib/src/extra.ts"), "export {}\n")
      expectNew("a new source file", yield* refIn(root))
      writeFileSync(join(root, "scripts/bundle.ts"), "export const changed = 1\n")
      expectNew("the bundler", yield* refIn(root))
      chmodSync(join(root, "scripts/bundle.ts"), 0o755)
      expectNew("the executable bit", yield* refIn(root))
      writeFileSync(join(root, "package-lock.json"), '{"lockfileVersion":3}')
      expectNew("the lockfile", yield* refIn(root))
      writeFileSync(join(root, "packages/lib/package.json"), manifest("@x/lib", { effect: "4.1.1" }))
      expectNew("a workspace manifest", yield* refIn(root))
      writeFileSync(join(root, "docker/app/Dockerfile"), `${dockerfile}USER 65532\n`)
      expectNew("the Dockerfile", yield* refIn(root))
      expectNew("a build argument", yield* refIn(root, { ...args, RUNTIME_IMAGE: "localhost/base-debian:2" }))
    })
  )

  it.effect("refuses a Dockerfile that does not copy the bundler", () =>
    Effect.gen(function* () {
      const root = fixture()
      roots.push(root)
      writeFileSync(join(root, "docker/app/Dockerfile"), dockerfile.replace("COPY scripts/bundle.ts scripts/\n", ""))
      const error = yield* Effect.flip(refIn(root))
      expect(error.message).toContain("missing COPY scripts/bundle.ts")
    })
  )

  it.effect("refuses a Dockerfile that misses a workspace the app depends on", () =>
    Effect.gen(function* () {
      const root = fixture()
      roots.push(root)
      writeFileSync(
        join(root, "docker/app/Dockerfile"),
        dockerfile.replace("COPY packages/lib/src packages/lib/src\n", "")
      )
      const error = yield* Effect.flip(refIn(root))
      expect(error.message).toContain("missing COPY packages/lib/src")
    })
  )

  it("length-prefixes entries, so moving bytes between them changes the hash", () => {
    expect(inputHash([["a", "bc"]])).not.toBe(inputHash([["ab", "c"]]))
    expect(inputHash([["x", "ab"]])).not.toBe(
      inputHash([
        ["x", "a"],
        ["x", "b"]
      ])
    )
  })
})

describe("toBuild", () => {
  const app = (role: "operator" | "runner"): AppPlan => ({
    spec: { ...spec, role },
    ref: `localhost/${role}:1`,
    hash: role,
    files: [],
    buildArgs: {}
  })
  const plans = {
    debian: { ref: "localhost/debian:1" },
    node: { ref: "localhost/node:1" },
    apps: [app("operator"), app("runner")]
  } as unknown as Plans

  it("builds nothing when both app images are cached, even without the bases", () => {
    expect(toBuild(plans, new Set(["localhost/operator:1", "localhost/runner:1"]))).toEqual({
      debian: false,
      node: false,
      apps: []
    })
  })

  it("builds a missing app image, and only the bases that are missing", () => {
    const list = toBuild(plans, new Set(["localhost/operator:1", "localhost/node:1"]))
    expect(list.apps.map((a) => a.ref)).toEqual(["localhost/runner:1"])
    expect([list.debian, list.node]).toEqual([true, false])
  })
})

describe(".dockerignore", () => {
  const rules = parseDockerignore(readFileSync(join(repoRoot, ".dockerignore"), "utf8"))

  it.each([
    "package.json",
    "package-lock.json",
    "packages/kube/package.json",
    "packages/kube/src/index.ts",
    "apps/runner/src/main.ts",
    "scripts/bundle.ts"
  ])("sends %s", (path) => {
    expect(isIgnored(rules, path)).toBe(false)
  })

  it.each([
    "node_modules/effect/package.json",
    "packages/testing/src/index.ts",
    "packages/testing/package.json",
    "apps/runner/test/version.test.ts",
    "apps/runner/src/pipeline.test.ts",
    "packages/kube/dist/types/index.d.ts",
    "packages/kube/dist/esm/index.js",
    "test/e2e/backup.test.ts",
    "apps/runner/bin/db-backup-runner.js",
    "scripts/crds.ts",
    "docker/build/main.ts",
    "charts/db-backup-operator/values.yaml",
    ".git/config",
    ".env"
  ])("keeps out %s", (path) => {
    expect(isIgnored(rules, path)).toBe(true)
  })
})

describe("the Dockerfiles", () => {
  it.effect.each(appImages.map((image) => [image.dockerfile, image] as const))(
    "%s copies exactly the workspaces its app depends on",
    ([, image]) =>
      Effect.gen(function* () {
        const text = readFileSync(join(repoRoot, image.dockerfile), "utf8")
        const needed = workspaceClosure(yield* readWorkspaces(repoRoot), image.appDir)
        expect(needed).toContain(image.appDir)
        expect(needed).not.toContain("packages/testing")
        expect(workspaceMismatches(contextSources(text), needed)).toEqual([])
      })
  )

  it("default VERSION matches each app's package.json", () => {
    for (const image of appImages) {
      const text = readFileSync(join(repoRoot, image.dockerfile), "utf8")
      const { version } = JSON.parse(readFileSync(join(repoRoot, image.appDir, "package.json"), "utf8")) as {
        version: string
      }
      expect(text).toContain(`ARG VERSION=${version}\n`)
    }
  })
})
