#!/usr/bin/env node
// In the repository the app runs from its TypeScript sources. The workspace
// packages it imports resolve to their sources through the
// `@db-backup-operator/source` condition of their `exports` (their default is
// compiled JavaScript, which only a packed package contains). The condition is
// set here rather than on the command line, so `node bin/...js` works for every
// caller: the process node, the tests, a shell.
//
// The image does not run this file: its build stage bundles src/main.ts into one
// JavaScript file (scripts/bundle.ts) at this same path, so the ENTRYPOINT is
// `node /app/apps/runner/bin/db-backup-runner.js` either way.
import { registerHooks } from "node:module"

registerHooks({
  resolve: (specifier, context, nextResolve) =>
    nextResolve(specifier, { ...context, conditions: ["@db-backup-operator/source", ...context.conditions] })
})
await import("../src/main.ts")
