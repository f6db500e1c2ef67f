import { hostname } from "node:os"
import { defaultWorkers } from "@db-backup-operator/backup"
import type { Connection } from "@db-backup-operator/kube"
import type { Manager } from "@db-backup-operator/operator"
import { Config, Effect, Option } from "effect"
import { CliError, Command, Flag } from "effect/cli"
import {
  type OperatorConfig,
  parseAddress,
  parseCount,
  parseInterval,
  parseLeaderElectionTiming,
  parseList,
  parseNamespacePairs,
  parseRetention,
  parseSslMode
} from "./OperatorConfig.ts"
import { runOperator } from "./operator.ts"

// Every flag falls back to an environment variable, so a Deployment can use either.
const text = (name: string, env: string, description: string) =>
  Flag.String(name).pipe(
    Flag.withDescription(`${description} [env ${env}]`),
    Flag.withFallbackConfig(Config.String(env))
  )

const optionalText = (name: string, env: string, description: string) =>
  text(name, env, description).pipe(Flag.optional)

const withDefault = (name: string, env: string, description: string, fallback: string) =>
  text(name, env, `${description} (default ${fallback})`).pipe(Flag.withDefault(fallback))

const invalid = (flag: string, value: string, expected: string) =>
  new CliError.UserError({ cause: new Error(`--${flag}: "${value}" is not ${expected}`) })

/**
 * What a resource without `spec.retention` keeps: the last two hours at the
 * default 5-minute pace, then one a day for a week, one a week for five weeks
 * and one a month for a year (at most 48 backups), so a resource written for
 * the original no longer grows its bucket forever.
 */
export const defaultRetention = "keepLast=24,keepDaily=7,keepWeekly=5,keepMonthly=12"

