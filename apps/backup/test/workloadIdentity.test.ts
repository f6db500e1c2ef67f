import { describe, expect, it } from "@effect/vitest"
import { checkWorkloadIdentity, gkeAnnotation } from "../src/workloadIdentity.ts"

const check = (annotations: Record<string, string> | undefined, gcpServiceAccount = "db-operator-gsa") =>
  checkWorkloadIdentity({
    serviceAccount: { namespace: "backups", name: "backup-sa" },
    field: "spec.kubeServiceAccount",
    annotations,
    gcpServiceAccount
  })

describe("checkWorkloadIdentity", () => {
  it.each([
    [
      "a bare id bound to that id's email",
      { [gkeAnnotation]: "db-operator-gsa@p.iam.gserviceaccount.com" },
      "db-operator-gsa",
      "Bound"
    ],
    [
      "an email bound to exactly it",
      { [gkeAnnotation]: "gsa@p.iam.gserviceaccount.com" },
      "gsa@p.iam.gserviceaccount.com",
      "Bound"
    ],
    ["no annotation", {}, "db-operator-gsa", "ServiceAccountNotBound"],
    ["an empty annotation", { [gkeAnnotation]: " " }, "db-operator-gsa", "ServiceAccountNotBound"],
    [
      "another account",
      { [gkeAnnotation]: "other@p.iam.gserviceaccount.com" },
      "db-operator-gsa",
      "ServiceAccountMismatch"
    ],
    [
      "the same id in another project, for an email",
      { [gkeAnnotation]: "gsa@q.iam.gserviceaccount.com" },
      "gsa@p.iam.gserviceaccount.com",
      "ServiceAccountMismatch"
    ],
    ["no ServiceAccount", undefined, "db-operator-gsa", "ServiceAccountNotFound"]
  ] as const)("%s", (_, annotations, account, reason) => {
    const result = check(annotations, account)
    expect(result.reason).toBe(reason)
    expect(result.status).toBe(reason === "Bound" ? "True" : "False")
  })

  it("tells how to bind it, naming the field and the annotation", () => {
    expect(check({}).message).toBe(
      'ServiceAccount backups/backup-sa (spec.kubeServiceAccount) has no annotation iam.gke.io/gcp-service-account, so under GKE workload identity the backup does not run as spec.gcpServiceAccount "db-operator-gsa": kubectl annotate serviceaccount -n backups backup-sa iam.gke.io/gcp-service-account=db-operator-gsa@<project>.iam.gserviceaccount.com --overwrite'
    )
  })
})
