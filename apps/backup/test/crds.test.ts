import {
  backupCrdFile,
  backupDatabaseSchemaCrdFile,
  backupStorageCrdFile,
  restoreCrdFile
} from "@db-backup-operator/backup-api"
import { Crd } from "@db-backup-operator/operator"
import { describe, expect, it } from "@effect/vitest"
import { customResourceDefinitions } from "../src/crds.ts"

describe("customResourceDefinitions", () => {
  it("generates the BackupDatabaseSchema CRD into its conventional file", () => {
    expect(customResourceDefinitions().map(({ file }) => file)).toEqual([
      backupDatabaseSchemaCrdFile,
      backupCrdFile,
      backupStorageCrdFile,
      restoreCrdFile
    ])
    const [entry] = customResourceDefinitions()
    if (entry === undefined) throw new Error("no CRD")
    expect(Crd.fileName(entry.crd)).toBe(entry.file)
    expect(entry.crd.metadata.name).toBe("backupdatabaseschemas.backup.csyeteam03.xyz")
    expect(entry.crd.spec.scope).toBe("Namespaced")
    expect(entry.crd.spec.names).toMatchObject({
      kind: "BackupDatabaseSchema",
      plural: "backupdatabaseschemas",
      shortNames: ["bds"],
      categories: ["backups"]
    })
  })

  it("generates the Backup CRD: one run, with its phase, times and size in kubectl get, and an immutable spec", () => {
    const entry = customResourceDefinitions()[1] ?? expect.unreachable()
    expect(Crd.fileName(entry.crd)).toBe(backupCrdFile)
    expect(entry.crd.metadata.name).toBe("backups.backup.csyeteam03.xyz")
    expect(entry.crd.spec.names).toMatchObject({ kind: "Backup", shortNames: ["bkp"], categories: ["backups"] })
    const version = entry.crd.spec.versions[0] ?? expect.unreachable()
    expect(version.subresources).toMatchObject({ status: {} })
    expect(version.additionalPrinterColumns?.map((column) => [column.name, column.priority ?? 0])).toEqual([
      ["Source", 0],
      ["Phase", 0],
      ["Started", 0],
      ["Completed", 0],
      ["Size", 0],
      ["Location", 1],
      ["Message", 1],
      ["Age", 0]
    ])
    expect(Crd.toYaml(entry.crd)).toContain("rule: self == oldSelf")
  })

  it("generates the Restore CRD: source, phase, target and tables in kubectl get, an immutable spec", () => {
    const entry = customResourceDefinitions()[3] ?? expect.unreachable()
    expect(Crd.fileName(entry.crd)).toBe(restoreCrdFile)
    expect(entry.crd.spec.names).toMatchObject({ kind: "Restore", shortNames: ["rst"], categories: ["backups"] })
    const version = entry.crd.spec.versions[0] ?? expect.unreachable()
    expect(version.subresources).toMatchObject({ status: {} })
    expect(version.additionalPrinterColumns?.map((column) => column.name)).toEqual([
      "Backup",
      "Phase",
      "Target",
      "Tables",
      "Started",
      "Completed",
      "Location",
      "Message",
      "Age"
    ])
    const yaml = Crd.toYaml(entry.crd)
    expect(yaml).toContain("spec is immutable: create another Restore")
    expect(yaml).toContain("set exactly one of backupName, backupDatabaseSchemaName and location")
  })

  it("shows schedule, status, readiness, last success and next backup in kubectl get; -o wide adds the rest", () => {
    const crd = customResourceDefinitions()[0]?.crd ?? expect.unreachable()
    const yaml = Crd.toYaml(crd)
    expect(
      crd.spec.versions[0]?.additionalPrinterColumns?.map((column) => [
        column.name,
        column.jsonPath,
        column.type,
        column.priority ?? 0
      ])
    ).toEqual([
      ["Schedule", ".spec.schedule", "string", 0],
      ["Status", ".status.status", "string", 0],
      ["Ready", '.status.conditions[?(@.type=="Ready")].reason', "string", 0],
      ["Last Success", ".status.lastSuccessfulBackupTime", "date", 0],
      // kubectl shows a date in the future as <invalid>.
      ["Next Backup", ".status.nextScheduleTime", "string", 0],
      ["Last Backup", ".status.lastBackupTime", "date", 1],
      ["Location", ".status.backupLocation", "string", 1],
      ["Age", ".metadata.creationTimestamp", "date", 0]
    ])
    expect(yaml).toContain("subresources:\n        status: {}")
    expect(yaml).toContain("x-kubernetes-list-map-keys:\n                    - type")
  })
})

describe("the BackupDatabaseSchema CRD's rules across fields", () => {
  it("asks for exactly one of gcsBucket and storageRef, gcpServiceAccount with gcsBucket, a CA for verify-ca", () => {
    const text = JSON.stringify(customResourceDefinitions()[0]?.crd)
    for (const rule of [
      "has(self.gcsBucket) != has(self.storageRef)",
      "!has(self.gcsBucket) || has(self.gcpServiceAccount)",
      "!has(self.sslMode) || self.sslMode != 'verify-ca' || has(self.sslRootCert)",
      "!has(self.gcsBucket) || (!self.gcsBucket.startsWith('goog'))"
    ]) {
      expect(text).toContain(JSON.stringify(rule).slice(1, -1))
    }
  })
})

describe("the BackupStorage CRD", () => {
  const entry = () => customResourceDefinitions()[2] ?? expect.unreachable()

  it("is namespaced, short-named bstore, and shows each store's bucket in kubectl get", () => {
    expect(entry().crd.metadata.name).toBe("backupstorages.backup.csyeteam03.xyz")
    expect(entry().crd.spec.scope).toBe("Namespaced")
    expect(entry().crd.spec.names).toMatchObject({ kind: "BackupStorage", shortNames: ["bstore"] })
    const version = entry().crd.spec.versions[0] ?? expect.unreachable()
    expect(version.additionalPrinterColumns?.map((column) => column.jsonPath)).toEqual([
      ".spec.gcs.bucket",
      ".spec.s3.bucket",
      ".spec.azure.container",
      ".spec.volume.persistentVolumeClaimName",
      ".metadata.creationTimestamp"
    ])
  })

  it("asks for exactly one store, and both S3 keys or neither, in CEL the API server enforces", () => {
    const text = JSON.stringify(entry().crd)
    expect(text).toContain("[has(self.gcs), has(self.s3), has(self.azure), has(self.volume)].filter(x, x).size() == 1")
    expect(text).toContain("has(self.accessKeyIdSecretRef) == has(self.secretAccessKeySecretRef)")
  })
})