const flags = {
  kubeconfig: optionalText("kubeconfig", "KUBECONFIG", "kubeconfig file (default: ~/.kube/config, then in-cluster)"),
  namespaces: optionalText("namespaces", "WATCH_NAMESPACES", "comma-separated namespaces to watch (default: all)"),
  allowedNamespaces: withDefault(
    "allowed-namespaces",
    "ALLOWED_NAMESPACES",
    "comma-separated SOURCE:TARGET pairs: resources in SOURCE may run their Jobs, with a Secret that opts in, in TARGET",
    ""
  ),
  requireSecretOptIn: withDefault(
    "require-secret-opt-in",
    "REQUIRE_SECRET_OPT_IN",
    "every password Secret must list the backups that may use it (annotation backup.csyeteam03.xyz/usable-by), even in their own namespace: true or false",
    "false"
  ),
  minSslMode: withDefault(
    "min-ssl-mode",
    "MIN_SSL_MODE",
    "weakest spec.sslMode accepted (disable, allow, prefer, require, verify-ca, verify-full); also the mode of resources that set none, when stricter than prefer",
    "disable"
  ),
  allowCleartextPassword: withDefault(
    "allow-cleartext-password",
    "ALLOW_CLEARTEXT_PASSWORD",
    "let a server ask for the password in cleartext (LDAP, PAM, RADIUS, IAM tokens), only when spec.sslMode is require or stricter: true or false",
    "false"
  ),
  runnerImage: withDefault("runner-image", "RUNNER_IMAGE", "image of backup Jobs", "db-backup-runner:latest"),
  gcsEndpoint: optionalText(
    "gcs-endpoint",
    "GCS_ENDPOINT",
    "GCS endpoint passed to runners (emulators, private endpoints)"
  ),
  leaderElect: withDefault(
    "leader-elect",
    "LEADER_ELECT",
    "campaign for leadership on a Lease: true or false",
    "false"
  ),
  leaderElectionNamespace: withDefault(
    "leader-election-namespace",
    "POD_NAMESPACE",
    "namespace of the leader-election Lease",
    "default"
  ),
  leaderElectLeaseDuration: withDefault(
    "leader-elect-lease-duration",
    "LEADER_ELECT_LEASE_DURATION",
    "how long a standby waits, after the leader's last renewal of the Lease, before it takes the Lease over; longer than the renew deadline",
    "15 seconds"
  ),
  leaderElectRenewDeadline: withDefault(
    "leader-elect-renew-deadline",
    "LEADER_ELECT_RENEW_DEADLINE",
    "how long the leader keeps retrying to renew the Lease before it stops leading and exits; more than 1.2 x the retry period",
    "10 seconds"
  ),
  leaderElectRetryPeriod: withDefault(
    "leader-elect-retry-period",
    "LEADER_ELECT_RETRY_PERIOD",
    "time between attempts to acquire or renew the Lease",
    "2 seconds"
  ),
  metricsAddress: withDefault("metrics-bind-address", "METRICS_BIND_ADDRESS", "/metrics address, 0 disables", ":8080"),
  healthAddress: withDefault(
    "health-probe-bind-address",
    "HEALTH_PROBE_BIND_ADDRESS",
    "/healthz and /readyz address, 0 disables",
    ":8081"
  ),
  backupInterval: withDefault(
    "backup-interval",
    "BACKUP_INTERVAL",
    "time between runs of a resource without spec.schedule",
    "5 minutes"
  ),
  defaultRetention: withDefault(
    "default-retention",
    "DEFAULT_RETENTION",
    "what resources without spec.retention keep after each successful run (the rest is deleted), or none to keep everything",
    defaultRetention
  ),
  maxConcurrentBackups: withDefault(
    "max-concurrent-backups",
    "MAX_CONCURRENT_BACKUPS",
    "backups running at once, in all; a run over the limit waits (condition Scheduled=False)",
    "10"
  ),
  maxConcurrentBackupsPerServer: withDefault(
    "max-concurrent-backups-per-server",
    "MAX_CONCURRENT_BACKUPS_PER_SERVER",
    "backups running at once against one database server (dbHost:dbPort)",
    "2"
  ),
  backupWorkers: withDefault(
    "backup-workers",
    "BACKUP_WORKERS",
    "backup resources reconciled at once (each pass mostly waits on the API server)",
    String(defaultWorkers)
  ),
  kubeApiQps: withDefault(
    "kube-api-qps",
    "KUBE_API_QPS",
    "requests per second to the API server, on average (watches not counted)",
    "50"
  ),
  kubeApiBurst: withDefault(
    "kube-api-burst",
    "KUBE_API_BURST",
    "requests to the API server allowed at once above --kube-api-qps; at least --kube-api-qps",
    "100"
  )
}

type Raw = {
  readonly [K in keyof typeof flags]: (typeof flags)[K] extends Flag.Flag<infer A> ? A : never
}

