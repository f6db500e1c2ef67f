import { accessSync, readFileSync } from "node:fs"
import { isIPv6 } from "node:net"
import { delimiter, dirname, isAbsolute, join } from "node:path"
import { Clock, Data, Effect, Ref } from "effect"
import { parse as parseYaml } from "yaml"

/** Where the cluster's credentials come from. */
export type ConfigSource =
  /** `KUBECONFIG`, then `~/.kube/config`, then the in-cluster service account. */
  | { readonly _tag: "Default"; readonly context?: string }
  /** One kubeconfig file. */
  | { readonly _tag: "File"; readonly path: string; readonly context?: string }
  /** The Pod's service account (`/var/run/secrets/kubernetes.io/serviceaccount`). */
  | { readonly _tag: "InCluster" }

/** The configuration could not be loaded or names no cluster. */
export class ConfigError extends Data.TaggedError("ConfigError")<{ readonly message: string }> {}

/** TLS material for the connection to the API server. */
export interface Tls {
  readonly ca?: string | Buffer
  readonly cert?: string | Buffer
  readonly key?: string | Buffer
  readonly rejectUnauthorized?: boolean
  readonly servername?: string
}

/**
 * A resolved connection: the server URL, TLS material, and a source of auth
 * headers (bearer tokens from files or exec plugins rotate, so they are re-read).
 */
export interface Connection {
  readonly server: string
  readonly tls: Tls
  readonly headers: Effect.Effect<Readonly<Record<string, string>>, ConfigError>
}

// Tokens in files (projected service-account tokens, kubeconfig tokenFile) rotate; re-read them this often.
const headerTtlMillis = 30_000

const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// ---------------------------------------------------------------- kubeconfig, read here

/** A kubeconfig entry (`clusters[]`, `users[]`, `contexts[]`) and the directory of the file it came from. */
interface Entry {
  readonly name: string
  readonly body: Record<string, unknown>
  readonly dir: string
}

