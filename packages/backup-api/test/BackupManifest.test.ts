import { type BackupManifest, decodeManifest, encodeManifest } from "@db-backup-operator/backup-api"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"

const manifest: BackupManifest = {
  manifestVersion: 1,
  resource: { namespace: "ns", name: "db" },
  bucket: "operator-db-backups-bucket",
  object: "backups/ns/db/backup-20250304-050607.sql.gz",
  sizeBytes: 1234,
  sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  compression: "gzip",
  host: "pg.postgres.svc",
  port: 5432,
  database: "api",
  schema: "api",
  serverVersion: "150008",
  pgDumpVersion: "pg_dump (PostgreSQL) 15.8",
  startedAt: "2025-03-04T05:06:07.000Z",
  finishedAt: "2025-03-04T05:07:00.000Z"
}

describe("BackupManifest", () => {
  it.effect("round-trips through its JSON text", () =>
    Effect.gen(function* () {
      const text = encodeManifest(manifest)
      expect(text.endsWith("\n")).toBe(true)
      expect(yield* decodeManifest(text)).toEqual(manifest)
    })
  )

  it.effect("records a custom-format dump, and reads a manifest from before formats (a plain dump) unchanged", () =>
    Effect.gen(function* () {
      const custom: BackupManifest = {
        ...manifest,
        object: "backups/ns/db/backup-20250304-050607.dump.gz",
        format: "custom"
      }
      const text = encodeManifest(custom)
      expect(JSON.parse(text)).toMatchObject({ format: "custom" })
      expect(yield* decodeManifest(text)).toEqual(custom)
      // Written before formats existed: no format key, which restore reads as plain.
      const old = JSON.stringify(manifest)
      expect(old).not.toContain('"format"')
      expect(yield* decodeManifest(old)).toEqual(manifest)
      const unknown = JSON.stringify({ ...manifest, format: "directory" })
      expect((yield* decodeManifest(unknown).pipe(Effect.flip))._tag).toBe("SchemaError")
    })
  )

  it.effect("rejects a manifest with a malformed checksum or size", () =>
    Effect.gen(function* () {
      const bad = JSON.stringify({ ...manifest, sha256: "xyz" })
      expect((yield* decodeManifest(bad).pipe(Effect.flip))._tag).toBe("SchemaError")
      const negative = JSON.stringify({ ...manifest, sizeBytes: -1 })
      expect((yield* decodeManifest(negative).pipe(Effect.flip))._tag).toBe("SchemaError")
    })
  )
})
