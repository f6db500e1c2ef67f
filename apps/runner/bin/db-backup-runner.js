#!/usr/bin/env node
// The app runs from its TypeScript sources, here and in its image. The workspace
// packages it imports resolve to their sources through the
// `@db-backup-operator/source` condition of their `exports` (their default is
// compiled JavaScript, which only a packed package contains). The condition is
// set here rather than on the command line, so `node bin/...js` works for every
// caller: the image's ENTRYPOINT, the process node, the tests, a shell.
import { registerHooks } from "node:module"

registerHooks({
  resolve: (specifier, context, nextResolve) =>
    nextResolve(specifier, { ...context, conditions: ["@db-backup-operator/source", ...context.conditions] })
})
await import("../src/main.ts")
