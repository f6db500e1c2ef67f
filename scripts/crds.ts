/**
 * Generates the CRD manifests from the backup API's Schemas into `crds/` and into
 * the Helm chart's `charts/db-backup-operator/crds/` (a checked-in copy rather than
 * a symlink, so the chart works wherever it is copied, packaged or checked out).
 *
 *   node scripts/crds.ts write   # regenerate both directories (npm run crds)
 *   node scripts/crds.ts check   # exit 1 with a diff if either is out of date (npm run crds:check)
 *
 * Only files carrying the generated header are created, rewritten or removed;
 * anything hand-written in those directories is left alone.
 */
import { join } from "node:path"
import { customResourceDefinitions as build } from "@db-backup-operator/backup"
import { CrdFiles } from "@db-backup-operator/operator"

const root = join(import.meta.dirname, "..")
/** Where the generated CRDs live, relative to the repository root. */
const directories = ["crds", "charts/db-backup-operator/crds"] as const
const options = { source: "packages/backup-api" }
const mode = process.argv[2]
const customResourceDefinitions = build()

if (mode === "write") {
  for (const directory of directories) {
    const { written, removed } = CrdFiles.write(join(root, directory), customResourceDefinitions, options)
    for (const file of written) console.log(`wrote ${directory}/${file}`)
    for (const file of removed) console.log(`removed stale ${directory}/${file}`)
    if (written.length === 0 && removed.length === 0) console.log(`${directory}/ is up to date`)
  }
} else if (mode === "check") {
  const outdated: Array<string> = []
  for (const directory of directories) {
    const differences = CrdFiles.compare(join(root, directory), customResourceDefinitions, options)
    if (differences.length === 0) {
      console.log(`${directory}/ matches the Schemas (${customResourceDefinitions.length} CRDs)`)
    } else {
      for (const { diff } of differences) process.stdout.write(diff)
      outdated.push(...differences.map(({ file, kind }) => `${directory}/${file} (${kind})`))
    }
  }
  if (outdated.length > 0) {
    console.error(`\nout of date: ${outdated.join(", ")}\nRun: npm run crds`)
    process.exitCode = 1
  }
} else {
  console.error("usage: node scripts/crds.ts write|check")
  process.exitCode = 2
}
