/**
 * Generates the CRD manifests in `crds/` from the backup API's Schemas.
 *
 *   node scripts/crds.ts write   # regenerate crds/*.yaml (npm run crds)
 *   node scripts/crds.ts check   # exit 1 with a diff if crds/ is out of date (npm run crds:check)
 *
 * Only files carrying the generated header are created, rewritten or removed;
 * anything hand-written in crds/ is left alone.
 */
import { join } from "node:path"
import { customResourceDefinitions } from "@db-backup-operator/backup-api"
import { CrdFiles } from "@db-backup-operator/operator"

const directory = join(import.meta.dirname, "..", "crds")
const options = { source: "packages/backup-api" }
const mode = process.argv[2]

if (mode === "write") {
  const { written, removed } = CrdFiles.write(directory, customResourceDefinitions, options)
  for (const file of written) console.log(`wrote crds/${file}`)
  for (const file of removed) console.log(`removed stale crds/${file}`)
  if (written.length === 0 && removed.length === 0) console.log("crds/ is up to date")
} else if (mode === "check") {
  const differences = CrdFiles.compare(directory, customResourceDefinitions, options)
  if (differences.length === 0) {
    console.log(`crds/ matches the Schemas (${customResourceDefinitions.length} CRDs)`)
  } else {
    for (const { diff } of differences) process.stdout.write(diff)
    console.error(
      `\ncrds/ is out of date: ${differences.map(({ file, kind }) => `${file} (${kind})`).join(", ")}\nRun: npm run crds`
    )
    process.exitCode = 1
  }
} else {
  console.error("usage: node scripts/crds.ts write|check")
  process.exitCode = 2
}
