import type { RequestOptions } from "node:https"
import { KubeConfig } from "@kubernetes/client-node"
import { Clock, Data, Effect, Ref } from "effect"

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

// Tokens from exec plugins and projected service-account files rotate; re-read them this often.
const headerTtlMillis = 30_000

const load = (source: ConfigSource): Effect.Effect<KubeConfig, ConfigError> =>
  Effect.try({
    try: () => {
      const config = new KubeConfig()
      if (source._tag === "InCluster") config.loadFromCluster()
      else if (source._tag === "File") config.loadFromFile(source.path)
      else config.loadFromDefault()
      if (source._tag !== "InCluster" && source.context !== undefined) config.setCurrentContext(source.context)
      return config
    },
    catch: (cause) => new ConfigError({ message: `cannot load Kubernetes configuration: ${String(cause)}` })
  })

const applyOptions = (config: KubeConfig): Effect.Effect<RequestOptions, ConfigError> =>
  Effect.tryPromise({
    try: async () => {
      const options: RequestOptions = {}
      await config.applyToHTTPSOptions(options)
      return options
    },
    catch: (cause) => new ConfigError({ message: `cannot authenticate to the API server: ${String(cause)}` })
  })

const headersOf = (options: RequestOptions): Record<string, string> => {
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(options.headers ?? {})) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(", ") : String(value)
  }
  if (options.auth !== undefined && options.auth !== null) {
    headers.Authorization = `Basic ${Buffer.from(options.auth).toString("base64")}`
  }
  return headers
}

const tlsOf = (options: RequestOptions): Tls => {
  const tls: { -readonly [K in keyof Tls]: Tls[K] } = {}
  if (typeof options.ca === "string" || Buffer.isBuffer(options.ca)) tls.ca = options.ca
  if (typeof options.cert === "string" || Buffer.isBuffer(options.cert)) tls.cert = options.cert
  if (typeof options.key === "string" || Buffer.isBuffer(options.key)) tls.key = options.key
  if (options.rejectUnauthorized !== undefined) tls.rejectUnauthorized = options.rejectUnauthorized
  if (options.servername !== undefined) tls.servername = options.servername
  return tls
}

/**
 * Resolves a {@link ConfigSource} into a {@link Connection}. Uses
 * `@kubernetes/client-node` for what it does well: kubeconfig parsing, client
 * certificates, tokens, exec plugins and the in-cluster service account.
 *
 * @example
 * ```ts
 * const connection = yield* Connection.resolve({ _tag: "File", path: "/tmp/env/kubeconfig" })
 * console.log(connection.server)
 * ```
 */
export const resolve = Effect.fn("Connection.resolve")(function* (source: ConfigSource) {
  const config = yield* load(source)
  const cluster = config.getCurrentCluster()
  if (cluster === null)
    return yield* new ConfigError({ message: "the Kubernetes configuration names no current cluster" })
  const initial = yield* applyOptions(config)
  const cached = yield* Ref.make({ headers: headersOf(initial), at: yield* Clock.currentTimeMillis })
  const headers = Effect.gen(function* () {
    const now = yield* Clock.currentTimeMillis
    const current = yield* Ref.get(cached)
    if (now - current.at < headerTtlMillis) return current.headers
    const fresh = headersOf(yield* applyOptions(config))
    yield* Ref.set(cached, { headers: fresh, at: now })
    return fresh
  })
  const connection: Connection = { server: cluster.server.replace(/\/+$/u, ""), tls: tlsOf(initial), headers }
  return connection
})
