import { backupDatabaseSchemaCrdFile } from "@db-backup-operator/backup-api"
import { Crd } from "@db-backup-operator/operator"
import { describe, expect, it } from "@effect/vitest"
import { customResourceDefinitions } from "../src/crds.ts"

describe("customResourceDefinitions", () => {
  it("generates the BackupDatabaseSchema CRD into its conventional file", () => {
    expect(customResourceDefinitions().map(({ file }) => file)).toEqual([backupDatabaseSchemaCrdFile])
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

  it("shows status, last backup, location and age in kubectl get", () => {
    const yaml = Crd.toYaml(customResourceDefinitions()[0]?.crd ?? expect.unreachable())
    for (const column of [
      "name: Status\n          type: string\n          jsonPath: .status.status",
      "name: Last Backup\n          type: date\n          jsonPath: .status.lastBackupTime",
      "name: Location\n          type: string\n          jsonPath: .status.backupLocation",
      "name: Age\n          type: date\n          jsonPath: .metadata.creationTimestamp"
    ]) {
      expect(yaml).toContain(column)
    }
    expect(yaml).toContain("subresources:\n        status: {}")
    expect(yaml).toContain("x-kubernetes-list-map-keys:\n                    - type")
  })
})
