import type { Backup } from "@db-backup-operator/backup-api"
import { JobLabels } from "@db-backup-operator/backup-api"
import type { Job } from "@db-backup-operator/kube"
import { describe, expect, it } from "@effect/vitest"
import { checkInvariants } from "./invariants.ts"

const bucketUrl = "gs://bucket"
const slot = "2026-12-03T10:00:00Z"
const object = "backups/ns/db/backup-20261203-100000.sql.gz"
const manifest = "backups/ns/db/backup-20261203-100000.json"

const record = (name: string, phase: "Pending" | "Running" | "Succeeded" | "Failed", at = slot): Backup =>
  ({
    apiVersion: "backup.csyeteam03.xyz/v1",
    kind: "Backup",
    metadata: { name, namespace: "ns" },
    spec: { backupDatabaseSchemaName: "db" },
    status: { phase, scheduledTime: at, ...(phase === "Succeeded" ? { location: `${bucketUrl}/${object}` } : {}) }
  }) as Backup

const job = (name: string, backup: string, outcome: "Complete" | "Failed" | undefined, at = slot): Job =>
  ({
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: {
      name,
      namespace: "ns",
      labels: { [JobLabels.Label.resourceUid]: "uid-1" },
      annotations: { [JobLabels.Annotation.backup]: backup, [JobLabels.Annotation.scheduledAt]: at }
    },
    status: outcome === undefined ? {} : { conditions: [{ type: outcome, status: "True" }] }
  }) as unknown as Job

interface Case {
  readonly name: string
  readonly backups: ReadonlyArray<Backup>
  readonly deletedBackups?: ReadonlyArray<Backup>
  readonly jobs: ReadonlyArray<Job>
  readonly objects: ReadonlyArray<string>
  readonly expected: {
    readonly [K in "slots" | "runs" | "duplicatedRuns" | "lostOutcomes" | "incompleteObjects"]: number
  }
}

describe("checkInvariants", () => {
  it.each<Case>([
    {
      name: "one slot, one Job, one record, its dump and manifest: nothing to report",
      backups: [record("db-1", "Succeeded")],
      jobs: [job("j1", "db-1", "Complete")],
      objects: [object, manifest],
      expected: { slots: 1, runs: 1, duplicatedRuns: 0, lostOutcomes: 0, incompleteObjects: 0 }
    },
    {
      name: "two Jobs for one slot: a duplicated run",
      backups: [record("db-1", "Succeeded")],
      jobs: [job("j1", "db-1", "Complete"), job("j2", "db-1", "Complete")],
      objects: [object, manifest],
      expected: { slots: 1, runs: 2, duplicatedRuns: 1, lostOutcomes: 0, incompleteObjects: 0 }
    },
    {
      name: "two records for one slot: a duplicated run",
      backups: [record("db-1", "Succeeded"), record("db-2", "Failed")],
      jobs: [job("j1", "db-1", "Complete")],
      objects: [object, manifest],
      expected: { slots: 1, runs: 1, duplicatedRuns: 1, lostOutcomes: 0, incompleteObjects: 0 }
    },
    {
      name: "a finished Job whose record still says Running: a lost outcome",
      backups: [record("db-1", "Running")],
      jobs: [job("j1", "db-1", "Failed")],
      objects: [],
      expected: { slots: 1, runs: 1, duplicatedRuns: 0, lostOutcomes: 1, incompleteObjects: 0 }
    },
    {
      name: "a failed Job whose record said Failed before the history limit deleted it: nothing lost",
      backups: [],
      deletedBackups: [record("db-1", "Failed")],
      jobs: [job("j1", "db-1", "Failed")],
      objects: [],
      expected: { slots: 1, runs: 1, duplicatedRuns: 0, lostOutcomes: 0, incompleteObjects: 0 }
    },
    {
      name: "a finished Job whose record was deleted while it said Running: a lost outcome",
      backups: [],
      deletedBackups: [record("db-1", "Running")],
      jobs: [job("j1", "db-1", "Failed")],
      objects: [],
      expected: { slots: 1, runs: 1, duplicatedRuns: 0, lostOutcomes: 1, incompleteObjects: 0 }
    },
    {
      name: "a finished Job whose record never existed: a lost outcome",
      backups: [],
      jobs: [job("j1", "db-1", "Complete")],
      objects: [],
      expected: { slots: 0, runs: 1, duplicatedRuns: 0, lostOutcomes: 1, incompleteObjects: 0 }
    },
    {
      name: "a Job still running is not counted as lost",
      backups: [record("db-1", "Running")],
      jobs: [job("j1", "db-1", undefined)],
      objects: [],
      expected: { slots: 1, runs: 1, duplicatedRuns: 0, lostOutcomes: 0, incompleteObjects: 0 }
    },
    {
      name: "a dump without its manifest, and without a Succeeded record",
      backups: [record("db-1", "Failed")],
      jobs: [job("j1", "db-1", "Failed")],
      objects: [object],
      expected: { slots: 1, runs: 1, duplicatedRuns: 0, lostOutcomes: 0, incompleteObjects: 1 }
    },
    {
      name: "a Succeeded record whose dump is not in the bucket",
      backups: [record("db-1", "Succeeded")],
      jobs: [job("j1", "db-1", "Complete")],
      objects: [],
      expected: { slots: 1, runs: 1, duplicatedRuns: 0, lostOutcomes: 0, incompleteObjects: 1 }
    }
  ])("$name", ({ backups, deletedBackups, jobs, objects, expected }) => {
    const result = checkInvariants({ backups, deletedBackups: deletedBackups ?? [], jobs, objects, bucketUrl })
    expect(result).toMatchObject(expected)
    const problems = expected.duplicatedRuns + expected.lostOutcomes + expected.incompleteObjects
    expect(result.violations).toHaveLength(problems)
  })
})
