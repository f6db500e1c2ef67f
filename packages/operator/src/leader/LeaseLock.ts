import { KubeClient, type KubeError, KubeErrors, Lease } from "@db-backup-operator/kube"
import { Effect, Option, Ref } from "effect"

/**
 * The leader election record kept in a `coordination.k8s.io/v1` Lease spec, as
 * client-go's `resourcelock.LeaderElectionRecord`. Times are MicroTime strings;
 * they are informational only: expiry is judged by each elector's own clock.
 */
export interface LeaderElectionRecord {
  /** `""` when nobody holds the lease (after a graceful release). */
  readonly holderIdentity: string
  readonly leaseDurationSeconds: number
  readonly acquireTime: string
  readonly renewTime: string
  readonly leaseTransitions: number
}

/** A record and the resourceVersion it was read or written at. */
export interface VersionedRecord {
  readonly record: LeaderElectionRecord
  readonly resourceVersion: string
}

/**
 * Where the election record lives. {@link kube} is the real Lease; {@link memory}
 * is an in-process stand-in for unit tests of the election's timing (the real
 * Lease path is covered by the integration tests).
 */
export interface LeaseLock {
  /** `namespace/name`, for logs and errors. */
  readonly description: string
  /** The current record; `None` when the Lease does not exist. */
  readonly get: Effect.Effect<Option.Option<VersionedRecord>, KubeError>
  /** Creates the Lease; `AlreadyExists` when another elector was first. */
  readonly create: (record: LeaderElectionRecord) => Effect.Effect<VersionedRecord, KubeError>
  /** Replaces the record if it is still at `resourceVersion`; otherwise `Conflict`. */
  readonly update: (record: LeaderElectionRecord, resourceVersion: string) => Effect.Effect<VersionedRecord, KubeError>
}

const fromLease = (lease: Lease): VersionedRecord => ({
  record: {
    holderIdentity: lease.spec?.holderIdentity ?? "",
    leaseDurationSeconds: lease.spec?.leaseDurationSeconds ?? 0,
    acquireTime: lease.spec?.acquireTime ?? "",
    renewTime: lease.spec?.renewTime ?? "",
    leaseTransitions: lease.spec?.leaseTransitions ?? 0
  },
  resourceVersion: lease.metadata.resourceVersion ?? ""
})

// An empty time is not a valid MicroTime: send null (absent) instead.
const toSpec = (record: LeaderElectionRecord) => ({
  holderIdentity: record.holderIdentity,
  leaseDurationSeconds: record.leaseDurationSeconds,
  acquireTime: record.acquireTime === "" ? null : record.acquireTime,
  renewTime: record.renewTime === "" ? null : record.renewTime,
  leaseTransitions: record.leaseTransitions
})

/**
 * The record in the Lease `namespace/name`. Updates are merge patches carrying
 * `metadata.resourceVersion`, so the API server applies them only if nobody wrote
 * the Lease since we read it (optimistic concurrency, like client-go's Update).
 *
 * @example
 * ```ts
 * const lock = yield* kube({ namespace: "backup-system", name: "backup-operator" })
 * ```
 */
export const kube = (options: {
  readonly namespace: string
  readonly name: string
}): Effect.Effect<LeaseLock, never, KubeClient> =>
  Effect.map(KubeClient, (client) => {
    const { namespace, name } = options
    return {
      description: `${namespace}/${name}`,
      get: client.get(Lease, name, { namespace }).pipe(
        Effect.map((lease) => Option.some(fromLease(lease))),
        Effect.catchTag("NotFound", () => Effect.succeed(Option.none()))
      ),
      create: (record) =>
        client
          .create(Lease, { metadata: { name, namespace }, spec: toSpec(record) }, { namespace })
          .pipe(Effect.map(fromLease)),
      update: (record, resourceVersion) =>
        client
          .mergePatch(Lease, name, { metadata: { resourceVersion }, spec: toSpec(record) }, { namespace })
          .pipe(Effect.map(fromLease))
    }
  })

/** An in-memory lock plus knobs for tests: make it fail, or read what it holds. */
export interface MemoryLeaseLock extends LeaseLock {
  /** While true, every call fails with a `Transient` error (an unreachable API server). */
  readonly setUnavailable: (unavailable: boolean) => Effect.Effect<void>
  readonly current: Effect.Effect<Option.Option<VersionedRecord>>
}

/**
 * An in-process lock with the API server's concurrency rules (create fails if it
 * exists, update fails on a stale resourceVersion). Share one between electors.
 *
 * @example
 * ```ts
 * const lock = yield* LeaseLock.memory("test/lease")
 * const a = yield* LeaderElection.makeWithLock({ namespace: "test", name: "lease", identity: "a" }, lock)
 * ```
 */
export const memory = (description = "memory/lease"): Effect.Effect<MemoryLeaseLock> =>
  Effect.gen(function* () {
    const state = yield* Ref.make<Option.Option<VersionedRecord>>(Option.none())
    const unavailable = yield* Ref.make(false)
    let version = 0
    const request = (verb: string) => `${verb} ${description}`
    const guard = (verb: string) =>
      Effect.flatMap(Ref.get(unavailable), (down) =>
        down
          ? Effect.fail(new KubeErrors.Transient({ message: "connection refused", request: request(verb) }))
          : Effect.void
      )
    const store = (record: LeaderElectionRecord) => {
      version += 1
      const versioned: VersionedRecord = { record, resourceVersion: String(version) }
      return Effect.as(Ref.set(state, Option.some(versioned)), versioned)
    }
    return {
      description,
      get: Effect.andThen(guard("GET"), Ref.get(state)),
      create: (record) =>
        Effect.gen(function* () {
          yield* guard("POST")
          if (Option.isSome(yield* Ref.get(state))) {
            return yield* new KubeErrors.AlreadyExists({ message: "lease already exists", request: request("POST") })
          }
          return yield* store(record)
        }),
      update: (record, resourceVersion) =>
        Effect.gen(function* () {
          yield* guard("PATCH")
          const current = yield* Ref.get(state)
          if (Option.isNone(current)) {
            return yield* new KubeErrors.NotFound({ message: "lease not found", request: request("PATCH") })
          }
          if (current.value.resourceVersion !== resourceVersion) {
            return yield* new KubeErrors.Conflict({
              message: "the object has been modified",
              request: request("PATCH")
            })
          }
          return yield* store(record)
        }),
      setUnavailable: (down) => Ref.set(unavailable, down),
      current: Ref.get(state)
    }
  })
