import { type BackupDatabaseSchema, Tls } from "@db-backup-operator/backup-api"
import { credentialSecrets, type Storage } from "./storage.ts"

/**
 * What a backup resource may reference: the pure half of validation. It
 * decides, from the resource and the operator's settings alone, whether the
 * resource is refused, and which Secrets must be checked for their owner's
 * consent before a Job may use them. The controller does the one read per
 * Secret that this asks for ({@link consentProblem}).
 */

/**
 * The annotation a Secret opts in with: the backups that may use it, as a
 * comma-separated list of namespaces (`team-a`: every resource there) and
 * resources (`team-b/orders`).
 */
export const usableByAnnotation = "backup.csyeteam03.xyz/usable-by"

/** Resources in namespace `from` may run their Jobs, and use Secrets, in namespace `to`. */
export interface NamespacePair {
  readonly from: string
  readonly to: string
}

/** The operator-wide rules ({@link BackupSettingsShape} fields). */
export interface AccessSettings {
  /** Cross-namespace references the administrator allows. */
  readonly allowedNamespaces: ReadonlyArray<NamespacePair>
  /** Every Secret must opt in, even in the resource's own namespace. */
  readonly requireSecretOptIn: boolean
  /** Resources asking for a weaker `sslMode` are refused. */
  readonly minSslMode: Tls.SslMode
}

/** A Secret the resource wants its Job to use, named by the field that references it. */
export interface SecretUse {
  readonly field: string
  readonly namespace: string
  readonly name: string
}

/** The resource as the operator will run it, or why it will not. */
export type Access =
  | { readonly _tag: "Refused"; readonly reason: string; readonly message: string }
  | {
      readonly _tag: "Allowed"
      readonly jobNamespace: string
      /** What the runner connects with: the resource's mode, or the default raised to the minimum. */
      readonly sslMode: Tls.SslMode
      /** Secrets whose owner must consent (read their annotation before creating the Job). */
      readonly needConsent: ReadonlyArray<SecretUse>
    }

const refused = (reason: string, message: string): Access => ({ _tag: "Refused", reason, message })

/**
 * Decides what `backup` may do under `settings`, `storage` being where it
 * writes (its credentials' Secrets follow the password's rules).
 *
 * @example
 * ```ts
 * import type { BackupDatabaseSchema } from "@db-backup-operator/backup-api"
 * declare const backup: BackupDatabaseSchema // in team-a, its database in db
 * access(backup, { allowedNamespaces: [{ from: "team-a", to: "db" }], requireSecretOptIn: false, minSslMode: "disable" })
 * // { _tag: "Allowed", jobNamespace: "db", sslMode: "prefer", needConsent: [{ field: "spec.dbPasswordSecretName", namespace: "db", name: "backup-secret" }] }
 * ```
 */
/**
 * What {@link access} reads of a resource: its namespace and the fields that
 * reference namespaces, Secrets and TLS (a Restore gives the same fields of
 * the database it restores into).
 */
export interface AccessRequest {
  readonly metadata: { readonly namespace?: string | undefined }
  readonly spec: Pick<
    BackupDatabaseSchema["spec"],
    | "backupJobNamespace"
    | "dbPasswordSecretNamespace"
    | "dbPasswordSecretName"
    | "sslMode"
    | "sslRootCert"
    | "encryption"
  >
}

