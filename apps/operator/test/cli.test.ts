import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Option } from "effect"
import { toConfig } from "../src/cli.ts"

// The flags' values as the parser hands them over when none is given: every default.
const defaults: Parameters<typeof toConfig>[0] = {
  kubeconfig: Option.none(),
  namespaces: Option.none(),
  allowedNamespaces: "",
  requireSecretOptIn: "false",
  minSslMode: "disable",
  allowCleartextPassword: "false",
  runnerImage: "db-backup-runner:latest",
  gcsEndpoint: Option.none(),
  leaderElect: "false",
  leaderElectionNamespace: "default",
  leaderElectLeaseDuration: "15 seconds",
  leaderElectRenewDeadline: "10 seconds",
  leaderElectRetryPeriod: "2 seconds",
  metricsAddress: ":8080",
  healthAddress: ":8081",
  backupInterval: "5 minutes",
  defaultRetention: "none",
  maxConcurrentBackups: "10",
  maxConcurrentBackupsPerServer: "2",
  backupWorkers: "4",
  kubeApiQps: "50",
  kubeApiBurst: "100"
}

describe("toConfig: leader-election timings", () => {
  it.effect("passes the Lease's durations on to the elector (client-go's defaults unless given)", () =>
    Effect.gen(function* () {
      const standard = yield* toConfig(defaults)
      expect(Duration.toMillis(standard.leaderElectionTiming.leaseDuration)).toBe(15_000)
      expect(Duration.toMillis(standard.leaderElectionTiming.renewDeadline)).toBe(10_000)
      expect(Duration.toMillis(standard.leaderElectionTiming.retryPeriod)).toBe(2_000)
      const fast = yield* toConfig({
        ...defaults,
        leaderElect: "true",
        leaderElectLeaseDuration: "4 seconds",
        leaderElectRenewDeadline: "3 seconds",
        leaderElectRetryPeriod: "1 second"
      })
      expect(Duration.toMillis(fast.leaderElectionTiming.leaseDuration)).toBe(4_000)
      expect(Duration.toMillis(fast.leaderElectionTiming.renewDeadline)).toBe(3_000)
      expect(Duration.toMillis(fast.leaderElectionTiming.retryPeriod)).toBe(1_000)
    })
  )

  it.effect("refuses a renew deadline that outlasts the lease, naming the flag", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        toConfig({ ...defaults, leaderElectLeaseDuration: "5 seconds", leaderElectRenewDeadline: "10 seconds" })
      )
      expect(String(error.cause)).toContain("--leader-elect-renew-deadline")
    })
  )
})

describe("toConfig: throughput", () => {
  it.effect("passes workers and the API rate limit on (4 workers, 50 requests/s with bursts of 100 unless given)", () =>
    Effect.gen(function* () {
      const standard = yield* toConfig(defaults)
      expect(standard.backupWorkers).toBe(4)
      expect(standard.kubeApi).toEqual({ qps: 50, burst: 100 })
      const large = yield* toConfig({ ...defaults, backupWorkers: "16", kubeApiQps: "300", kubeApiBurst: "600" })
      expect(large.backupWorkers).toBe(16)
      expect(large.kubeApi).toEqual({ qps: 300, burst: 600 })
    })
  )

  it.effect("refuses a burst below the rate and a count that is not one, naming the flag", () =>
    Effect.gen(function* () {
      const burst = yield* Effect.flip(toConfig({ ...defaults, kubeApiQps: "200", kubeApiBurst: "100" }))
      expect(String(burst.cause)).toContain('--kube-api-burst: "100" is not a whole number from --kube-api-qps (200)')
      const workers = yield* Effect.flip(toConfig({ ...defaults, backupWorkers: "0" }))
      expect(String(workers.cause)).toContain("--backup-workers")
      const qps = yield* Effect.flip(toConfig({ ...defaults, kubeApiQps: "fast" }))
      expect(String(qps.cause)).toContain("--kube-api-qps")
    })
  )
})
