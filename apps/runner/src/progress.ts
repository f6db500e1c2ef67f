import { type Duration, Effect, Schedule } from "effect"

/** Byte counters shared by the dump pipeline (writer) and the progress reporter (reader). */
export interface Counters {
  /** Bytes pg_dump has written (uncompressed SQL). */
  dumped: number
  /** Bytes handed to the upload (after compression). */
  stored: number
}

export const makeCounters = (): Counters => ({ dumped: 0, stored: 0 })

const mb = (bytes: number): number => Math.round((bytes / 1_000_000) * 10) / 10

/** The fields of a progress or summary log line. */
export const progressFields = (counters: Counters, elapsedMillis: number) => {
  const seconds = Math.max(elapsedMillis / 1000, 0.001)
  return {
    dumpedBytes: counters.dumped,
    storedBytes: counters.stored,
    elapsedSeconds: Math.round(seconds * 10) / 10,
    dumpMBPerSecond: Math.round((mb(counters.dumped) / seconds) * 10) / 10
  }
}

/**
 * Logs progress every `interval` until interrupted (fork it in the dump's
 * Scope). Long dumps show they are alive; nothing here can hold a secret.
 */
export const reportProgress = (counters: Counters, interval: Duration.Input): Effect.Effect<void> => {
  // A monotonic clock: the wall clock can step (NTP, a VM's clock sync) in the middle of a dump.
  const started = performance.now()
  return Effect.suspend(() =>
    Effect.logInfo("backup in progress").pipe(
      Effect.annotateLogs(progressFields(counters, performance.now() - started))
    )
  ).pipe(Effect.delay(interval), Effect.repeat(Schedule.spaced(interval)), Effect.asVoid)
}
