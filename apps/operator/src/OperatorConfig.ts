import { Retention, Tls } from "@db-backup-operator/backup-api"
import { Duration, Schema } from "effect"

/** Everything the operator binary is configured with (flags or their env vars). */
export interface OperatorConfig {
  /** Kubeconfig file; absent: `KUBECONFIG`, `~/.kube/config`, then in-cluster. */
  readonly kubeconfig: string | undefined
  /** Namespaces to watch; absent: all. */
  readonly namespaces: ReadonlyArray<string> | undefined
  /** Cross-namespace references allowed: resources in `from` may use Jobs and Secrets in `to`. */
  readonly allowedNamespaces: ReadonlyArray<{ readonly from: string; readonly to: string }>
  /** Every password Secret must opt in, even in the resource's own namespace. */
  readonly requireSecretOptIn: boolean
  /** Resources asking for a weaker `sslMode` are refused. */
  readonly minSslMode: Tls.SslMode
  /** Servers may ask for the password in cleartext, over TLS only. */
  readonly allowCleartextPassword: boolean
  readonly runnerImage: string
  readonly gcsEndpoint: string | undefined
  readonly leaderElect: boolean
  readonly leaderElectionNamespace: string
  /** `--leader-elect-lease-duration`, `--leader-elect-renew-deadline`, `--leader-elect-retry-period`. */
  readonly leaderElectionTiming: LeaderElectionTiming
  readonly metricsAddress: Address | false
  readonly healthAddress: Address | false
  readonly backupInterval: Duration.Duration
  /** `--default-retention`: what resources without `spec.retention` keep; undefined keeps everything. */
  readonly defaultRetention: Retention.Retention | undefined
  /** `--max-concurrent-backups`: backups running at once, in all. */
  readonly maxConcurrentBackups: number
  /** `--max-concurrent-backups-per-server`: backups running at once against one database server. */
  readonly maxConcurrentBackupsPerServer: number
  /** `--backup-workers`: backup resources reconciled at once. */
  readonly backupWorkers: number
  /** `--kube-api-qps` and `--kube-api-burst`: the operator's requests to the API server, as client-go's rate limiter. */
  readonly kubeApi: { readonly qps: number; readonly burst: number }
  /** Event `reportingInstance`, the Pod name in a cluster. */
  readonly instance: string
}

