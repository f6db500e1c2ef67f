import type { Retention } from "@db-backup-operator/backup-api"
import { Context, Duration, Layer } from "effect"
import type { AccessSettings } from "./access.ts"

/** How the backup controller runs backups; set by the operator's flags. */
export interface BackupSettingsShape extends AccessSettings {
  /** Image of the backup Job's container (runs `db-backup-runner`). */
  readonly runnerImage: string
  /** Passed to runners as GCS_ENDPOINT (emulators, private endpoints). */
  readonly gcsEndpoint: string | undefined
  /**
   * Lets a server ask for the password in cleartext (LDAP, PAM, RADIUS, cloud
   * IAM tokens), and only over an encrypted connection (`sslMode` require or
   * stricter). Off: libpq refuses such a request whatever the mode.
   */
  readonly allowCleartextPassword: boolean
  /** Time between runs of a resource without `spec.schedule` (the original operator's 5 minutes). */
  readonly interval: Duration.Duration
  /** The retention of resources without `spec.retention`; undefined keeps every backup. */
  readonly defaultRetention: Retention.Retention | undefined
  /** At most this many backups run at once (`--max-concurrent-backups`). */
  readonly maxConcurrentBackups: number
  /** At most this many backups of one database server (`host:port`) run at once (`--max-concurrent-backups-per-server`). */
  readonly maxConcurrentBackupsPerServer: number
  /** Kills a run that takes longer (Job `activeDeadlineSeconds`). */
  readonly activeDeadlineSeconds: number
  /** Pod retries within one run (Job `backoffLimit`). */
  readonly backoffLimit: number
  /** Container resources of the runner. */
  readonly resources: {
    readonly requests: Readonly<Record<string, string>>
    readonly limits: Readonly<Record<string, string>>
  }
  /** Non-root user the runner runs as. */
  readonly runAsUser: number
}

export const defaults: BackupSettingsShape = {
  runnerImage: "db-backup-runner:latest",
  gcsEndpoint: undefined,
  allowedNamespaces: [],
  requireSecretOptIn: false,
  minSslMode: "disable",
  allowCleartextPassword: false,
  interval: Duration.minutes(5),
  defaultRetention: undefined,
  maxConcurrentBackups: 10,
  maxConcurrentBackupsPerServer: 2,
  activeDeadlineSeconds: 3600,
  backoffLimit: 1,
  resources: { requests: { cpu: "100m", memory: "128Mi" }, limits: { memory: "512Mi" } },
  runAsUser: 65532
}

export class BackupSettings extends Context.Service<BackupSettings, BackupSettingsShape>()(
  "@db-backup-operator/backup/BackupSettings"
) {
  /**
   * @example
   * ```ts
   * BackupSettings.layer({ runnerImage: "registry.example.com/db-backup-runner:1.0.0", allowedNamespaces: [{ from: "team-a", to: "db" }] })
   * ```
   */
  static readonly layer = (overrides: Partial<BackupSettingsShape>): Layer.Layer<BackupSettings> =>
    Layer.succeed(BackupSettings, { ...defaults, ...overrides })
}
