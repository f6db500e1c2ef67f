import { createHash } from "node:crypto"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { gunzipSync } from "node:zlib"
import { Storage } from "@google-cloud/storage"
import { BackupDatabaseSchema } from "@db-backup-operator/backup-api"
import { Job, KubeClient } from "@db-backup-operator/kube"
import { ControlPlane, NotReady, waitUntilReady } from "@db-backup-operator/testing"
import { Effect } from "effect"

/** Polls `probe` until it yields a value (not undefined), failing with `what` and the last state after `timeout`. */
export const eventually = <A, E, R>(
  what: string,
  probe: Effect.Effect<A | undefined, E, R>,
  timeout: `${number} seconds` = "120 seconds"
) =>
  waitUntilReady(
    Effect.flatMap(probe, (value) =>
      value === undefined ? Effect.fail(new NotReady({ reason: `waiting for ${what}` })) : Effect.succeed(value)
    ),
    { interval: "500 millis", timeout, onTimeout: (reason) => new Error(`timed out: ${reason}`) }
  )

/** Runs real kubectl and fails with its stderr on a non-zero exit. */
export const kubectl = (args: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const controlPlane = yield* ControlPlane
    const result = yield* controlPlane.kubectl(args)
    if (result.exitCode !== 0) return yield* Effect.fail(new Error(`kubectl ${args.join(" ")}: ${result.stderr}`))
    return result.stdout
  })

/** `kubectl apply -f` of YAML text written to a temporary file, exactly as a user would. */
export const applyYaml = (yaml: string) => {
  const dir = mkdtempSync(join(tmpdir(), "e2e-yaml-"))
  const file = join(dir, "resource.yaml")
  writeFileSync(file, yaml)
  return Effect.gen(function* () {
    const controlPlane = yield* ControlPlane
    return yield* controlPlane.kubectl(["apply", "-f", file])
  })
}

export const getBackup = (namespace: string, name: string) =>
  KubeClient.use((kube) => kube.get(BackupDatabaseSchema, name, { namespace }))

export const backupJobs = (namespace: string) =>
  KubeClient.use((kube) =>
    kube.list(Job, { namespace, labelSelector: "app.kubernetes.io/managed-by=db-backup-operator" })
  ).pipe(Effect.map((list) => list.items))

export const storage = (endpoint: string) => new Storage({ apiEndpoint: endpoint, projectId: "e2e" })

export const sha256 = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex")

export const gunzip = (bytes: Buffer) => gunzipSync(bytes)

/** Splits `gs://bucket/object`. */
export const parseGsUrl = (url: string) => {
  const match = /^gs:\/\/([^/]+)\/(.+)$/u.exec(url)
  if (match === null || match[1] === undefined || match[2] === undefined) throw new Error(`not a gs:// URL: ${url}`)
  return { bucket: match[1], object: match[2] }
}

/** The original README's example resource, with only the database address changed to the test's. */
export const originalExample = (options: {
  readonly name?: string
  readonly namespace: string
  readonly dbHost: string
  readonly dbPort: number
  readonly secretName?: string
}) => `apiVersion: backup.csyeteam03.xyz/v1
kind: BackupDatabaseSchema
metadata:
  name: ${options.name ?? "database-backup"}
  namespace: ${options.namespace}
spec:
  dbHost: "${options.dbHost}"
  dbUser: "team03"
  dbPasswordSecretName: "${options.secretName ?? "backup-secret"}"
  dbPasswordSecretNamespace: "${options.namespace}"
  dbPasswordSecretKey: "password"
  dbName: "api"
  dbSchema: "api"
  dbPort: ${options.dbPort}
  gcsBucket: "operator-db-backups-bucket"
  kubeServiceAccount: "backup-sa"
  gcpServiceAccount: "db-operator-gsa"
  backupJobNamespace: "${options.namespace}"
`
