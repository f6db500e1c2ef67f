import {
  type Backup,
  type BackupDatabaseSchema,
  type BackupStorage,
  type BackupStorageSpec,
  type Restore,
  StorageLocation,
  type Tls
} from "@db-backup-operator/backup-api"
import { type Access, type AccessSettings, access, type SecretUse } from "../access.ts"
import { resolveStorage, type Storage, storeOf } from "../storage.ts"

/**
 * Which backup a Restore restores, into what, and with which Secrets: the
 * pure half of a Restore's validation. The controller observes the records,
 * the resource and the storage the source names; this decides whether the
 * restore can start, must wait, or is refused.
 */

/** What the Restore's Job needs, once its source is found and allowed. */
export interface ReadySource {
  readonly _tag: "Ready"
  /** The `Backup` restored (absent for `source.location`). */
  readonly backupName?: string
  /** URL of its manifest (or its dump): what the runner is given. */
  readonly location: string
  /** The `BackupDatabaseSchema` it belongs to (absent for `source.location`). */
  readonly resource?: BackupDatabaseSchema
  /** How the Job reaches the store the backup is in. */
  readonly storage: Storage
  /** Where the Job runs, the TLS mode, and the Secrets whose owner must consent. */
  readonly jobNamespace: string
  readonly sslMode: Tls.SslMode
  readonly needConsent: ReadonlyArray<SecretUse>
  /** Whose name a consenting Secret must list: the backup's resource, else the Restore. */
  readonly consentFor: { readonly namespace: string; readonly name: string }
  readonly connection: RestoreConnection
}

/** The database a restore goes into, as far as the operator knows it (the runner fills the rest from the manifest). */
export interface RestoreConnection {
  readonly host?: string
  readonly port?: number
  readonly database?: string
  readonly schema?: string
  readonly user: string
  readonly passwordSecret: { readonly name: string; readonly key: string }
  readonly sslRootCert?: BackupDatabaseSchema["spec"]["sslRootCert"]
}

/** A source that may still come (a Backup running, no successful backup yet): the Restore waits. */
export interface WaitingSource {
  readonly _tag: "Waiting"
  readonly reason: string
  readonly message: string
}

/** A source that never will (a failed Backup, a storage that does not hold the URL): the Restore fails. */
export interface RefusedSource {
  readonly _tag: "Refused"
  readonly reason: string
  readonly message: string
}

export type Source = ReadySource | WaitingSource | RefusedSource

/** What the controller found for a Restore's source. */
export interface SourceObservation {
  /** The Backup records of the Restore's namespace that the source names (all of a resource's, or the one named). */
  readonly records: ReadonlyArray<Backup>
  /** The BackupDatabaseSchema of the backup, when found. */
  readonly resource: BackupDatabaseSchema | undefined
  /** The BackupStorage the resource (or `source.storageRef`) names, when found. */
  readonly storage: BackupStorage | undefined
}

const waiting = (reason: string, message: string): WaitingSource => ({ _tag: "Waiting", reason, message })
const refused = (reason: string, message: string): RefusedSource => ({ _tag: "Refused", reason, message })

/** The newest first: by completion, then by name (slots sort by time). */
const newestFirst = (a: Backup, b: Backup) =>
  (b.status?.completionTime ?? "").localeCompare(a.status?.completionTime ?? "") ||
  (b.metadata.name ?? "").localeCompare(a.metadata.name ?? "")

const locationOf = (record: Backup) => record.status?.manifestLocation ?? record.status?.location

/**
 * The name of the BackupDatabaseSchema whose records and storage the source
 * needs, once its Backup is known (`backupName`), or at once
 * (`backupDatabaseSchemaName`); undefined for `location`.
 */
export const sourceResourceName = (restore: Restore, records: ReadonlyArray<Backup>): string | undefined => {
  const source = restore.spec.source
  if (source.backupDatabaseSchemaName !== undefined) return source.backupDatabaseSchemaName
  if (source.backupName === undefined) return undefined
  return records.find((record) => record.metadata.name === source.backupName)?.spec.backupDatabaseSchemaName
}