/** What a kubeconfig (one file or several merged) says, before anything is resolved. */
interface Kubeconfig {
  readonly currentContext: string | undefined
  readonly clusters: ReadonlyMap<string, Entry>
  readonly users: ReadonlyMap<string, Entry>
  readonly contexts: ReadonlyMap<string, Entry>
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const stringOf = (body: Record<string, unknown>, key: string): string | undefined => {
  const value = body[key]
  return typeof value === "string" && value.length > 0 ? value : undefined
}

const fileExists = (path: string): boolean => {
  try {
    accessSync(path)
    return true
  } catch {
    return false
  }
}

/**
 * Reads kubeconfig files and merges them as kubectl does: the first file to
 * name a cluster, user or context wins, and so does the first `current-context`.
 * Throws (with a readable message) when a file cannot be read or parsed.
 */
const readKubeconfig = (files: ReadonlyArray<string>): Kubeconfig => {
  let currentContext: string | undefined
  const clusters = new Map<string, Entry>()
  const users = new Map<string, Entry>()
  const contexts = new Map<string, Entry>()
  for (const file of files) {
    const document: unknown = parseYaml(readFileSync(file, "utf8"))
    if (document === null || document === undefined) continue
    if (!isRecord(document)) throw new Error(`${file} is not a kubeconfig (not a mapping)`)
    currentContext ??= stringOf(document, "current-context")
    const dir = dirname(file)
    for (const [list, key, into] of [
      ["clusters", "cluster", clusters],
      ["users", "user", users],
      ["contexts", "context", contexts]
    ] as const) {
      const items = document[list]
      if (items === undefined || items === null) continue
      if (!Array.isArray(items)) throw new Error(`${file}: ${list} is not a list`)
      items.forEach((item: unknown, i) => {
        const name = isRecord(item) ? stringOf(item, "name") : undefined
        if (name === undefined || !isRecord(item)) throw new Error(`${file}: ${list}[${i}].name is missing`)
        const body = item[key] ?? {}
        if (!isRecord(body)) throw new Error(`${file}: ${list}[${i}].${key} is not a mapping`)
        if (!into.has(name)) into.set(name, { name, body, dir })
      })
    }
  }
  return { currentContext, clusters, users, contexts }
}

/** The files of a source, or `InCluster`, in the order `@kubernetes/client-node`'s `loadFromDefault` looks. */
const locate = (source: ConfigSource): ReadonlyArray<string> | "InCluster" => {
  if (source._tag === "InCluster") return "InCluster"
  if (source._tag === "File") return [source.path]
  const fromEnv = (process.env.KUBECONFIG ?? "").split(delimiter).filter((file) => file.length > 0)
  if (fromEnv.length > 0) return fromEnv
  const home = process.env.HOME
  if (home !== undefined && home.length > 0 && fileExists(join(home, ".kube", "config"))) {
    return [join(home, ".kube", "config")]
  }
  if (fileExists(join(serviceAccountDir, "token"))) return "InCluster"
  throw new Error(
    "no kubeconfig: KUBECONFIG is unset, ~/.kube/config does not exist, and this is not a Pod with a service account"
  )
}

const absolute = (dir: string, file: string) => (isAbsolute(file) ? file : join(dir, file))

/** `<key>` (a file, relative to the kubeconfig) or `<key>-data` (base64), as kubectl reads them. */
const material = (entry: Entry, key: string): Buffer | undefined => {
  const file = stringOf(entry.body, key)
  if (file !== undefined) return readFileSync(absolute(entry.dir, file))
  const data = stringOf(entry.body, `${key}-data`)
  return data === undefined ? undefined : Buffer.from(data, "base64")
}

/** A plan for one connection: where, with which TLS, and how to compute the auth headers (may throw). */
interface Plan {
  readonly server: string
  readonly tls: Tls
  readonly headers: () => Record<string, string>
}

/** The auth plugins only `@kubernetes/client-node` implements (exec credentials, OIDC, cloud auth providers). */
const needsClientNode = (user: Entry | undefined): boolean =>
  user !== undefined && (user.body.exec !== undefined || user.body["auth-provider"] !== undefined)

const readToken = (file: string): string => readFileSync(file, "utf8").trim()

const inClusterPlan = (): Plan => {
  const host = process.env.KUBERNETES_SERVICE_HOST
  const port = process.env.KUBERNETES_SERVICE_PORT
  if (host === undefined || host.length === 0 || port === undefined || port.length === 0) {
    throw new Error("not in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set")
  }
  // As @kubernetes/client-node: these ports mean plain HTTP, which never carries the token.
  if (port === "80" || port === "8080" || port === "8001") {
    throw new Error(`HTTP protocol is not allowed when skipTLSVerify is not set or false (port ${port})`)
  }
  const tokenFile = join(serviceAccountDir, "token")
  const ca = readFileSync(join(serviceAccountDir, "ca.crt"))
  readToken(tokenFile) // fail now, not at the first request, when there is none
  return {
    server: `https://${isIPv6(host) ? `[${host}]` : host}:${port}`,
    tls: { ca },
    headers: () => ({ Authorization: `Bearer ${readToken(tokenFile)}` })
  }
}

/** Returns `undefined` when the user needs an auth plugin, which `@kubernetes/client-node` handles. */
const kubeconfigPlan = (config: Kubeconfig, context: string | undefined): Plan | undefined => {
  const contextName = context ?? config.currentContext
  const contextEntry = contextName === undefined ? undefined : config.contexts.get(contextName)
  const clusterName = contextEntry === undefined ? undefined : stringOf(contextEntry.body, "cluster")
  const cluster = clusterName === undefined ? undefined : config.clusters.get(clusterName)
  const server = cluster === undefined ? undefined : stringOf(cluster.body, "server")
  if (cluster === undefined || server === undefined) {
    throw new NoCluster()
  }
  const userName = contextEntry === undefined ? undefined : stringOf(contextEntry.body, "user")
  const user = userName === undefined ? undefined : config.users.get(userName)
  if (needsClientNode(user)) return undefined
  const insecure = cluster.body["insecure-skip-tls-verify"] === true
  if (server.startsWith("http:") && !insecure) {
    throw new Error("HTTP protocol is not allowed when skipTLSVerify is not set or false")
  }
  const tls: { -readonly [K in keyof Tls]: Tls[K] } = {}
  const ca = material(cluster, "certificate-authority")
  if (ca !== undefined) tls.ca = ca
  if (insecure) tls.rejectUnauthorized = false
  const servername = stringOf(cluster.body, "tls-server-name")
  if (servername !== undefined) tls.servername = servername
  const fixed: Record<string, string> = {}
  let tokenFile: string | undefined
  if (user !== undefined) {
    const cert = material(user, "client-certificate")
    if (cert !== undefined) tls.cert = cert
    const key = material(user, "client-key")
    if (key !== undefined) tls.key = key
    const username = stringOf(user.body, "username")
    if (username !== undefined) {
      const password = stringOf(user.body, "password") ?? ""
      fixed.Authorization = `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`
    }
    const token = stringOf(user.body, "token")
    const file = stringOf(user.body, "tokenFile") ?? stringOf(user.body, "token-file")
    if (token !== undefined) fixed.Authorization = `Bearer ${token}`
    else if (file !== undefined) {
      tokenFile = absolute(user.dir, file)
      readToken(tokenFile) // fail now, not at the first request, when it is missing
    }
    const impersonate = stringOf(user.body, "as")
    if (impersonate !== undefined) fixed["Impersonate-User"] = impersonate
  }
  return {
    server: server.replace(/\/+$/u, ""),
    tls,
    headers: () =>
      tokenFile === undefined ? { ...fixed } : { ...fixed, Authorization: `Bearer ${readToken(tokenFile)}` }
  }
}

class NoCluster extends Error {}

/** @internal */
export const noCluster = () => new ConfigError({ message: "the Kubernetes configuration names no current cluster" })

/** @internal */
export const loadError = (cause: unknown) =>
  cause instanceof NoCluster
    ? noCluster()
    : new ConfigError({ message: `cannot load Kubernetes configuration: ${String(cause)}` })

/** @internal */
export const authError = (cause: unknown) =>
  new ConfigError({ message: `cannot authenticate to the API server: ${String(cause)}` })

// ---------------------------------------------------------------- auth plugins, through @kubernetes/client-node

// Imported only for a user with `exec` or `auth-provider`: the library and its
// dependencies cost more start-up time and memory than the rest of the client.
// A module of our own (not the package itself) is imported dynamically, so a
// bundler still keeps only what it uses of the library.
const viaClientNode = (source: ConfigSource) =>
  Effect.tryPromise({ try: () => import("./clientNodeAuth.ts"), catch: loadError }).pipe(
    Effect.flatMap((auth) => auth.resolveWithClientNode(source))
  )

// ---------------------------------------------------------------- resolve

/**
 * Resolves a {@link ConfigSource} into a {@link Connection}. Reads the
 * kubeconfig itself (clusters, contexts, CA and client certificates, tokens,
 * token files, basic auth, impersonation) and the in-cluster service account;
 * only a user with an auth plugin (`exec`, `auth-provider`: OIDC, cloud
 * providers) loads `@kubernetes/client-node`, which implements those.
 *
 * @example
 * ```ts
 * const connection = yield* Connection.resolve({ _tag: "File", path: "/tmp/env/kubeconfig" })
 * console.log(connection.server)
 * ```
 */
export const resolve = Effect.fn("Connection.resolve")(function* (source: ConfigSource) {
  const plan = yield* Effect.try({
    try: () => {
      const located = locate(source)
      if (located === "InCluster") return inClusterPlan()
      return kubeconfigPlan(readKubeconfig(located), source._tag === "InCluster" ? undefined : source.context)
    },
    catch: loadError
  })
  const resolved =
    plan === undefined
      ? yield* viaClientNode(source)
      : {
          server: plan.server,
          tls: plan.tls,
          initial: yield* Effect.try({ try: plan.headers, catch: authError }),
          refresh: Effect.try({ try: plan.headers, catch: authError })
        }
  // Auth plugins are asked on every request: the library caches their credentials until each
  // one's own expiry, which a fixed TTL here would overrun (an expired credential sent for up to
  // the TTL). Files are re-read every headerTtlMillis.
  const ttlMillis = plan === undefined ? 0 : headerTtlMillis
  const cached = yield* Ref.make({ headers: resolved.initial, at: yield* Clock.currentTimeMillis })
  const headers = Effect.gen(function* () {
    const now = yield* Clock.currentTimeMillis
    const current = yield* Ref.get(cached)
    if (now - current.at < ttlMillis) return current.headers
    const fresh = yield* resolved.refresh
    yield* Ref.set(cached, { headers: fresh, at: now })
    return fresh
  })
  const connection: Connection = { server: resolved.server, tls: resolved.tls, headers }
  return connection
})
