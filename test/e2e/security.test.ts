import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { ControlPlane, FakePostgres, makeTestPki, Postgres } from "@db-backup-operator/testing"
import { NodeServices } from "@effect/platform-node"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { installChart, installedEnvironment, operatorPodsReady, operatorServiceAccount } from "./installed.ts"
import {
  applyYaml,
  backupJobs,
  eventsIn,
  eventually,
  failed,
  getBackup,
  kubectl,
  originalExample,
  prepareNamespace,
  seedExampleDatabase,
  succeeded
} from "./support.ts"

// The issue's attacks, against the installed product (images, chart, RBAC), with the
// runner image's libpq 17. The attacker may create backup resources in their namespace
// but may not read its Secrets; their server is FakePostgres, which declines TLS and asks
// for the password in cleartext, as a 40-line attacker's server would.

const password = "team03-Pa55"
/** The unrelated Secret the attacker wants. */
const stolen = "TOP-SECRET-TOKEN-123"
const attacker = "tenant-a"
const other = "tenant-b"
const sharedDb = "shared-db"
const hardened = "tenant-c"

const Environment = Layer.effectDiscard(
  Effect.gen(function* () {
    yield* seedExampleDatabase(password)
    // The chart grants the operator `get` on Secrets in shared-db with a Role there: the
    // namespace must exist before helm install.
    yield* prepareNamespace(sharedDb, { name: "backup-secret", password })
    // The only cross-namespace grant: tenant-a may use shared-db (with the Secret's consent).
    yield* installChart([
      `operator.allowedNamespaces[0].from=${attacker}`,
      `operator.allowedNamespaces[0].to=${sharedDb}`
    ])
    yield* operatorPodsReady(2)
  })
).pipe(
  Layer.provideMerge(FakePostgres.layer),
  Layer.provideMerge(installedEnvironment(Postgres.layerWith({ tls: true })))
)

/** Two Pods fail (backoffLimit 1, 10 s apart) before a Job does. */
const failingRun = "180 seconds"

const readyOf = (namespace: string, name: string) =>
  Effect.map(getBackup(namespace, name), (backup) => backup.status?.conditions?.find((c) => c.type === "Ready"))

/** Waits for the resource's Ready condition to have `reason`, and returns it. */
const readyWith = (namespace: string, name: string, reason: string) =>
  eventually(
    `${namespace}/${name} Ready reason ${reason}`,
    Effect.map(readyOf(namespace, name), (ready) => (ready?.reason === reason ? ready : undefined)),
    "120 seconds"
  )

/** `kubectl auth can-i VERB secrets` as the operator's ServiceAccount: what it prints, "yes" or "no". */
const operatorCan = (verb: string, where: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const controlPlane = yield* ControlPlane
    // can-i exits 1 when the answer is no: the printed answer is what counts.
    const result = yield* controlPlane.kubectl([
      "auth",
      "can-i",
      verb,
      "secrets",
      ...where,
      `--as=${operatorServiceAccount}`
    ])
    return result.stdout.trim()
  })

/** The example resource with `extra` spec lines appended. */
const resource = (options: Parameters<typeof originalExample>[0], extra: ReadonlyArray<string> = []) =>
  `${originalExample(options)}${extra.map((line) => `  ${line}\n`).join("")}`

const caConfigMap = (namespace: string, name: string, pem: string) =>
  Effect.gen(function* () {
    const file = join(yield* Effect.sync(() => process.env.TMPDIR ?? "/tmp"), `${namespace}-${name}.crt`)
    writeFileSync(file, pem)
    yield* kubectl(["create", "configmap", "-n", namespace, name, `--from-file=ca.crt=${file}`])
  })

/** Nothing of `secret` in the resource, its Events, its Jobs' specs or their logs. */
const assertNothingLeaks = (namespace: string, name: string, secret: string) =>
  Effect.gen(function* () {
    const backup = yield* kubectl(["get", "bds", "-n", namespace, name, "-o", "json"])
    const events = yield* kubectl(["get", "events.events.k8s.io", "-n", namespace, "-o", "json"])
    const jobs = yield* kubectl(["get", "jobs", "-n", namespace, "-o", "json"])
    assert.notInclude(backup + events + jobs, secret)
    for (const job of yield* backupJobs(namespace)) {
      const logs = yield* kubectl(["logs", "-n", namespace, `job/${job.metadata.name ?? "?"}`]).pipe(
        Effect.orElseSucceed(() => "")
      )
      assert.notInclude(logs, secret)
    }
  })