/** The backup a record-based source names, or why there is none to restore yet. */
const pickBackup = (restore: Restore, records: ReadonlyArray<Backup>): Backup | WaitingSource | RefusedSource => {
  const { backupName, backupDatabaseSchemaName } = restore.spec.source
  const namespace = restore.metadata.namespace ?? ""
  if (backupName !== undefined) {
    const record = records.find((candidate) => candidate.metadata.name === backupName)
    if (record === undefined) {
      return waiting("BackupNotFound", `waits: Backup ${namespace}/${backupName} (spec.source.backupName) not found`)
    }
    const phase = record.status?.phase
    if (phase === "Failed") {
      return refused(
        "BackupFailed",
        `Backup ${namespace}/${backupName} failed, so there is nothing to restore${record.status?.message === undefined ? "" : `: ${record.status.message}`}`
      )
    }
    if (phase !== "Succeeded") {
      return waiting(
        "BackupNotFinished",
        `waits for Backup ${namespace}/${backupName} (${phase ?? "Pending"}) to succeed`
      )
    }
    return record
  }
  const newest = records
    .filter((record) => record.status?.phase === "Succeeded" && locationOf(record) !== undefined)
    .sort(newestFirst)[0]
  return (
    newest ??
    waiting(
      "NoSuccessfulBackup",
      `waits for a successful backup of BackupDatabaseSchema ${namespace}/${backupDatabaseSchemaName ?? ""}`
    )
  )
}

/** A storage definition that reaches the store a URL names with its defaults (workload identity, no endpoint). */
const storageFromUrl = (store: StorageLocation.Store): BackupStorageSpec | undefined => {
  switch (store.kind) {
    case "gcs":
      return { gcs: { bucket: store.bucket } }
    case "s3":
      return { s3: { bucket: store.bucket } }
    case "azure":
      return store.account === undefined
        ? undefined
        : { azure: { storageAccount: store.account, container: store.bucket } }
    case "file":
      return undefined
  }
}

const sameStore = (a: StorageLocation.Store, b: StorageLocation.Store) =>
  a.kind === b.kind && a.bucket === b.bucket && (a.account ?? "") === (b.account ?? "")

/**
 * Decides a Restore's source from what the controller observed, under the
 * operator's access rules (those of the backup's resource, with the Restore's
 * target and decryption Secret added).
 *
 * @example
 * ```ts
 * declare const restore: Restore // source.backupName: nightly-20261203000000, Succeeded
 * declare const observed: SourceObservation
 * resolveRestoreSource(restore, observed, { allowedNamespaces: [], requireSecretOptIn: false, minSslMode: "disable" })
 * // { _tag: "Ready", backupName: "nightly-20261203000000", location: "gs://dumps/backups/team/nightly/backup-20261203-000000.json", ... }
 * ```
 */
