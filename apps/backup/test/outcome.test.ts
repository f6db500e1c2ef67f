import type { Pod } from "@db-backup-operator/kube"
import { describe, expect, it } from "@effect/vitest"
import { notStarted, podProblem } from "../src/outcome.ts"

const pod = (created: string, waiting?: { reason: string; message?: string }, phase = "Pending"): Pod => ({
  metadata: { name: `run-${created}`, creationTimestamp: created },
  spec: { containers: [{ name: "runner", image: "db-backup-runner" }] },
  status: {
    phase,
    containerStatuses: [
      {
        name: "runner",
        ready: false,
        restartCount: 0,
        image: "db-backup-runner",
        imageID: "",
        state: waiting === undefined ? { running: {} } : { waiting }
      }
    ]
  }
})

describe("podProblem", () => {
  it.each([
    ['secret "backup-secret" not found', "SecretNotFound"],
    ["couldn't find key password in Secret team-a/backup-secret", "SecretKeyNotFound"],
    ['configmap "db-ca" not found', "ConfigMapNotFound"],
    ["couldn't find key ca.crt in ConfigMap team-a/db-ca", "ConfigMapKeyNotFound"],
    ["some other kubelet complaint", "CreateContainerConfigError"]
  ])("the kubelet's %j is reported as %s, with its own words", (message, reason) => {
    expect(podProblem([pod("2026-01-01T00:00:00Z", { reason: "CreateContainerConfigError", message })])).toEqual({
      reason,
      message: `the backup Pod cannot start: ${message} (CreateContainerConfigError)`
    })
  })

  it("reports image pull errors by their reason", () => {
    expect(podProblem([pod("2026-01-01T00:00:00Z", { reason: "ImagePullBackOff" })])).toEqual({
      reason: "ImagePullBackOff",
      message: "the backup Pod cannot start: ImagePullBackOff"
    })
  })

  it.each([
    ["no Pod yet", []],
    ["a container being created", [pod("2026-01-01T00:00:00Z", { reason: "ContainerCreating" })]],
    ["a running container", [pod("2026-01-01T00:00:00Z", undefined, "Running")]],
    [
      "an older stuck Pod but a newer running one",
      [
        pod("2026-01-01T00:00:00Z", { reason: "CreateContainerConfigError", message: 'secret "s" not found' }),
        pod("2026-01-01T00:01:00Z", undefined, "Running")
      ]
    ]
  ])("nothing with %s", (_, pods) => {
    expect(podProblem(pods)).toBeUndefined()
  })
})

describe("notStarted", () => {
  it("is true without Pods and for Pending ones, false once one runs", () => {
    expect(notStarted([])).toBe(true)
    expect(notStarted([pod("2026-01-01T00:00:00Z", { reason: "ContainerCreating" })])).toBe(true)
    expect(notStarted([pod("2026-01-01T00:00:00Z", undefined, "Running")])).toBe(false)
  })
})
