import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { TestClock } from "effect/testing"
import { vi } from "vitest"
import { Connection } from "../src/index.ts"

// Bearer tokens rotate under a running operator: the kubelet rewrites a projected
// service-account token when it is 80% through its life (for the shortest allowed,
// 10 minutes, that leaves 2 minutes before the old one expires), and exec plugins
// hand out credentials with an expiry. Connection.headers must pick up the new token
// in time without re-reading it on every request.
//
// Two clocks decide when a token is re-read: Connection caches headers on the
// Effect Clock, and @kubernetes/client-node's authenticators compare `Date.now()`.
// Both are moved together: the TestClock, and vitest's fake Date (only Date is
// faked, so timers, I/O and the exec plugin's child process run for real).

const dir = () => mkdtempSync(join(tmpdir(), "token-refresh-"))

const kubeconfig = (directory: string, user: object): string => {
  const path = join(directory, "kubeconfig")
  // JSON is YAML: the loader takes it as it is.
  writeFileSync(
    path,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "c", cluster: { server: "https://127.0.0.1:6443" } }],
      users: [{ name: "u", user }],
      contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
      "current-context": "x"
    })
  )
  return path
}

/** Fakes Date for the test's scope (starting at the TestClock's time) and restores it after. */
const fakeDate = Effect.acquireRelease(
  Effect.sync(() => {
    vi.useFakeTimers({ toFake: ["Date"] })
    vi.setSystemTime(0)
  }),
  () => Effect.sync(() => vi.useRealTimers())
)

/** Moves both clocks forward. */
const advance = (duration: Duration.Input) =>
  Effect.andThen(
    Effect.sync(() => vi.setSystemTime(Date.now() + Duration.toMillis(Duration.fromInputUnsafe(duration)))),
    TestClock.adjust(duration)
  )

/** Writes the ExecCredential the plugin hands out next (its expiry on the faked Date). */
const issueTo = (credential: string) => (token: string, expiresInSeconds: number) =>
  writeFileSync(
    credential,
    JSON.stringify({
      apiVersion: "client.authentication.k8s.io/v1",
      kind: "ExecCredential",
      status: { token, expirationTimestamp: new Date(Date.now() + expiresInSeconds * 1000).toISOString() }
    })
  )

/** A kubeconfig user whose exec plugin prints whatever credential was issued last. */
const execPlugin = (credential: string) => ({
  exec: {
    apiVersion: "client.authentication.k8s.io/v1",
    command: process.execPath,
    args: ["-e", "process.stdout.write(require('fs').readFileSync(process.argv[1]))", credential],
    interactiveMode: "Never"
  }
})

const authorization = (connection: Connection.Connection) =>
  Effect.map(connection.headers, (headers) => headers.Authorization)

describe("bearer token refresh", () => {
  /** A Connection whose kubeconfig user (`user(file)`) reads its token from a file that holds "first". */
  const tokenFileConnection = (user: (file: string) => Record<string, unknown>) =>
    Effect.gen(function* () {
      yield* fakeDate
      const directory = dir()
      const token = join(directory, "token")
      writeFileSync(token, "first")
      const connection = yield* Connection.resolve({ _tag: "File", path: kubeconfig(directory, user(token)) })
      return { token, connection }
    })

  it.effect("a projected service-account token rotated on disk is sent before the old one can expire", () =>
    Effect.gen(function* () {
      // A token file named by an auth provider, the form client-node's own in-cluster loader uses.
      // (The InCluster source reads /var/run/secrets/kubernetes.io/serviceaccount/token, a fixed
      // path a test cannot point at a file of its own.)
      const { token, connection } = yield* tokenFileConnection((file) => ({
        "auth-provider": { name: "tokenFile", config: { tokenFile: file } }
      }))
      assert.strictEqual(yield* authorization(connection), "Bearer first")

      writeFileSync(token, "second")
      // Cached between requests: a request does not cost a file read.
      assert.strictEqual(yield* authorization(connection), "Bearer first")
      yield* advance("1 second")
      assert.strictEqual(yield* authorization(connection), "Bearer first")

      // A request a second, as a busy controller makes them. Connection re-reads every 30 s,
      // client-node's file reader every 60 s: by 91 s after the last read the rotated token is
      // in use, well inside the kubelet's 2-minute margin.
      for (let second = 2; second <= 91; second++) {
        yield* advance("1 second")
        yield* authorization(connection)
      }
      assert.strictEqual(yield* authorization(connection), "Bearer second")
    })
  )

  /** A Connection whose kubeconfig user runs an exec plugin, first issued "first" valid for `seconds`. */
  const execConnection = (seconds: number) =>
    Effect.gen(function* () {
      yield* fakeDate
      const directory = dir()
      const credential = join(directory, "credential.json")
      const issue = issueTo(credential)
      issue("first", seconds)
      const connection = yield* Connection.resolve({
        _tag: "File",
        path: kubeconfig(directory, execPlugin(credential))
      })
      return { issue, connection }
    })

  it.effect("an exec plugin is run again once its credential expires", () =>
    Effect.gen(function* () {
      const { issue, connection } = yield* execConnection(120)
      assert.strictEqual(yield* authorization(connection), "Bearer first")

      // A new credential is available, but the current one is still valid: it stays in use.
      issue("second", 600)
      yield* advance("31 seconds")
      assert.strictEqual(yield* authorization(connection), "Bearer first")

      // Past the first credential's expiry (and past Connection's 30 s cache): the plugin runs again.
      yield* advance("90 seconds")
      assert.strictEqual(yield* authorization(connection), "Bearer second")
    })
  )

  // The library caches a plugin's credential until its expirationTimestamp; Connection must not
  // hold it longer (an expired credential is a 401, which the client does not retry).
  it.effect("never sends an exec credential past its expirationTimestamp", () =>
    Effect.gen(function* () {
      const { issue, connection } = yield* execConnection(10)
      assert.strictEqual(yield* authorization(connection), "Bearer first")
      issue("second", 600)
      yield* advance("11 seconds")
      assert.strictEqual(yield* authorization(connection), "Bearer second")
    })
  )

  // A kubeconfig user's `tokenFile` (client-go's field; @kubernetes/client-node 2.0.1 ignores it
  // and sends no Authorization header) is read by Connection itself, and again as it rotates.
  it.effect("a kubeconfig tokenFile is sent, and read again once rotated on disk", () =>
    Effect.gen(function* () {
      const { token, connection } = yield* tokenFileConnection((file) => ({ tokenFile: file }))
      assert.strictEqual(yield* authorization(connection), "Bearer first")
      writeFileSync(token, "second")
      // Within the same 91 s as the projected token above.
      yield* advance("91 seconds")
      assert.strictEqual(yield* authorization(connection), "Bearer second")
    })
  )
})
