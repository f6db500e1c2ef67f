import { createHash } from "node:crypto"

const maxLength = 63

const stamp = (at: Date): string => at.toISOString().replace(/[-:T]/gu, "").slice(0, 14)

const digest = (text: string) => createHash("sha256").update(text).digest("hex").slice(0, 8)

/**
 * The Job name of a run: `<resource>-<YYYYMMDDHHMMSS>` (UTC, the run's slot).
 * Deterministic, so a retried create after a crash finds the run's Job instead
 * of making a second. When the Job runs in another namespace than its resource,
 * resources of several namespaces may share that one, so the name also carries
 * a hash of the resource's namespace and name: `dup` of `a` and `dup` of `b`
 * never get the same Job name for one slot. Job names must fit a 63-character
 * label value; longer resource names are cut and made unique again with a hash
 * of the whole name.
 *
 * @example
 * ```ts
 * jobName({ name: "database-backup" }, new Date("2025-03-04T05:06:07Z")) // "database-backup-20250304050607"
 * jobName({ name: "dup", namespace: "a" }, new Date("2025-03-04T05:06:07Z")) // "dup-<8 hex>-20250304050607"
 * ```
 */
export const jobName = (resource: { readonly name: string; readonly namespace?: string }, at: Date): string =>
  nameWithSuffix(resource, `-${stamp(at)}`)

/**
 * The Job name of a Restore: `<restore>-restore`, with the same hash as
 * {@link jobName} when the Job runs in another namespace or the name is long.
 *
 * @example
 * ```ts
 * restoreJobName({ name: "api-restore" }) // "api-restore-restore"
 * restoreJobName({ name: "api-restore", namespace: "team-a" }) // "api-restore-<8 hex>-restore"
 * ```
 */
export const restoreJobName = (restore: { readonly name: string; readonly namespace?: string }): string =>
  nameWithSuffix(restore, "-restore")

const nameWithSuffix = (resource: { readonly name: string; readonly namespace?: string }, suffix: string): string => {
  const name = resource.name
  if (resource.namespace === undefined && name.length + suffix.length <= maxLength) return `${name}${suffix}`
  const hash = digest(resource.namespace === undefined ? name : `${resource.namespace}/${name}`)
  const room = maxLength - suffix.length - hash.length - 1
  const head = name.slice(0, room).replace(/[-.]+$/u, "")
  return `${head}-${hash}${suffix}`
}
