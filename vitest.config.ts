import { defineConfig } from "vitest/config"

// Workspace packages export their TypeScript sources under this condition and
// compiled JS (which only `npm pack` builds) by default; tests run the sources.
const sourceCondition = "@db-backup-operator/source"
// Processes the tests start (an operator, a CLI, an example) inherit it from here.
const conditionFlag = `--conditions=${sourceCondition}`
const inherited = process.env.NODE_OPTIONS ?? ""
const nodeOptions = inherited.includes(conditionFlag) ? inherited : `${inherited} ${conditionFlag}`.trim()

// Unit tests run in milliseconds; integration and end-to-end tests start a real
// control plane, PostgreSQL and a GCS emulator per file, so they get long timeouts
// and at most two files at a time (the machines this runs on have two cores).
export default defineConfig({
  // Ours, then Vite's default server conditions without "module" (a list replaces them): the AWS SDK lists
  // "module" first for bundlers, and Node cannot load that build. Vitest passes them on to its workers.
  ssr: { resolve: { conditions: [sourceCondition, "node", "development|production"] } },
  test: {
    maxWorkers: 2,
    env: { NODE_OPTIONS: nodeOptions },
    projects: [
      {
        test: {
          name: "unit",
          include: ["packages/*/test/**/*.test.ts", "apps/*/test/**/*.test.ts", "docker/**/*.test.ts"],
          exclude: ["**/*.integration.test.ts", "**/node_modules/**"]
        }
      },
      {
        test: {
          name: "integration",
          include: [
            "packages/*/test/**/*.integration.test.ts",
            "apps/*/test/**/*.integration.test.ts",
            "test/**/*.test.ts"
          ],
          testTimeout: 180_000,
          hookTimeout: 180_000
        }
      }
    ]
  }
})
