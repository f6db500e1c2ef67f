/**
 * How many backups may run at once: fifty resources on `@daily` must not start
 * fifty `pg_dump`s against one server in the same second. A run whose slot has
 * come starts only while fewer than `perServer` runs use its database server
 * and fewer than `total` run in all; otherwise it waits (`Pending`), its slot
 * still due, and starts when a run finishes (within its starting deadline).
 */

/** The operator's limits (`--max-concurrent-backups`, `--max-concurrent-backups-per-server`). */
export interface Limits {
  readonly total: number
  readonly perServer: number
}

/** Whether a run may start now, and if not, why (for `status` and the `Scheduled` condition). */
export type Admission =
  | { readonly _tag: "Admitted" }
  | { readonly _tag: "Waiting"; readonly reason: "ServerBusy" | "OperatorBusy"; readonly message: string }

/**
 * The database server of a run, as the limits count it: `host:port`.
 *
 * @example
 * ```ts
 * serverOf({ dbHost: "pg.db.svc", dbPort: 5432 }) // "pg.db.svc:5432"
 * ```
 */
export const serverOf = (spec: { readonly dbHost: string; readonly dbPort: number }): string =>
  `${spec.dbHost.toLowerCase()}:${spec.dbPort}`

/**
 * Decides whether a run against `server` may start, given the servers of the
 * runs in progress (one entry per run, of every resource).
 *
 * @example
 * ```ts
 * admit("pg:5432", ["pg:5432", "pg:5432"], { total: 10, perServer: 2 })
 * // { _tag: "Waiting", reason: "ServerBusy", message: "2 backups of pg:5432 are running (--max-concurrent-backups-per-server=2): ..." }
 * ```
 */
export const admit = (server: string, running: ReadonlyArray<string>, limits: Limits): Admission => {
  const onServer = running.filter((other) => other === server).length
  if (onServer >= limits.perServer) {
    return {
      _tag: "Waiting",
      reason: "ServerBusy",
      message: `${onServer} backup${onServer === 1 ? "" : "s"} of ${server} ${onServer === 1 ? "is" : "are"} running (--max-concurrent-backups-per-server=${limits.perServer}): this run starts when one finishes`
    }
  }
  if (running.length >= limits.total) {
    return {
      _tag: "Waiting",
      reason: "OperatorBusy",
      message: `${running.length} backups are running (--max-concurrent-backups=${limits.total}): this run starts when one finishes`
    }
  }
  return { _tag: "Admitted" }
}
