/**
 * Whether the backup Pod will run as `spec.gcpServiceAccount` under GKE
 * workload identity: the Kubernetes ServiceAccount it runs as must carry the
 * annotation {@link gkeAnnotation} naming that Google service account. The
 * original operator ignored `gcpServiceAccount`; an unbound ServiceAccount
 * then backs up as the node's identity, or not at all. Reported as the
 * resource's `WorkloadIdentity` condition; it never stops a run (a cluster
 * that is not GKE authenticates otherwise).
 */

/** GKE's annotation binding a Kubernetes ServiceAccount to a Google service account. */
export const gkeAnnotation = "iam.gke.io/gcp-service-account"

/** The resource's condition type for this check. */
export const workloadIdentityCondition = "WorkloadIdentity"

/** What the check found, as the condition reports it. */
export interface IdentityCheck {
  readonly status: "True" | "False"
  readonly reason: "Bound" | "ServiceAccountNotFound" | "ServiceAccountNotBound" | "ServiceAccountMismatch"
  readonly message: string
}

/** The account id of a Google service account: the part before `@` (all of a bare id). */
const accountIdOf = (account: string) => account.split("@", 1)[0] ?? account

/**
 * Compares the ServiceAccount's annotations (undefined: it does not exist)
 * with `spec.gcpServiceAccount`. A bare account id (`db-operator-gsa`, as the
 * original example writes it) matches any email with that id; an email must
 * match exactly.
 *
 * @example
 * ```ts
 * checkWorkloadIdentity({
 *   serviceAccount: { namespace: "backups", name: "backup-sa" },
 *   field: "spec.kubeServiceAccount",
 *   annotations: { "iam.gke.io/gcp-service-account": "db-operator-gsa@my-project.iam.gserviceaccount.com" },
 *   gcpServiceAccount: "db-operator-gsa"
 * }) // { status: "True", reason: "Bound", ... }
 * ```
 */
export const checkWorkloadIdentity = (input: {
  readonly serviceAccount: { readonly namespace: string; readonly name: string }
  /** Where the ServiceAccount's name comes from, for the message. */
  readonly field: string
  readonly annotations: Readonly<Record<string, string>> | undefined
  readonly gcpServiceAccount: string
}): IdentityCheck => {
  const { namespace, name } = input.serviceAccount
  const wanted = input.gcpServiceAccount
  const sa = `ServiceAccount ${namespace}/${name} (${input.field})`
  if (input.annotations === undefined) {
    return {
      status: "False",
      reason: "ServiceAccountNotFound",
      message: `${sa} does not exist: the backup Pod cannot run as it`
    }
  }
  const bound = input.annotations[gkeAnnotation]
  const fix = `kubectl annotate serviceaccount -n ${namespace} ${name} ${gkeAnnotation}=${wanted.includes("@") ? wanted : `${wanted}@<project>.iam.gserviceaccount.com`} --overwrite`
  if (bound === undefined || bound.trim() === "") {
    return {
      status: "False",
      reason: "ServiceAccountNotBound",
      message: `${sa} has no annotation ${gkeAnnotation}, so under GKE workload identity the backup does not run as spec.gcpServiceAccount "${wanted}": ${fix}`
    }
  }
  const matches = wanted.includes("@") ? bound === wanted : accountIdOf(bound) === wanted
  return matches
    ? { status: "True", reason: "Bound", message: `${sa} is bound to ${bound}` }
    : {
        status: "False",
        reason: "ServiceAccountMismatch",
        message: `${sa} is bound to ${bound}, not to spec.gcpServiceAccount "${wanted}": ${fix}`
      }
}
