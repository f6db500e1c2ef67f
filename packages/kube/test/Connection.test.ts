import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import { Connection } from "../src/index.ts"

// Connection reads kubeconfigs itself; only users with an auth plugin (exec,
// auth-provider) go through @kubernetes/client-node. These cover both paths.

const dirs: Array<string> = []
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

const b64 = (text: string) => Buffer.from(text).toString("base64")

const kubeconfig = (files: Record<string, string>): string => {
  const dir = mkdtempSync(join(tmpdir(), "connection-test-"))
  dirs.push(dir)
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content)
  return join(dir, "kubeconfig")
}

const config = (user: string, cluster = "    server: https://127.0.0.1:6443/\n") =>
  [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "- name: a",
    "  cluster:",
    cluster.trimEnd(),
    "- name: b",
    "  cluster:",
    "    server: https://b.example:443",
    "users:",
    "- name: u",
    "  user:",
    user.trimEnd(),
    "contexts:",
    "- name: ctx-a",
    "  context: { cluster: a, user: u }",
    "- name: ctx-b",
    "  context: { cluster: b, user: u }",
    "current-context: ctx-a",
    ""
  ].join("\n")

describe("Connection.resolve", () => {
  it.effect("reads the cluster, CA and client certificate of the current context", () =>
    Effect.gen(function* () {
      const path = kubeconfig({
        kubeconfig: config(
          `    client-certificate-data: ${b64("CERT")}\n    client-key: key.pem`,
          `    server: https://127.0.0.1:6443/\n    certificate-authority: ca.pem\n    tls-server-name: api.local`
        ),
        "ca.pem": "CA",
        "key.pem": "KEY"
      })
      const connection = yield* Connection.resolve({ _tag: "File", path })
      assert.strictEqual(connection.server, "https://127.0.0.1:6443")
      assert.strictEqual(String(connection.tls.ca), "CA")
      assert.strictEqual(String(connection.tls.cert), "CERT")
      assert.strictEqual(String(connection.tls.key), "KEY")
      assert.strictEqual(connection.tls.servername, "api.local")
      assert.strictEqual(connection.tls.rejectUnauthorized, undefined)
      assert.deepStrictEqual(yield* connection.headers, {})
    })
  )

  it.effect("takes the context asked for, and fails on one that names no cluster", () =>
    Effect.gen(function* () {
      const path = kubeconfig({ kubeconfig: config("    token: t") })
      const connection = yield* Connection.resolve({ _tag: "File", path, context: "ctx-b" })
      assert.strictEqual(connection.server, "https://b.example:443")
      const error = yield* Effect.flip(Connection.resolve({ _tag: "File", path, context: "nope" }))
      assert.strictEqual(error._tag, "ConfigError")
      assert.include(error.message, "names no current cluster")
    })
  )

  it.effect("sends a token, basic auth and impersonation as headers", () =>
    Effect.gen(function* () {
      const withToken = yield* Connection.resolve({
        _tag: "File",
        path: kubeconfig({ kubeconfig: config("    token: secret\n    as: jane") })
      })
      assert.deepStrictEqual(yield* withToken.headers, { Authorization: "Bearer secret", "Impersonate-User": "jane" })
      const basic = yield* Connection.resolve({
        _tag: "File",
        path: kubeconfig({ kubeconfig: config("    username: admin\n    password: pw") })
      })
      assert.deepStrictEqual(yield* basic.headers, { Authorization: `Basic ${b64("admin:pw")}` })
    })
  )

  it.effect("re-reads a token file once the cached headers are 30 s old", () =>
    Effect.gen(function* () {
      const path = kubeconfig({ kubeconfig: config("    tokenFile: token"), token: "first\n" })
      const connection = yield* Connection.resolve({ _tag: "File", path })
      assert.deepStrictEqual(yield* connection.headers, { Authorization: "Bearer first" })
      writeFileSync(join(path, "..", "token"), "second")
      assert.deepStrictEqual(yield* connection.headers, { Authorization: "Bearer first" })
      yield* TestClock.adjust("31 seconds")
      assert.deepStrictEqual(yield* connection.headers, { Authorization: "Bearer second" })
    })
  )

  it.effect("refuses plain HTTP unless TLS verification is explicitly skipped", () =>
    Effect.gen(function* () {
      const http = "    server: http://127.0.0.1:8080\n"
      const error = yield* Effect.flip(
        Connection.resolve({ _tag: "File", path: kubeconfig({ kubeconfig: config("    token: t", http) }) })
      )
      assert.include(error.message, "HTTP protocol is not allowed")
      const insecure = yield* Connection.resolve({
        _tag: "File",
        path: kubeconfig({ kubeconfig: config("    token: t", `${http}    insecure-skip-tls-verify: true\n`) })
      })
      assert.strictEqual(insecure.server, "http://127.0.0.1:8080")
      assert.strictEqual(insecure.tls.rejectUnauthorized, false)
    })
  )

  it.effect("fails with a ConfigError on a missing or malformed file", () =>
    Effect.gen(function* () {
      const missing = yield* Effect.flip(Connection.resolve({ _tag: "File", path: "/nonexistent/kubeconfig" }))
      assert.include(missing.message, "cannot load Kubernetes configuration")
      const malformed = yield* Effect.flip(
        Connection.resolve({ _tag: "File", path: kubeconfig({ kubeconfig: "clusters: 3\n" }) })
      )
      assert.include(malformed.message, "clusters is not a list")
    })
  )

  it.effect("runs an exec credential plugin through @kubernetes/client-node", () =>
    Effect.gen(function* () {
      const credential = JSON.stringify({
        apiVersion: "client.authentication.k8s.io/v1",
        kind: "ExecCredential",
        status: { token: "from-exec" }
      })
      const path = kubeconfig({
        kubeconfig: config(
          [
            "    exec:",
            "      apiVersion: client.authentication.k8s.io/v1",
            `      command: ${JSON.stringify(process.execPath)}`,
            `      args: ["-e", ${JSON.stringify(`console.log(${JSON.stringify(credential)})`)}]`,
            "      interactiveMode: Never"
          ].join("\n"),
          `    server: https://127.0.0.1:6443\n    certificate-authority-data: ${b64("CA")}`
        )
      })
      const connection = yield* Connection.resolve({ _tag: "File", path })
      assert.strictEqual(connection.server, "https://127.0.0.1:6443")
      assert.strictEqual(String(connection.tls.ca), "CA")
      assert.strictEqual((yield* connection.headers).Authorization, "Bearer from-exec")
    })
  )
})
