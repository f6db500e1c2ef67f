import { RunnerContract } from "@db-backup-operator/backup-api/contract"
import { describe, expect, it } from "@effect/vitest"
import { Option } from "effect"

// The success termination message: the kubelet keeps 4096 bytes of it, and cut JSON is no message at all.
const bytesOf = (text: string) => new TextEncoder().encode(text).length
const sha256 = "a".repeat(64)
const stamps = (count: number) =>
  Array.from(
    { length: count },
    (_, n) => `2025${String(1 + (n % 12)).padStart(2, "0")}01-${String(n).padStart(6, "0")}`
  )

/** Location and manifest of a run in `bucket`, with a dump object `objectLength` characters long. */
const locations = (bucket: string, objectLength: number) => {
  const base = `backups/${"n".repeat(Math.max(0, objectLength - 38))}/backup-20250304-050607`.slice(0, objectLength - 7)
  return { location: `gs://${bucket}/${base}.sql.gz`, manifest: `gs://${bucket}/${base}.json` }
}

const full = (where: { readonly location: string; readonly manifest: string }, runs: number) =>
  ({
    result: "Success",
    ...where,
    sizeBytes: Number.MAX_SAFE_INTEGER,
    sha256,
    retainedBackups: Number.MAX_SAFE_INTEGER,
    deletedBackups: Number.MAX_SAFE_INTEGER,
    deletedRuns: stamps(runs),
    retentionError: `retention: ${"the store said no ".repeat(60)}`,
    serverVersion: "9".repeat(64),
    pgDumpVersion: `pg_dump (PostgreSQL) 17.2 ${"(Debian 17.2-1.pgdg120+1) ".repeat(9)}`.slice(0, 256)
  }) as const

const decoded = (line: string) => Option.getOrThrow(RunnerContract.decodeSuccessMessage(line))

describe("the success message", () => {
  it("is the message itself when it fits", () => {
    const message = {
      result: "Success",
      location: "gs://b/backups/team/api/backup-20250304-050607.sql.gz",
      manifest: "gs://b/backups/team/api/backup-20250304-050607.json",
      sizeBytes: 42,
      sha256,
      retainedBackups: 3,
      deletedBackups: 2,
      deletedRuns: ["20250301-000000", "20250302-000000"],
      serverVersion: "170002",
      pgDumpVersion: "pg_dump (PostgreSQL) 17.2"
    } as const
    const line = RunnerContract.encodeSuccessMessage(message)
    expect(line).not.toContain("\n")
    expect(decoded(line)).toEqual(message)
  })

  it("with the longest names the controller builds, 100 stamps, both versions and a long error, loses nothing but error text", () => {
    // A 63-character bucket, namespace (63) and name (253): the longest objects the controller names.
    const where = locations(
      "b".repeat(63),
      "backups/".length + 63 + 1 + 253 + 1 + "backup-20250304-050607.sql.gz".length
    )
    expect(RunnerContract.deletedRunsRoom({ ...where, sizeBytes: Number.MAX_SAFE_INTEGER, sha256 })).toBe(100)
    const message = full(where, 100)
    const line = RunnerContract.encodeSuccessMessage(message)
    expect(bytesOf(line)).toBeLessThanOrEqual(RunnerContract.maxSuccessMessageBytes)
    const { retentionError, ...rest } = decoded(line)
    const { retentionError: _, ...expected } = message
    expect(rest).toEqual(expected)
    expect(retentionError).toMatch(/^retention: the store said no .*\.\.\.$/u)
  })

  it.each([
    ["1024-character URLs", "b".repeat(63), 1024 - "gs://".length - 64],
    ["the longest bucket (222) and object (1024) names", "b".repeat(222), 1024]
  ])(
    "with %s, every stamp of a pass sized by deletedRunsRoom is listed, within the limit",
    (_, bucket, objectLength) => {
      const where = locations(bucket, objectLength)
      const room = RunnerContract.deletedRunsRoom({ ...where, sizeBytes: Number.MAX_SAFE_INTEGER, sha256 })
      expect(room).toBeGreaterThan(30)
      expect(room).toBeLessThanOrEqual(RunnerContract.maxDeletedRuns)
      const line = RunnerContract.encodeSuccessMessage(full(where, room))
      expect(bytesOf(line)).toBeLessThanOrEqual(RunnerContract.maxSuccessMessageBytes)
      const message = decoded(line)
      expect(message.location).toBe(where.location)
      expect(message.manifest).toBe(where.manifest)
      expect(message.deletedRuns).toEqual(stamps(room))
      expect(message.retentionError).toMatch(/^retention: the store said no/u)
      // The versions went first: they are in the manifest.
      expect(message.pgDumpVersion).toBeUndefined()
    }
  )

  it("is cut to the limit even with more stamps than fit (the last resort): the oldest are kept", () => {
    const where = locations("b".repeat(222), 1024)
    const line = RunnerContract.encodeSuccessMessage(full(where, 100))
    expect(bytesOf(line)).toBeLessThanOrEqual(RunnerContract.maxSuccessMessageBytes)
    const runs = decoded(line).deletedRuns ?? []
    expect(runs.length).toBeGreaterThan(30)
    expect(runs).toEqual(stamps(100).slice(0, runs.length))
  })

  it("an error of characters JSON escapes still leaves room for the stamps deletedRunsRoom promised", () => {
    const where = locations("b".repeat(222), 1024)
    const room = RunnerContract.deletedRunsRoom({ ...where, sizeBytes: Number.MAX_SAFE_INTEGER, sha256 })
    const line = RunnerContract.encodeSuccessMessage({
      ...full(where, room),
      retentionError: `retention: ${'\u0001"\\'.repeat(400)}`
    })
    expect(bytesOf(line)).toBeLessThanOrEqual(RunnerContract.maxSuccessMessageBytes)
    expect(decoded(line).deletedRuns).toEqual(stamps(room))
  })

  it("stays within the limit, the stamps deletedRunsRoom allows all listed, for any name lengths", () => {
    for (let objectLength = 40; objectLength <= 1024; objectLength += 41) {
      for (const bucket of ["b", "b".repeat(63), "b".repeat(222)]) {
        const where = locations(bucket, objectLength)
        const room = RunnerContract.deletedRunsRoom({ ...where, sizeBytes: 1, sha256 })
        const line = RunnerContract.encodeSuccessMessage(full(where, room))
        expect(bytesOf(line)).toBeLessThanOrEqual(RunnerContract.maxSuccessMessageBytes)
        expect(decoded(line).deletedRuns).toHaveLength(room)
      }
    }
  })

  it("cuts the catalog, oldest first, before anything else, and never below what fits", () => {
    const where = locations("b".repeat(63), 200)
    const catalog = stamps(1000)
    const line = RunnerContract.encodeSuccessMessage({
      ...full(where, 100),
      retentionError: "short",
      catalog,
      catalogSize: 1000
    })
    expect(bytesOf(line)).toBeLessThanOrEqual(RunnerContract.maxSuccessMessageBytes)
    const message = decoded(line)
    // Every other field is whole; the catalog keeps its newest stamps, as many as fit.
    expect(message.deletedRuns).toHaveLength(100)
    expect(message.pgDumpVersion).toBeDefined()
    expect(message.catalogSize).toBe(1000)
    const kept = message.catalog ?? []
    expect(kept).toEqual(catalog.slice(0, kept.length))
    expect(kept.length).toBeGreaterThan(0)
    expect(bytesOf(line) + 18).toBeGreaterThan(RunnerContract.maxSuccessMessageBytes)
  })
})
