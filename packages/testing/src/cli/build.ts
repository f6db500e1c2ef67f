import { Console, Effect } from "effect"
import { Command } from "effect/cli"
import { Binaries } from "../binaries/resolve.ts"

/** `kube-testenv build`: locate or build (and cache) every test binary, then print their paths. */
export const buildCommand = Command.make("build", {}, () =>
  Effect.gen(function* () {
    const started = Date.now()
    const paths = yield* Binaries.resolve
    yield* Console.log(
      [
        `kube-apiserver           ${paths.kubeApiServer}`,
        `kube-controller-manager  ${paths.kubeControllerManager}`,
        `etcd                     ${paths.etcd}`,
        `fake-gcs-server          ${paths.fakeGcsServer}`,
        `helm                     ${paths.helm}`,
        `versitygw                ${paths.versitygw}`,
        `age                      ${paths.age}`,
        `age-keygen               ${paths.ageKeygen}`
      ].join("\n")
    )
    yield* Console.error(`kube-testenv: binaries ready in ${((Date.now() - started) / 1000).toFixed(1)} s`)
  })
).pipe(
  Command.withDescription("Build (or find in the cache, or in KUBEBUILDER_ASSETS / TEST_ASSET_*) the test binaries")
)
