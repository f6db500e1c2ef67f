import { Effect } from "effect"
import { ControlPlane } from "../src/controlplane/ControlPlane.ts"
const started = Date.now()
const program = Effect.gen(function* () {
  const cp = yield* ControlPlane
  console.log("ready in", Date.now() - started, "ms", cp.server, cp.dir)
  const r = yield* cp.kubectl(["get", "namespaces"])
  console.log(r)
  const t = Date.now()
  yield* cp.restartApiServer
  console.log("restart", Date.now() - t)
  console.log((yield* cp.kubectl(["get", "ns", "-o", "name"])).stdout)
})
Effect.runPromise(program.pipe(Effect.provide(ControlPlane.layer({ controllerManager: false })))).then(
  () => console.log("done"),
  (e) => { console.error("FAILED", e); process.exitCode = 1 }
)
