import { createHash } from "node:crypto"

const maxLength = 63

const stamp = (at: Date): string => at.toISOString().replace(/[-:T]/gu, "").slice(0, 14)

/**
 * The Job name of a run: `<resource>-<YYYYMMDDHHMMSS>` (UTC). Deterministic, so a
 * retried create after a crash finds the run's Job instead of making a second.
 * Job names must fit a 63-character label value; longer resource names are cut
 * and made unique again with a hash of the whole name.
 *
 * @example
 * ```ts
 * jobName("database-backup", new Date("2025-03-04T05:06:07Z")) // "database-backup-20250304050607"
 * ```
 */
export const jobName = (resourceName: string, at: Date): string => {
  const suffix = `-${stamp(at)}`
  if (resourceName.length + suffix.length <= maxLength) return `${resourceName}${suffix}`
  const hash = createHash("sha256").update(resourceName).digest("hex").slice(0, 8)
  const room = maxLength - suffix.length - hash.length - 1
  const head = resourceName.slice(0, room).replace(/[-.]+$/u, "")
  return `${head}-${hash}${suffix}`
}
