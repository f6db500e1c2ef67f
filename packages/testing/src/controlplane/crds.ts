import { Duration, Effect, Schema } from "effect"
import type { HttpClient } from "effect/http"
import { probeOk } from "../http.ts"
import { NotReady, waitUntilReady } from "../poll.ts"
import { ControlPlaneError } from "./ControlPlaneError.ts"
import type { Kubectl } from "./kubectl.ts"

const Crd = Schema.Struct({
  spec: Schema.Struct({
    group: Schema.String,
    names: Schema.Struct({ plural: Schema.String }),
    versions: Schema.Array(Schema.Struct({ name: Schema.String, served: Schema.Boolean }))
  })
})

const Discovery = Schema.Struct({ resources: Schema.Array(Schema.Struct({ name: Schema.String })) })

const checked = (kubectl: Kubectl, args: ReadonlyArray<string>) =>
  kubectl(args).pipe(
    Effect.flatMap((result) =>
      result.exitCode === 0
        ? Effect.succeed(result.stdout)
        : Effect.fail(
            new ControlPlaneError({
              message: `kubectl ${args.join(" ")} failed (${result.exitCode}): ${result.stderr.trim()}`
            })
          )
    )
  )

/**
 * Installs CRDs from YAML files (server-side apply, so large schemas fit), waits
 * until each is `Established`, then until every served version is in API
 * discovery, like envtest. Returns the CRD names.
 *
 * @example
 * ```ts
 * yield* installCrds(kubectl, client, server, ["crds/backup.yaml"])
 * ```
 */
export const installCrds = (
  kubectl: Kubectl,
  client: HttpClient.HttpClient,
  server: string,
  paths: ReadonlyArray<string>
): Effect.Effect<ReadonlyArray<string>, ControlPlaneError> =>
  Effect.gen(function* () {
    const names: Array<string> = []
    for (const path of paths) {
      const out = yield* checked(kubectl, [
        "apply",
        "--server-side",
        "--field-manager=kube-testenv",
        "-f",
        path,
        "-o",
        "name"
      ])
      names.push(...out.split("\n").filter((line) => line.startsWith("customresourcedefinition")))
    }
    if (names.length === 0) return names
    yield* checked(kubectl, ["wait", "--for=condition=Established", "--timeout=60s", ...names])
    for (const name of names) {
      const crd = yield* checked(kubectl, ["get", name, "-o", "json"]).pipe(
        Effect.flatMap(Schema.decodeUnknownEffect(Schema.fromJsonString(Crd))),
        Effect.mapError((e) => new ControlPlaneError({ message: `cannot read ${name}: ${e.message}`, cause: e }))
      )
      for (const version of crd.spec.versions.filter((v) => v.served)) {
        const url = `${server}/apis/${crd.spec.group}/${version.name}`
        yield* waitUntilReady(
          probeOk(client, url).pipe(
            Effect.flatMap((body) =>
              Schema.decodeUnknownEffect(Schema.fromJsonString(Discovery))(body).pipe(
                Effect.mapError((e) => new NotReady({ reason: e.message }))
              )
            ),
            Effect.flatMap((discovery) =>
              discovery.resources.some((r) => r.name === crd.spec.names.plural)
                ? Effect.void
                : Effect.fail(new NotReady({ reason: `${crd.spec.names.plural} not yet in ${url}` }))
            )
          ),
          {
            interval: Duration.millis(100),
            timeout: Duration.seconds(30),
            onTimeout: (reason) => new ControlPlaneError({ message: `${name} never appeared in discovery: ${reason}` })
          }
        )
      }
    }
    return names
  })
