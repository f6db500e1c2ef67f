import { KubeClient, type KubeError, Secret } from "@db-backup-operator/kube"
import { Effect } from "effect"
import { consentProblem, type SecretUse } from "./access.ts"

/** Why a Job may not use a Secret yet: fixed outside the resource, so rechecked. */
export interface ConsentProblem {
  readonly reason: "SecretNotFound" | "SecretNotReadable" | "SecretNotShared"
  readonly message: string
}

/**
 * Checks the consent of each Secret that must give it (one live read of its
 * metadata; the operator never reads a Secret's data): the first problem, or
 * undefined when every one consents to `resource` using it.
 *
 * @example
 * ```ts
 * declare const uses: Parameters<typeof checkConsent>[0]
 * const problem = yield* checkConsent(uses, { namespace: "team-a", name: "orders" })
 * // { reason: "SecretNotShared", message: "Secret db/backup-secret (spec.dbPasswordSecretName) does not allow ..." }
 * ```
 */
export const checkConsent = (
  uses: ReadonlyArray<SecretUse>,
  resource: { readonly namespace: string; readonly name: string }
): Effect.Effect<ConsentProblem | undefined, KubeError, KubeClient> =>
  Effect.gen(function* () {
    const kube = yield* KubeClient
    for (const use of uses) {
      const metadata = yield* kube.getMetadata(Secret, use.name, { namespace: use.namespace }).pipe(
        Effect.map((found) => ({ found })),
        Effect.catchTags({
          NotFound: () =>
            Effect.succeed<ConsentProblem>({
              reason: "SecretNotFound",
              message: `Secret ${use.namespace}/${use.name} (${use.field}) not found`
            }),
          Forbidden: () =>
            Effect.succeed<ConsentProblem>({
              reason: "SecretNotReadable",
              message: `the operator may not read Secret ${use.namespace}/${use.name} (${use.field}) to check that it allows this use: grant it get on secrets in "${use.namespace}" (the Helm chart does for the targets of operator.allowedNamespaces and, with operator.requireSecretOptIn, for operator.watchNamespaces)`
            })
        })
      )
      if (!("found" in metadata)) return metadata
      const problem = consentProblem(metadata.found.annotations, use, resource)
      if (problem !== undefined) return { reason: "SecretNotShared", message: problem } satisfies ConsentProblem
    }
    return undefined
  })
