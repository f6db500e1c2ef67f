#!/usr/bin/env node
// Installed (under node_modules), the CLI runs from the compiled JavaScript that
// `npm pack` built: Node does not strip types there, and the package's sources
// are not what its `exports` hand out. In a checkout of the repository it runs
// from the TypeScript sources, with the workspace packages resolved to their
// sources too (the `@db-backup-operator/source` condition of their `exports`),
// whoever starts it and with whatever flags, so nothing needs building first.
import { registerHooks } from "node:module"

if (import.meta.url.includes("/node_modules/")) {
  await import("../dist/esm/cli/main.js")
} else {
  registerHooks({
    resolve: (specifier, context, nextResolve) =>
      nextResolve(specifier, { ...context, conditions: ["@db-backup-operator/source", ...context.conditions] })
  })
  await import("../src/cli/main.ts")
}
