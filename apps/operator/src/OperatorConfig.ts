import { Duration } from "effect"

/** Everything the operator binary is configured with (flags or their env vars). */
export interface OperatorConfig {
  /** Kubeconfig file; absent: `KUBECONFIG`, `~/.kube/config`, then in-cluster. */
  readonly kubeconfig: string | undefined
  /** Namespaces to watch; absent: all. */
  readonly namespaces: ReadonlyArray<string> | undefined
  /** Namespaces resources may point their Jobs and Secrets to besides their own. */
  readonly allowedNamespaces: ReadonlyArray<string>
  readonly runnerImage: string
  readonly gcsEndpoint: string | undefined
  readonly leaderElect: boolean
  readonly leaderElectionNamespace: string
  readonly metricsAddress: Address | false
  readonly healthAddress: Address | false
  readonly backupInterval: Duration.Duration
  /** Event `reportingInstance`, the Pod name in a cluster. */
  readonly instance: string
}

export interface Address {
  readonly host?: string
  readonly port: number
}

/**
 * `":8080"`, `"127.0.0.1:8080"`, `"[fd00::1]:8080"`, or `"0"`/`"false"` to
 * disable. The port follows the last colon, so an unbracketed IPv6 address
 * works too (`"fd00::1:8080"`): that is what `$(POD_IP):8080` becomes in a
 * Pod of an IPv6 cluster, where the chart cannot add the brackets.
 *
 * @example
 * ```ts
 * parseAddress("[::1]:8081") // { host: "::1", port: 8081 }
 * ```
 */
export const parseAddress = (text: string): Address | false | undefined => {
  if (text === "0" || text === "false" || text === "") return false
  const match = /^(?<host>.*):(?<port>\d{1,5})$/u.exec(text)
  const port = Number(match?.groups?.port)
  if (match === null || !Number.isInteger(port) || port > 65535) return undefined
  const written = match.groups?.host ?? ""
  const host = /^\[.*\]$/u.test(written) ? written.slice(1, -1) : written
  // A host with a colon must be IPv6 (brackets, if any, already gone): nothing else has one.
  if (/[[\]\s/]/u.test(host) || (host.includes(":") && !/^[0-9a-fA-F:.]+$/u.test(host))) return undefined
  return host === "" ? { port } : { host, port }
}

/** `"a,b , c"` -> `["a","b","c"]`; empty text -> `[]`. */
export const parseList = (text: string): ReadonlyArray<string> =>
  text
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item.length > 0)

export const parseInterval = (text: string): Duration.Duration | undefined => {
  const parsed = Duration.fromInput(text as Duration.Input)
  return parsed._tag === "Some" && Duration.toMillis(parsed.value) > 0 ? parsed.value : undefined
}