export const resolveRestoreSource = (
  restore: Restore,
  observed: SourceObservation,
  settings: AccessSettings
): Source => {
  const namespace = restore.metadata.namespace ?? ""
  const spec = restore.spec
  const target = spec.target ?? {}
  let backupName: string | undefined
  let location: string
  let resource: BackupDatabaseSchema | undefined
  let storage: Storage
  if (spec.source.location !== undefined) {
    location = spec.source.location
    const url = StorageLocation.backupOfUrl(location)
    if (url._tag === "None") {
      return refused(
        "InvalidLocation",
        `spec.source.location ${location} is not the URL of a backup's manifest or dump`
      )
    }
    const ref = spec.source.storageRef
    if (ref !== undefined) {
      if (observed.storage === undefined) {
        return waiting(
          "StorageNotFound",
          `waits: BackupStorage ${namespace}/${ref.name} (spec.source.storageRef) not found`
        )
      }
      const store = storeOf(observed.storage.spec)
      if (!sameStore(store, url.value.store)) {
        return refused(
          "StorageMismatch",
          `spec.source.location is in ${StorageLocation.storeUrl(url.value.store)}, but BackupStorage ${ref.name} (spec.source.storageRef) is ${StorageLocation.storeUrl(store)}`
        )
      }
      storage = { name: ref.name, spec: observed.storage.spec }
    } else {
      const fromUrl = storageFromUrl(url.value.store)
      if (fromUrl === undefined) {
        return refused(
          "StorageRequired",
          `spec.source.location ${location} needs spec.source.storageRef: a BackupStorage that says how to reach it`
        )
      }
      storage = { spec: fromUrl }
    }
  } else {
    const picked = pickBackup(restore, observed.records)
    if ("_tag" in picked) return picked
    backupName = picked.metadata.name
    const url = locationOf(picked)
    if (url === undefined) {
      return refused("BackupHasNoLocation", `Backup ${namespace}/${backupName} records no location to restore from`)
    }
    location = url
    resource = observed.resource
    if (resource === undefined) {
      return waiting(
        "BackupDatabaseSchemaNotFound",
        `waits: BackupDatabaseSchema ${namespace}/${picked.spec.backupDatabaseSchemaName} of Backup ${backupName} not found (its database, role and storage are needed)`
      )
    }
    const resolved = resolveStorage(resource, observed.storage)
    if (!("spec" in resolved)) return waiting(resolved.reason, `waits: ${resolved.message}`)
    // The resource's storage may have moved since the backup: it is used only if it still holds it.
    const backupStore = StorageLocation.backupOfUrl(location)
    const fromUrl = backupStore._tag === "Some" ? storageFromUrl(backupStore.value.store) : undefined
    storage =
      backupStore._tag === "None" || sameStore(storeOf(resolved.spec), backupStore.value.store) || fromUrl === undefined
        ? resolved
        : { spec: fromUrl }
  }
  const base = resource?.spec
  // The resource's password is only ever sent to the resource's own server: a Restore that names
  // another one brings its own (else anyone who may create a Restore could send it anywhere).
  const otherServer =
    base !== undefined &&
    ((target.dbHost !== undefined && target.dbHost !== base.dbHost) ||
      (target.dbPort !== undefined && target.dbPort !== base.dbPort))
  if (otherServer && target.dbPasswordSecretName === undefined) {
    return refused(
      "TargetCredentialsRequired",
      `spec.target names another server than BackupDatabaseSchema ${namespace}/${resource?.metadata.name ?? ""}'s (${base.dbHost}:${base.dbPort}): set spec.target.dbUser, dbPasswordSecretName and dbPasswordSecretKey for it; the resource's password is only sent to its own server`
    )
  }
  const passwordSecret =
    target.dbPasswordSecretName !== undefined && target.dbPasswordSecretKey !== undefined
      ? { name: target.dbPasswordSecretName, key: target.dbPasswordSecretKey }
      : base === undefined
        ? undefined
        : { name: base.dbPasswordSecretName, key: base.dbPasswordSecretKey }
  const user = target.dbUser ?? base?.dbUser
  // The CRD requires target.dbUser and its Secret for a location; kept for the type.
  if (passwordSecret === undefined || user === undefined) {
    return refused("TargetRequired", "set spec.target.dbUser and its password Secret")
  }
  // The target's TLS settings replace the resource's together: its CA belongs to its server.
  const sslMode = target.sslMode ?? (target.dbHost === undefined ? base?.sslMode : undefined)
  const sslRootCert =
    target.sslRootCert ?? (target.sslMode === undefined && target.dbHost === undefined ? base?.sslRootCert : undefined)
  const decided: Access = access(
    {
      metadata: { namespace },
      spec: {
        ...(base?.backupJobNamespace === undefined ? {} : { backupJobNamespace: base.backupJobNamespace }),
        dbPasswordSecretName: passwordSecret.name,
        ...(target.dbPasswordSecretName === undefined && base?.dbPasswordSecretNamespace !== undefined
          ? { dbPasswordSecretNamespace: base.dbPasswordSecretNamespace }
          : {}),
        ...(sslMode === undefined ? {} : { sslMode }),
        ...(sslRootCert === undefined ? {} : { sslRootCert })
      }
    },
    settings,
    storage
  )
  if (decided._tag === "Refused") return refused(decided.reason, decided.message)
  const identity = spec.decryption?.ageIdentitySecretRef
  const identityUse: ReadonlyArray<SecretUse> =
    identity === undefined
      ? []
      : [{ field: "spec.decryption.ageIdentitySecretRef.name", namespace: decided.jobNamespace, name: identity.name }]
  const needsConsent = settings.requireSecretOptIn || decided.jobNamespace !== namespace
  return {
    _tag: "Ready",
    ...(backupName === undefined ? {} : { backupName }),
    location,
    ...(resource === undefined ? {} : { resource }),
    storage,
    jobNamespace: decided.jobNamespace,
    sslMode: decided.sslMode,
    needConsent: [...decided.needConsent, ...(needsConsent ? identityUse : [])],
    consentFor: { namespace, name: resource?.metadata.name ?? restore.metadata.name ?? "" },
    connection: {
      ...((target.dbHost ?? base?.dbHost) === undefined ? {} : { host: target.dbHost ?? base?.dbHost ?? "" }),
      ...((target.dbPort ?? base?.dbPort) === undefined ? {} : { port: target.dbPort ?? base?.dbPort ?? 0 }),
      ...((target.dbName ?? base?.dbName) === undefined ? {} : { database: target.dbName ?? base?.dbName ?? "" }),
      ...(base?.dbSchema === undefined ? {} : { schema: base.dbSchema }),
      user,
      passwordSecret,
      ...(sslRootCert === undefined ? {} : { sslRootCert })
    }
  }
}

/**
 * Where a restore goes, as its status says it: `host:port/database/schema`,
 * with the backup's own for what the Restore leaves to the manifest.
 *
 * @example
 * ```ts
 * targetText({ host: "pg", port: 5432, database: "restored", schema: "api", user: "app", passwordSecret: { name: "s", key: "k" } })
 * // "pg:5432/restored/api"
 * ```
 */
export const targetText = (connection: RestoreConnection): string =>
  `${connection.host ?? "(the backup's host)"}:${connection.port ?? "(the backup's port)"}/${connection.database ?? "(the backup's database)"}/${connection.schema ?? "(the backup's schema)"}`
