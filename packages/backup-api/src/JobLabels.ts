/**
 * How backup Jobs are marked, shared by the controller that creates them and
 * the cleanup controller that deletes them. Watches select on {@link jobSelector},
 * so the operator never caches other Jobs of the cluster.
 */
export const Label = {
  managedBy: "app.kubernetes.io/managed-by",
  component: "app.kubernetes.io/component",
  resourceNamespace: "backup.csyeteam03.xyz/resource-namespace",
  resourceName: "backup.csyeteam03.xyz/resource-name",
  resourceUid: "backup.csyeteam03.xyz/resource-uid"
} as const

export const Annotation = {
  /** `namespace/name` of the resource (label values cannot hold every name, annotations can). */
  resource: "backup.csyeteam03.xyz/resource",
  /** URL of the run's dump object (gs://, s3://, azblob:// or file://). */
  location: "backup.csyeteam03.xyz/location",
  /**
   * Name of the run's `Backup` record (same namespace as the resource): the record the Job's outcome
   * goes to; on a restore Job, the `Backup` it restores.
   */
  backup: "backup.csyeteam03.xyz/backup",
  /** When the run was scheduled (RFC 3339): the run's identity across operator restarts. Absent on on-demand runs. */
  scheduledAt: "backup.csyeteam03.xyz/scheduled-at",
  /** `host:port` of the database server the run dumps: the concurrency limits count runs per server. */
  databaseServer: "backup.csyeteam03.xyz/database-server",
  /**
   * What the run backs up and where to (`host:port/database/schema -> gs://bucket`): a run of
   * an older spec is told apart from one of the current spec by it.
   */
  target: "backup.csyeteam03.xyz/target",
  /** Set by the backup controller once it has recorded the run's outcome (`Success` or `Failed`). */
  recorded: "backup.csyeteam03.xyz/recorded",
  /** `namespace/name` of the Restore a restore Job runs. */
  restore: "backup.csyeteam03.xyz/restore",
  /** On a `Backup` record rebuilt from the bucket's catalog: the URL of the manifest it was rebuilt from. */
  rebuiltFrom: "backup.csyeteam03.xyz/rebuilt-from"
} as const

export const managedBy = "db-backup-operator"
export const component = "backup"

/** Label selector matching every backup Job. */
export const jobSelector = `${Label.managedBy}=${managedBy},${Label.component}=${component}`

/** The labels of a backup Job (and its Pods) for one resource. */
export const jobLabels = (resource: {
  readonly namespace: string
  readonly name: string
  readonly uid: string
}): Readonly<Record<string, string>> => ({
  [Label.managedBy]: managedBy,
  [Label.component]: component,
  [Label.resourceNamespace]: resource.namespace,
  // Label values are limited to 63 characters; names may be longer (subdomains). The uid is authoritative.
  [Label.resourceName]: resource.name.length <= 63 ? resource.name : resource.name.slice(0, 63).replace(/[-.]+$/u, ""),
  [Label.resourceUid]: resource.uid
})

/** `namespace/name` of the resource a backup Job belongs to. */
export const ownerKeyOf = (metadata: { readonly annotations?: Readonly<Record<string, string>> }): string | undefined =>
  metadata.annotations?.[Annotation.resource]

/** The component label of restore Jobs (backup Jobs' is {@link component}): neither controller sees the other's Jobs. */
export const restoreComponent = "restore"

/** Label selector matching every restore Job. */
export const restoreJobSelector = `${Label.managedBy}=${managedBy},${Label.component}=${restoreComponent}`

/** The label holding a restore Job's Restore uid. */
export const restoreUidLabel = "backup.csyeteam03.xyz/restore-uid"

/** The labels of a Restore's Job (and its Pod). */
export const restoreJobLabels = (restore: { readonly uid: string }): Readonly<Record<string, string>> => ({
  [Label.managedBy]: managedBy,
  [Label.component]: restoreComponent,
  [restoreUidLabel]: restore.uid
})

/** `namespace/name` of the Restore a restore Job runs. */
export const restoreKeyOf = (metadata: {
  readonly annotations?: Readonly<Record<string, string>>
}): string | undefined => metadata.annotations?.[Annotation.restore]
