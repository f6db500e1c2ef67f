import { readdir, readFile } from "node:fs/promises"
import { join } from "node:path"
import { ControlPlane, ProcessNode } from "@db-backup-operator/testing"
import { Context, Effect, Layer } from "effect"

/**
 * The secret values (passwords, keys) the stack's users put into Secrets. When
 * the stack is released, none of them may appear in the operator's log, in a
 * backup Pod's output, or in anything the API server holds but Secrets:
 * resources and their status, `Backup` records, Restores, Events, Jobs, Pods,
 * ConfigMaps, ServiceAccounts, Leases. One check over every end-to-end test,
 * whatever each test asserts itself.
 *
 * @example
 * ```ts
 * yield* KnownSecrets.use((secrets) => secrets.add("s3cret"))
 * ```
 */
export class KnownSecrets extends Context.Service<
  KnownSecrets,
  {
    readonly add: (value: string) => Effect.Effect<void>
    readonly values: Effect.Effect<ReadonlyArray<string>>
  }
>()("test/stack/KnownSecrets") {
  static readonly layer: Layer.Layer<KnownSecrets> = Layer.sync(KnownSecrets, () => {
    const known = new Set<string>()
    return KnownSecrets.of({
      add: (value) =>
        Effect.sync(() => {
          known.add(value)
        }),
      values: Effect.sync(() => [...known])
    })
  })
}

/** What the API server holds, Secrets excepted. */
const kinds = [
  "backupdatabaseschemas.backup.csyeteam03.xyz",
  "backups.backup.csyeteam03.xyz",
  "backupstorages.backup.csyeteam03.xyz",
  "restores.backup.csyeteam03.xyz",
  "events",
  "jobs",
  "pods",
  "configmaps",
  "serviceaccounts",
  "leases"
].join(",")

/** Every container log the process node wrote (`pods/<pod>/containers/<name>/<restart>.log`). */
const containerLogs = (workDir: string): Promise<ReadonlyArray<string>> =>
  readdir(join(workDir, "pods"), { recursive: true })
    .then((entries) => entries.filter((entry) => /\/containers\/[^/]+\/\d+\.log$/u.test(entry)))
    .then((entries) => entries.map((entry) => join(workDir, "pods", entry)))
    .catch(() => [])

/**
 * Where a known secret appears (a line per place, naming the secret by its
 * position, not its value): the operator's log, each backup Pod's output, and
 * the API server's objects. Plain text and base64 both count.
 */
export const findLeaks = <R>(operatorLog: Effect.Effect<string, never, R>) =>
  Effect.gen(function* () {
    const secrets = (yield* KnownSecrets.use((known) => known.values)).filter((value) => value.length >= 6)
    if (secrets.length === 0) return []
    const forms = secrets.map((value) => [value, Buffer.from(value).toString("base64")])
    const found: Array<string> = []
    const scan = (where: string, text: string) => {
      for (const [index, [plain, base64]] of forms.entries()) {
        if (text.includes(plain ?? "") || text.includes(base64 ?? ""))
          found.push(`known secret #${index + 1} in ${where}`)
      }
    }
    scan("the operator's log", yield* operatorLog)
    const node = yield* ProcessNode
    for (const file of yield* Effect.promise(() => containerLogs(node.workDir))) {
      scan(file, yield* Effect.promise(() => readFile(file, "utf8").catch(() => "")))
    }
    const controlPlane = yield* ControlPlane
    const objects = yield* controlPlane.kubectl(["get", kinds, "--all-namespaces", "-o", "json"]).pipe(Effect.orDie)
    if (objects.exitCode !== 0) return yield* Effect.die(new Error(`kubectl get ${kinds}: ${objects.stderr}`))
    const items = (JSON.parse(objects.stdout) as { readonly items: ReadonlyArray<Record<string, unknown>> }).items
    for (const item of items) {
      const metadata = item.metadata as { readonly namespace?: string; readonly name?: string } | undefined
      scan(`${String(item.kind)} ${metadata?.namespace ?? ""}/${metadata?.name ?? ""}`, JSON.stringify(item))
    }
    return found
  })

/**
 * When its scope closes (a test file's stack is released), fails with a defect
 * if a known secret leaked: vitest reports it on the file that leaked it.
 */
export const noLeaksAtRelease = <R>(operatorLog: Effect.Effect<string, never, R>) =>
  Layer.effectDiscard(
    Effect.addFinalizer(() =>
      findLeaks(operatorLog).pipe(
        Effect.flatMap((leaks) =>
          leaks.length === 0
            ? Effect.void
            : Effect.die(new Error(`a password or key from a test's Secret leaked:\n${leaks.join("\n")}`))
        )
      )
    )
  )