/** Validates the raw flag values into an {@link OperatorConfig}, with one clear message per mistake. */
export const toConfig = (raw: Raw): Effect.Effect<OperatorConfig, CliError.UserError> =>
  Effect.gen(function* () {
    const metricsAddress = parseAddress(raw.metricsAddress)
    if (metricsAddress === undefined) return yield* invalid("metrics-bind-address", raw.metricsAddress, "HOST:PORT")
    const healthAddress = parseAddress(raw.healthAddress)
    if (healthAddress === undefined) return yield* invalid("health-probe-bind-address", raw.healthAddress, "HOST:PORT")
    const backupInterval = parseInterval(raw.backupInterval)
    if (backupInterval === undefined)
      return yield* invalid("backup-interval", raw.backupInterval, "a duration like '5 minutes'")
    for (const [flag, value] of [
      ["leader-elect", raw.leaderElect],
      ["require-secret-opt-in", raw.requireSecretOptIn],
      ["allow-cleartext-password", raw.allowCleartextPassword]
    ] as const) {
      if (value !== "true" && value !== "false") return yield* invalid(flag, value, "true or false")
    }
    const timing = parseLeaderElectionTiming({
      leaseDuration: raw.leaderElectLeaseDuration,
      renewDeadline: raw.leaderElectRenewDeadline,
      retryPeriod: raw.leaderElectRetryPeriod
    })
    if ("invalid" in timing) return yield* invalid(timing.invalid.flag, timing.invalid.value, timing.invalid.expected)
    const allowed = parseNamespacePairs(raw.allowedNamespaces)
    if ("invalid" in allowed) {
      return yield* invalid(
        "allowed-namespaces",
        allowed.invalid,
        "SOURCE:TARGET (resources in namespace SOURCE may use namespace TARGET), e.g. team-a:db"
      )
    }
    const minSslMode = parseSslMode(raw.minSslMode)
    if (minSslMode === undefined) {
      return yield* invalid(
        "min-ssl-mode",
        raw.minSslMode,
        "one of disable, allow, prefer, require, verify-ca, verify-full"
      )
    }
    const retention = parseRetention(raw.defaultRetention)
    if (retention === undefined) {
      return yield* invalid(
        "default-retention",
        raw.defaultRetention,
        "none, or RULE=VALUE,... with rules keepLast, keepHourly, keepDaily, keepWeekly, keepMonthly, keepYearly (1 or more) and maxAge (such as 30d), e.g. keepDaily=7,keepWeekly=4"
      )
    }
    const maxConcurrentBackups = parseCount(raw.maxConcurrentBackups)
    if (maxConcurrentBackups === undefined)
      return yield* invalid("max-concurrent-backups", raw.maxConcurrentBackups, "a whole number from 1")
    const maxConcurrentBackupsPerServer = parseCount(raw.maxConcurrentBackupsPerServer)
    if (maxConcurrentBackupsPerServer === undefined) {
      return yield* invalid(
        "max-concurrent-backups-per-server",
        raw.maxConcurrentBackupsPerServer,
        "a whole number from 1"
      )
    }
    const backupWorkers = parseCount(raw.backupWorkers)
    if (backupWorkers === undefined) return yield* invalid("backup-workers", raw.backupWorkers, "a whole number from 1")
    const qps = parseCount(raw.kubeApiQps)
    if (qps === undefined) return yield* invalid("kube-api-qps", raw.kubeApiQps, "a whole number from 1")
    const burst = parseCount(raw.kubeApiBurst)
    if (burst === undefined || burst < qps) {
      return yield* invalid("kube-api-burst", raw.kubeApiBurst, `a whole number from --kube-api-qps (${qps})`)
    }
    const namespaces = Option.map(raw.namespaces, parseList)
    return {
      kubeconfig: Option.getOrUndefined(raw.kubeconfig),
      namespaces: Option.isSome(namespaces) && namespaces.value.length > 0 ? namespaces.value : undefined,
      allowedNamespaces: allowed.pairs,
      requireSecretOptIn: raw.requireSecretOptIn === "true",
      minSslMode,
      allowCleartextPassword: raw.allowCleartextPassword === "true",
      runnerImage: raw.runnerImage,
      gcsEndpoint: Option.getOrUndefined(raw.gcsEndpoint),
      leaderElect: raw.leaderElect === "true",
      leaderElectionNamespace: raw.leaderElectionNamespace,
      leaderElectionTiming: timing.timing,
      metricsAddress,
      healthAddress,
      backupInterval,
      defaultRetention: retention.retention,
      maxConcurrentBackups,
      maxConcurrentBackupsPerServer,
      backupWorkers,
      kubeApi: { qps, burst },
      instance: process.env.POD_NAME ?? hostname()
    }
  })

/** `db-backup-operator [flags]`: runs both reconcilers until SIGTERM. */
export const command: Command.Command<
  "db-backup-operator",
  Raw,
  Record<string, never>,
  Manager.ManagerError | Connection.ConfigError | CliError.UserError,
  never
> = Command.make("db-backup-operator", flags, (raw) => Effect.flatMap(toConfig(raw), runOperator)).pipe(
  Command.withDescription("Backs up PostgreSQL schemas to object storage through Kubernetes Jobs.")
)