layer(Environment, { timeout: "900 seconds", excludeTestServices: true })(
  "a backup resource as an attacker's tool",
  (it) => {
    it.effect(
      "a server that declines TLS and asks for the password in cleartext gets nothing, whatever sslMode",
      () =>
        Effect.gen(function* () {
          const fake = yield* FakePostgres
          yield* prepareNamespace(attacker, { name: "victim-secret", password: stolen })
          // The original resource, unchanged but for the attacker's server and the victim's Secret.
          const target = { namespace: attacker, dbHost: fake.host, dbPort: fake.port, secretName: "victim-secret" }
          for (const applied of [
            yield* applyYaml(originalExample({ ...target, name: "steal-default" })),
            yield* applyYaml(resource({ ...target, name: "steal-require" }, ["sslMode: require"]))
          ]) {
            assert.strictEqual(applied.exitCode, 0, applied.stderr)
          }
          const byDefault = yield* failed(attacker, "steal-default", failingRun)
          const underRequire = yield* failed(attacker, "steal-require", failingRun)

          assert.deepStrictEqual(yield* fake.passwords, [], "the fake server received no password")
          assert.isAbove(yield* fake.connections, 0, "the runner did reach the fake server")
          const defaultMessage = byDefault.status?.conditions?.find((c) => c.type === "Ready")?.message ?? ""
          const requireMessage = underRequire.status?.conditions?.find((c) => c.type === "Ready")?.message ?? ""
          assert.include(defaultMessage, "cleartext")
          assert.match(requireMessage, /TLS|SSL/u)
          yield* assertNothingLeaks(attacker, "steal-default", stolen)
          yield* assertNothingLeaks(attacker, "steal-require", stolen)
          yield* Effect.logInfo(`default sslMode: ${defaultMessage}`)
          yield* Effect.logInfo(`sslMode require: ${requireMessage}`)
        }),
      { timeout: 400_000 }
    )

    it.effect(
      "another namespace's Secret: refused without the administrator's pair and without the Secret's consent; with both, a verify-full backup",
      () =>
        Effect.gen(function* () {
          const pg = yield* Postgres
          const caPem = pg.tls?.caPem ?? ""
          assert.include(caPem, "BEGIN CERTIFICATE")
          yield* caConfigMap(sharedDb, "db-ca", caPem)
          yield* prepareNamespace(other, undefined)
          const tls = ["sslMode: verify-full", "sslRootCert:", "  configMapKeyRef: { name: db-ca, key: ca.crt }"]
          const crossing = (namespace: string) =>
            resource(
              { namespace, name: "orders", dbHost: pg.host, dbPort: pg.port, backupJobNamespace: sharedDb },
              tls
            ).replace(`dbPasswordSecretNamespace: "${namespace}"`, `dbPasswordSecretNamespace: "${sharedDb}"`)

          // tenant-b has no pair: refused before anything is read or created.
          assert.strictEqual((yield* applyYaml(crossing(other))).exitCode, 0)
          const noPair = yield* readyWith(other, "orders", "CrossNamespaceNotAllowed")
          assert.include(noPair.message, `--allowed-namespaces ${other}:${sharedDb}`)

          // tenant-a has the pair, but the Secret has not consented.
          assert.strictEqual((yield* applyYaml(crossing(attacker))).exitCode, 0)
          const noConsent = yield* readyWith(attacker, "orders", "SecretNotShared")
          assert.include(noConsent.message, "backup.csyeteam03.xyz/usable-by")
          assert.include(noConsent.message, `${attacker}/orders`)
          assert.strictEqual((yield* backupJobs(sharedDb)).length, 0, "no Job while consent is missing")
          // The Warning is written just after the status that was waited for.
          yield* eventually(
            "a SecretNotShared Warning",
            Effect.map(eventsIn(attacker), (events) =>
              events.find((event) => event.reason === "SecretNotShared" && event.type === "Warning")
            )
          )

          // The Secret's owner consents to exactly that resource: a backup over verified TLS.
          yield* kubectl([
            "annotate",
            "secret",
            "-n",
            sharedDb,
            "backup-secret",
            `backup.csyeteam03.xyz/usable-by=${attacker}/orders`
          ])
          const done = yield* succeeded(attacker, "orders", "180 seconds")
          assert.strictEqual(done.status?.conditions?.find((c) => c.type === "Ready")?.status, "True")
          const job = (yield* backupJobs(sharedDb))[0]
          const env = job?.spec?.template.spec?.containers[0]?.env ?? []
          assert.deepInclude(env, { name: "DB_SSL_MODE", value: "verify-full" })
          assert.deepInclude(env, {
            name: "DB_SSL_ROOT_CERT",
            valueFrom: { configMapKeyRef: { name: "db-ca", key: "ca.crt" } }
          })
          // tenant-b is still refused: the consent names tenant-a's resource only.
          assert.strictEqual((yield* readyOf(other, "orders"))?.reason, "CrossNamespaceNotAllowed")

          // The Secret deleted after that success: the operator, which may read it, says so within
          // its recheck (30 s), in the READY column, long before the next run would find out.
          yield* kubectl(["delete", "secret", "-n", sharedDb, "backup-secret"])
          yield* eventually(
            "Ready=False SecretNotFound",
            Effect.map(readyOf(attacker, "orders"), (ready) =>
              ready?.status === "False" && ready.reason === "SecretNotFound" ? ready : undefined
            ),
            "45 seconds"
          )
          assert.match(yield* kubectl(["get", "bds", "orders", "-n", attacker]), /\bSecretNotFound\b/u)
        }),
      { timeout: 400_000 }
    )

    it.effect("verify-full against a certificate from another CA fails, naming the CA, and sends nothing", () =>
      Effect.gen(function* () {
        const pg = yield* Postgres
        const wrongCa = yield* makeTestPki({ commonName: "someone-else" }).pipe(Effect.provide(NodeServices.layer))
        const namespace = "wrong-ca"
        yield* prepareNamespace(namespace, { name: "backup-secret", password })
        yield* caConfigMap(namespace, "db-ca", wrongCa.ca.certPem)
        const applied = yield* applyYaml(
          resource({ namespace, dbHost: pg.host, dbPort: pg.port }, [
            "sslMode: verify-full",
            "sslRootCert:",
            "  configMapKeyRef: { name: db-ca, key: ca.crt }"
          ])
        )
        assert.strictEqual(applied.exitCode, 0, applied.stderr)
        const backup = yield* failed(namespace, "database-backup", failingRun)
        const message = backup.status?.conditions?.find((c) => c.type === "Ready")?.message ?? ""
        assert.include(message, "certificate")
        assert.include(message, "spec.sslRootCert")
      }).pipe(Effect.scoped)
    )

    it.effect(
      "the operator's ServiceAccount cannot read Secrets cluster-wide, only get them where consent is checked",
      () =>
        Effect.gen(function* () {
          assert.strictEqual(yield* operatorCan("get", ["-A"]), "no")
          assert.strictEqual(yield* operatorCan("get", ["-n", attacker]), "no")
          assert.strictEqual(yield* operatorCan("get", ["-n", sharedDb]), "yes")
          assert.strictEqual(yield* operatorCan("list", ["-n", sharedDb]), "no")
          assert.strictEqual(yield* operatorCan("watch", ["-n", sharedDb]), "no")
        })
    )

    it.effect(
      "hardened (requireSecretOptIn, minSslMode verify-full): the own namespace's Secret needs consent and weaker modes are refused",
      () =>
        Effect.gen(function* () {
          const pg = yield* Postgres
          // Its Role (get on Secrets, for the consent) needs the namespace before the upgrade.
          yield* prepareNamespace(hardened, { name: "backup-secret", password })
          yield* installChart(
            [
              `operator.allowedNamespaces[0].from=${attacker}`,
              `operator.allowedNamespaces[0].to=${sharedDb}`,
              "operator.requireSecretOptIn=true",
              "operator.minSslMode=verify-full",
              `operator.watchNamespaces={${[attacker, other, sharedDb, hardened].join(",")}}`
            ],
            "upgrade"
          )
          yield* operatorPodsReady(2)
          yield* caConfigMap(hardened, "db-ca", pg.tls?.caPem ?? "")
          const ca = ["sslRootCert:", "  configMapKeyRef: { name: db-ca, key: ca.crt }"]

          // An explicit weaker mode is refused, naming the field.
          assert.strictEqual(
            (yield* applyYaml(
              resource({ namespace: hardened, name: "weak", dbHost: pg.host, dbPort: pg.port }, ["sslMode: prefer"])
            )).exitCode,
            0
          )
          const weak = yield* readyWith(hardened, "weak", "SslModeNotAllowed")
          assert.include(weak.message, "spec.sslMode")

          // No mode: the floor (verify-full). The Secret in its own namespace must consent first.
          assert.strictEqual(
            (yield* applyYaml(resource({ namespace: hardened, name: "strict", dbHost: pg.host, dbPort: pg.port }, ca)))
              .exitCode,
            0
          )
          yield* readyWith(hardened, "strict", "SecretNotShared")
          assert.strictEqual((yield* backupJobs(hardened)).length, 0)
          yield* kubectl([
            "annotate",
            "secret",
            "-n",
            hardened,
            "backup-secret",
            `backup.csyeteam03.xyz/usable-by=${hardened}/strict`
          ])
          yield* succeeded(hardened, "strict", "180 seconds")
          const job = (yield* backupJobs(hardened)).find((j) => j.metadata.labels !== undefined)
          assert.deepInclude(job?.spec?.template.spec?.containers[0]?.env ?? [], {
            name: "DB_SSL_MODE",
            value: "verify-full"
          })
          // The consent named "strict" only: "weak" stays refused (for its mode, checked first).
          assert.strictEqual((yield* readyOf(hardened, "weak"))?.reason, "SslModeNotAllowed")
          assert.strictEqual(yield* operatorCan("get", ["-n", hardened]), "yes")
          assert.strictEqual(yield* operatorCan("get", ["-A"]), "no")
        }),
      { timeout: 400_000 }
    )
  }
)
