import { StorageLocation } from "@db-backup-operator/backup-api"
import { describe, expect, it } from "@effect/vitest"
import { Option } from "effect"

const at = new Date("2025-03-04T05:06:07.890Z")

describe("StorageLocation", () => {
  it("formats the run time in UTC, zero-padded", () => {
    expect(StorageLocation.runTimestamp(at)).toBe("20250304-050607")
    expect(StorageLocation.runTimestamp(new Date("2025-12-31T23:59:59.999Z"))).toBe("20251231-235959")
    // A time zone offset never leaks into the name.
    expect(StorageLocation.runTimestamp(new Date("2025-01-01T00:30:00+02:00"))).toBe("20241231-223000")
  })

  it("names a gzip run's dump and manifest under the resource's namespace and name", () => {
    expect(
      StorageLocation.backupObjects({ namespace: "team", name: "api", startedAt: at, compression: "gzip" })
    ).toEqual({
      object: "backups/team/api/backup-20250304-050607.sql.gz",
      manifest: "backups/team/api/backup-20250304-050607.json"
    })
  })

  it("uses .sql when uncompressed", () => {
    expect(
      StorageLocation.backupObjects({ namespace: "team", name: "api", startedAt: at, compression: "none" })
    ).toEqual({
      object: "backups/team/api/backup-20250304-050607.sql",
      manifest: "backups/team/api/backup-20250304-050607.json"
    })
  })

  it("uses .sql.zst for zstd", () => {
    expect(
      StorageLocation.backupObjects({ namespace: "team", name: "api", startedAt: at, compression: "zstd" })
    ).toEqual({
      object: "backups/team/api/backup-20250304-050607.sql.zst",
      manifest: "backups/team/api/backup-20250304-050607.json"
    })
    expect(StorageLocation.manifestObjectOf("backups/a/db/backup-20250304-050607.sql.zst")).toBe(
      "backups/a/db/backup-20250304-050607.json"
    )
  })

  it("names a custom-format dump .dump before the compression's suffix, and finds its manifest", () => {
    const objectOf = (compression: "gzip" | "zstd" | "none", encrypted = false) =>
      StorageLocation.backupObjects({
        namespace: "team",
        name: "api",
        startedAt: at,
        compression,
        format: "custom",
        encrypted
      }).object
    expect(objectOf("gzip")).toBe("backups/team/api/backup-20250304-050607.dump.gz")
    expect(objectOf("zstd")).toBe("backups/team/api/backup-20250304-050607.dump.zst")
    expect(objectOf("none")).toBe("backups/team/api/backup-20250304-050607.dump")
    expect(objectOf("gzip", true)).toBe("backups/team/api/backup-20250304-050607.dump.gz.age")
    for (const compression of ["gzip", "zstd", "none"] as const) {
      for (const encrypted of [false, true]) {
        // Retention finds a dump's manifest by this: a wrong one would take the dump for a failed run's.
        expect(StorageLocation.manifestObjectOf(objectOf(compression, encrypted))).toBe(
          "backups/team/api/backup-20250304-050607.json"
        )
      }
    }
    // The default stays the plain format: resources from before formats keep their names.
    expect(
      StorageLocation.backupObjects({
        namespace: "team",
        name: "api",
        startedAt: at,
        compression: "gzip",
        format: "plain"
      })
    ).toEqual(StorageLocation.backupObjects({ namespace: "team", name: "api", startedAt: at, compression: "gzip" }))
  })

  it("keeps resources sharing a bucket apart", () => {
    const a = StorageLocation.backupObjects({ namespace: "a", name: "db", startedAt: at, compression: "gzip" })
    const b = StorageLocation.backupObjects({ namespace: "b", name: "db", startedAt: at, compression: "gzip" })
    const c = StorageLocation.backupObjects({ namespace: "a", name: "db2", startedAt: at, compression: "gzip" })
    expect(new Set([a.object, b.object, c.object]).size).toBe(3)
    expect(StorageLocation.resourcePrefix({ namespace: "a", name: "db" })).toBe("backups/a/db/")
    expect(a.object.startsWith(StorageLocation.resourcePrefix({ namespace: "a", name: "db" }))).toBe(true)
    // "db" is not a prefix match for "db2": the prefix ends with a slash.
    expect(c.object.startsWith(StorageLocation.resourcePrefix({ namespace: "a", name: "db" }))).toBe(false)
  })

  it("derives the manifest from a dump object name", () => {
    expect(StorageLocation.manifestObjectOf("backups/a/db/backup-20250304-050607.sql.gz")).toBe(
      "backups/a/db/backup-20250304-050607.json"
    )
    expect(StorageLocation.manifestObjectOf("backups/a/db/backup-20250304-050607.sql")).toBe(
      "backups/a/db/backup-20250304-050607.json"
    )
  })

  it("parses the names it writes, and nothing else", () => {
    for (const format of ["plain", "custom"] as const) {
      for (const compression of ["gzip", "zstd", "none"] as const) {
        const { object, manifest } = StorageLocation.backupObjects({
          namespace: "ns",
          name: "x.y",
          startedAt: at,
          compression,
          format
        })
        expect(StorageLocation.parseBackupObject(object)).toEqual(
          Option.some({
            namespace: "ns",
            name: "x.y",
            startedAt: new Date("2025-03-04T05:06:07Z"),
            format,
            compression,
            encrypted: false
          })
        )
        expect(StorageLocation.parseBackupObject(manifest)).toEqual(Option.none())
      }
    }
    expect(StorageLocation.parseBackupObject("backups/backup-20250304-050607.sql")).toEqual(Option.none())
    expect(StorageLocation.parseBackupObject("backups/ns/x/backup-20251304-050607.sql")).toEqual(Option.none())
    expect(StorageLocation.parseBackupObject("backups/ns/x/backup-20250230-050607.sql")).toEqual(Option.none())
    expect(StorageLocation.parseBackupObject("backups/ns/x/backup-20250304-050607.sql.bz2")).toEqual(Option.none())
    expect(StorageLocation.parseBackupObject("backups/ns/x/backup-20250304-050607.dump.sql")).toEqual(Option.none())
    expect(StorageLocation.parseBackupObject("backups/ns/x/backup-20250304-050607.tar")).toEqual(Option.none())
  })

  it.each([
    [{ kind: "gcs", bucket: "my-bucket" }, "gs://my-bucket/backups/a/db/backup-20250304-050607.sql.gz"],
    [{ kind: "s3", bucket: "my-bucket" }, "s3://my-bucket/backups/a/db/backup-20250304-050607.sql.gz"],
    [
      { kind: "azure", account: "acme", bucket: "dumps" },
      "azblob://acme/dumps/backups/a/db/backup-20250304-050607.sql.gz"
    ],
    [
      { kind: "file", bucket: StorageLocation.volumeDirectory("claim", "team/a") },
      "file:///var/lib/db-backup/claim/team/a/backups/a/db/backup-20250304-050607.sql.gz"
    ]
  ] as const)("names a %o object by its store's URL, and finds the store and object in it again", (store, expected) => {
    const object = "backups/a/db/backup-20250304-050607.sql.gz"
    const url = StorageLocation.objectUrl(store, object)
    expect(url).toBe(expected)
    expect(StorageLocation.backupObjectOfUrl(url)).toEqual(Option.some(object))
    expect(StorageLocation.backupOfUrl(url)).toEqual(Option.some({ store, object }))
    const manifest = StorageLocation.manifestObjectOf(object)
    expect(StorageLocation.backupOfUrl(StorageLocation.objectUrl(store, manifest))).toEqual(
      Option.some({ store, object: manifest })
    )
    // A custom-format dump's URL, as its Backup's status gives it to `db-backup-runner restore`.
    const custom = "backups/a/db/backup-20250304-050607.dump.zst.age"
    expect(StorageLocation.backupOfUrl(StorageLocation.objectUrl(store, custom))).toEqual(
      Option.some({ store, object: custom })
    )
  })

  it("names an encrypted dump .age after its compression's suffix, parses it, and finds its manifest", () => {
    const at = new Date("2025-03-04T05:06:07Z")
    const { object, manifest } = StorageLocation.backupObjects({
      namespace: "team",
      name: "api",
      startedAt: at,
      compression: "zstd",
      encrypted: true
    })
    expect(object).toBe("backups/team/api/backup-20250304-050607.sql.zst.age")
    expect(StorageLocation.manifestObjectOf(object)).toBe(manifest)
    expect(StorageLocation.parseBackupObject(object)).toEqual(
      Option.some({
        namespace: "team",
        name: "api",
        startedAt: at,
        format: "plain",
        compression: "zstd",
        encrypted: true
      })
    )
  })

  it.each([
    "gs://b/some/file.sql",
    "http://b/backups/a/db/backup-20250304-050607.json",
    "gs://b/extra/backups/a/db/backup-20250304-050607.json",
    "azblob://acme/backups/a/db/backup-20250304-050607.json",
    "file://relative/backups/a/db/backup-20250304-050607.json"
  ])("finds no backup in %s", (url) => {
    expect(StorageLocation.backupOfUrl(url)).toEqual(Option.none())
  })

  it("finds no dump in a URL that is not one, and the dump even under a namespace named backups", () => {
    expect(StorageLocation.backupObjectOfUrl("s3://b/o")).toEqual(Option.none())
    expect(StorageLocation.backupObjectOfUrl("gs://bucket-only")).toEqual(Option.none())
    expect(StorageLocation.backupObjectOfUrl("gs://b/backups/backups/x/backup-20250304-050607.sql")).toEqual(
      Option.some("backups/backups/x/backup-20250304-050607.sql")
    )
  })
})
