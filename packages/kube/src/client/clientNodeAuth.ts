/**
 * The auth plugins of a kubeconfig user (`exec` credential plugins, OIDC and
 * the cloud `auth-provider`s) through `@kubernetes/client-node`, which
 * implements them. Connection.ts imports this module dynamically, and only for
 * such a user: the library and its dependencies would otherwise be loaded by
 * every process, in-cluster and plain-kubeconfig ones included.
 *
 * @internal
 * @module
 */
import type { RequestOptions } from "node:https"
import { KubeConfig } from "@kubernetes/client-node"
import { Effect } from "effect"
import { authError, type ConfigError, type ConfigSource, loadError, noCluster, type Tls } from "./Connection.ts"

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
    catch: loadError
  })

const applyOptions = (config: KubeConfig): Effect.Effect<RequestOptions, ConfigError> =>
  Effect.tryPromise({
    try: async () => {
      const options: RequestOptions = {}
      await config.applyToHTTPSOptions(options)
      return options
    },
    catch: authError
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
 * Loads `source` with `@kubernetes/client-node` and returns the server, the TLS
 * material, the first auth headers and how to compute them again (exec plugins
 * and OIDC tokens expire; the library caches and refreshes them).
 */
export const resolveWithClientNode = (source: ConfigSource) =>
  Effect.gen(function* () {
    const config = yield* load(source)
    const cluster = config.getCurrentCluster()
    if (cluster === null) return yield* noCluster()
    const initial = yield* applyOptions(config)
    return {
      server: cluster.server.replace(/\/+$/u, ""),
      tls: tlsOf(initial),
      initial: headersOf(initial),
      refresh: Effect.map(applyOptions(config), headersOf)
    }
  })