/** The Lease's timings, as client-go's (and kube-controller-manager's flags of the same names). */
export interface LeaderElectionTiming {
  /** A standby takes the Lease over once it has not changed for this long. */
  readonly leaseDuration: Duration.Duration
  /** The leader stops leading (and the operator exits) when it could not renew for this long. */
  readonly renewDeadline: Duration.Duration
  /** Time between attempts to acquire or renew. */
  readonly retryPeriod: Duration.Duration
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

/**
 * A whole number from 1 up, as the concurrency flags take it.
 *
 * @example
 * ```ts
 * parseCount("4") // 4
 * parseCount("0") // undefined
 * ```
 */
export const parseCount = (text: string): number | undefined =>
  /^[1-9][0-9]{0,5}$/u.test(text.trim()) ? Number(text.trim()) : undefined

export const parseInterval = (text: string): Duration.Duration | undefined => {
  const parsed = Duration.fromInput(text as Duration.Input)
  return parsed._tag === "Some" && Duration.toMillis(parsed.value) > 0 ? parsed.value : undefined
}

/**
 * The three leader-election durations, checked as client-go checks them: the
 * leader must give up (renew deadline) before a standby may take over (lease
 * duration, at least a second, as the Lease stores whole seconds), and must
 * get more than one retry within its deadline (more than 1.2 x the retry
 * period, the retries' jitter). The first mistake is returned, naming its flag.
 *
 * @example
 * ```ts
 * parseLeaderElectionTiming({ leaseDuration: "15 seconds", renewDeadline: "10 seconds", retryPeriod: "2 seconds" })
 * // { timing: { leaseDuration: Duration.seconds(15), renewDeadline: Duration.seconds(10), retryPeriod: Duration.seconds(2) } }
 * ```
 */
export const parseLeaderElectionTiming = (text: {
  readonly leaseDuration: string
  readonly renewDeadline: string
  readonly retryPeriod: string
}):
  | { readonly timing: LeaderElectionTiming }
  | { readonly invalid: { readonly flag: string; readonly value: string; readonly expected: string } } => {
  const invalid = (flag: string, value: string, expected: string) => ({ invalid: { flag, value, expected } })
  const leaseDuration = parseInterval(text.leaseDuration)
  if (leaseDuration === undefined || Duration.toMillis(leaseDuration) < 1000)
    return invalid("leader-elect-lease-duration", text.leaseDuration, "a duration of at least 1 second")
  const renewDeadline = parseInterval(text.renewDeadline)
  if (renewDeadline === undefined)
    return invalid("leader-elect-renew-deadline", text.renewDeadline, "a duration like '10 seconds'")
  const retryPeriod = parseInterval(text.retryPeriod)
  if (retryPeriod === undefined)
    return invalid("leader-elect-retry-period", text.retryPeriod, "a duration like '2 seconds'")
  if (!Duration.isGreaterThan(leaseDuration, renewDeadline))
    return invalid(
      "leader-elect-renew-deadline",
      text.renewDeadline,
      `shorter than --leader-elect-lease-duration (${text.leaseDuration})`
    )
  if (Duration.toMillis(renewDeadline) <= Duration.toMillis(retryPeriod) * 1.2)
    return invalid(
      "leader-elect-retry-period",
      text.retryPeriod,
      `shorter than --leader-elect-renew-deadline (${text.renewDeadline}) divided by 1.2, so the leader retries more than once before it gives up`
    )
  return { timing: { leaseDuration, renewDeadline, retryPeriod } }
}

const namespacePattern = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/u

/**
 * `"team-a:db, team-b:db"` -> pairs; a malformed entry is returned as the
 * error, so the flag's message can name it. A bare namespace (this flag's
 * format before pairs) is refused: it let every namespace use that one.
 *
 * @example
 * ```ts
 * parseNamespacePairs("team-a:db") // { pairs: [{ from: "team-a", to: "db" }] }
 * parseNamespacePairs("db") // { invalid: "db" }
 * ```
 */
export const parseNamespacePairs = (
  text: string
): { readonly pairs: ReadonlyArray<{ readonly from: string; readonly to: string }> } | { readonly invalid: string } => {
  const pairs: Array<{ readonly from: string; readonly to: string }> = []
  for (const entry of parseList(text)) {
    const [from, to, ...rest] = entry.split(":").map((part) => part.trim())
    if (from === undefined || to === undefined || rest.length > 0) return { invalid: entry }
    if (!namespacePattern.test(from) || !namespacePattern.test(to)) return { invalid: entry }
    pairs.push({ from, to })
  }
  return { pairs }
}

/** `--min-ssl-mode`: one of libpq's sslmode values, or undefined. */
/**
 * `--default-retention`: `none` keeps every backup; otherwise rules as
 * `keepDaily=7,keepWeekly=4`. Undefined when the text is neither.
 *
 * @example
 * ```ts
 * parseRetention("keepLast=3,maxAge=30d") // { retention: { keepLast: 3, maxAge: "30d" } }
 * parseRetention("none") // { retention: undefined }
 * parseRetention("keepdaily=7") // undefined
 * ```
 */
export const parseRetention = (text: string): { readonly retention: Retention.Retention | undefined } | undefined => {
  if (text.trim() === "none") return { retention: undefined }
  const decoded = Schema.decodeUnknownOption(Retention.RetentionFromString)(text)
  return decoded._tag === "Some" ? { retention: decoded.value } : undefined
}

export const parseSslMode = (text: string): Tls.SslMode | undefined => (Schema.is(Tls.SslMode)(text) ? text : undefined)