export const access = (backup: AccessRequest, settings: AccessSettings, storage?: Storage): Access => {
  const spec = backup.spec
  const namespace = backup.metadata.namespace ?? ""
  const jobNamespace = spec.backupJobNamespace ?? namespace
  const secretNamespace = spec.dbPasswordSecretNamespace ?? namespace
  for (const [field, target] of [
    ["backupJobNamespace", jobNamespace],
    ["dbPasswordSecretNamespace", secretNamespace]
  ] as const) {
    if (target !== namespace && !settings.allowedNamespaces.some((p) => p.from === namespace && p.to === target)) {
      return refused(
        "CrossNamespaceNotAllowed",
        `spec.${field} "${target}" is not this resource's namespace, and the operator does not allow resources in "${namespace}" to use "${target}" (--allowed-namespaces ${namespace}:${target})`
      )
    }
  }
  if (secretNamespace !== jobNamespace) {
    return refused(
      "SecretNamespaceMismatch",
      `the password Secret must be in the backup Job's namespace "${jobNamespace}" (a secretKeyRef cannot cross namespaces), not "${secretNamespace}"`
    )
  }
  if (spec.sslMode !== undefined && !Tls.isAtLeast(spec.sslMode, settings.minSslMode)) {
    return refused(
      "SslModeNotAllowed",
      `spec.sslMode "${spec.sslMode}" is weaker than the operator's minimum "${settings.minSslMode}" (--min-ssl-mode); use ${settings.minSslMode} or stricter`
    )
  }
  const sslMode = spec.sslMode ?? Tls.strictest(Tls.defaultSslMode, settings.minSslMode)
  // The CRD refuses an explicit verify-ca without a CA; a floor of verify-ca gets here instead.
  if (sslMode === "verify-ca" && spec.sslRootCert === undefined) {
    return refused(
      "SslRootCertRequired",
      `the operator's minimum sslMode verify-ca (--min-ssl-mode) applies to this resource, and verify-ca needs spec.sslRootCert (the CA that issued the server's certificate); set it, or set spec.sslMode to verify-full to trust the system's CAs`
    )
  }
  const secrets: ReadonlyArray<SecretUse> = [
    { field: "spec.dbPasswordSecretName", namespace: jobNamespace, name: spec.dbPasswordSecretName },
    ...(spec.sslRootCert?.secretKeyRef === undefined
      ? []
      : [
          {
            field: "spec.sslRootCert.secretKeyRef.name",
            namespace: jobNamespace,
            name: spec.sslRootCert.secretKeyRef.name
          }
        ]),
    ...(spec.encryption?.ageRecipientsSecretRef === undefined
      ? []
      : [
          {
            field: "spec.encryption.ageRecipientsSecretRef.name",
            namespace: jobNamespace,
            name: spec.encryption.ageRecipientsSecretRef.name
          }
        ]),
    ...(storage === undefined ? [] : credentialSecrets(storage, jobNamespace))
  ]
  // In its own namespace a resource uses Secrets as any Pod there could (the original flow),
  // unless the administrator asks for consent everywhere.
  const needConsent = settings.requireSecretOptIn || jobNamespace !== namespace ? secrets : []
  return { _tag: "Allowed", jobNamespace, sslMode, needConsent }
}

/** The entries of a `usable-by` annotation, trimmed, empty ones dropped. */
const entriesOf = (annotation: string | undefined): ReadonlyArray<string> =>
  (annotation ?? "")
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry.length > 0)

/**
 * Why the Secret with these annotations does not consent to `resource` using
 * it, or undefined when it does.
 *
 * @example
 * ```ts
 * declare const use: SecretUse
 * consentProblem({ [usableByAnnotation]: "team-a, team-b/orders" }, use, { namespace: "team-b", name: "orders" }) // undefined
 * consentProblem({}, use, { namespace: "team-b", name: "orders" }) // "Secret db/backup-secret (spec.dbPasswordSecretName) does not allow ..."
 * ```
 */
export const consentProblem = (
  annotations: Readonly<Record<string, string>> | undefined,
  use: SecretUse,
  resource: { readonly namespace: string; readonly name: string }
): string | undefined => {
  const entries = entriesOf(annotations?.[usableByAnnotation])
  if (entries.includes(resource.namespace) || entries.includes(`${resource.namespace}/${resource.name}`)) {
    return undefined
  }
  return `Secret ${use.namespace}/${use.name} (${use.field}) does not allow backups of ${resource.namespace}/${resource.name} to use it: its owner must list "${resource.namespace}" or "${resource.namespace}/${resource.name}" in its annotation ${usableByAnnotation}`
}
