import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { EnvVar, ResourceRequirements, SecurityContext, StringMap } from "@db-backup-operator/kube"
import { ControlPlane, eventually, freePorts, startDaemon } from "@db-backup-operator/testing"
import { NodeServices } from "@effect/platform-node"
import { assert, describe, it, layer } from "@effect/vitest"
import { Effect, Layer, Result, Schema } from "effect"
import { Yaml } from "effect/encoding"
import {
  chartDir,
  defaultRelease,
  helm,
  helmTemplate,
  renderChart,
  type TemplateOptions,
  yamlDocuments
} from "./helm.ts"

// The Helm chart, checked with the real helm and the real API server: lint, values that
// must be refused (values.schema.json and the templates' own checks), the rendered
// Deployment and RBAC against what the operator needs, a server-side dry run of
// everything, and the operator binary started with exactly the flags the chart renders.

const root = new URL("../../", import.meta.url)
// The chart's CRDs: BackupDatabaseSchema, Backup (one record per run), BackupStorage (a shared
// storage definition) and Restore, all watched by the operator.
const crdNames = [
  "backupdatabaseschemas.backup.csyeteam03.xyz",
  "backups.backup.csyeteam03.xyz",
  "backupstorages.backup.csyeteam03.xyz",
  "restores.backup.csyeteam03.xyz"
]
const chartCrds = [
  "backup.csyeteam03.xyz_backupdatabaseschemas.yaml",
  "backup.csyeteam03.xyz_backups.yaml",
  "backup.csyeteam03.xyz_backupstorages.yaml",
  "backup.csyeteam03.xyz_restores.yaml"
].map((file) => fileURLToPath(new URL(`charts/db-backup-operator/crds/${file}`, root)))
const operatorBin = fileURLToPath(new URL("apps/operator/bin/db-backup-operator.js", root))
const operatorVersion = Schema.decodeUnknownSync(Schema.Struct({ version: Schema.String }))(
  JSON.parse(readFileSync(new URL("apps/operator/package.json", root), "utf8"))
).version

// What the operator's code calls, verb by verb (moved verbatim from the former
// deploy/rbac.yaml; test/e2e/rbac.test.ts proves they suffice). A rule added to the chart
// or dropped from it fails here. No `secrets`: Secrets are read only through the
// per-namespace Roles below (secretOptInRules), where a Secret must opt in.
const operatorRules = [
  {
    apiGroups: ["backup.csyeteam03.xyz"],
    resources: ["backupdatabaseschemas"],
    verbs: ["get", "list", "watch", "patch"]
  },
  { apiGroups: ["backup.csyeteam03.xyz"], resources: ["backupdatabaseschemas/status"], verbs: ["patch"] },
  { apiGroups: ["backup.csyeteam03.xyz"], resources: ["backupdatabaseschemas/finalizers"], verbs: ["update"] },
  { apiGroups: ["backup.csyeteam03.xyz"], resources: ["backups"], verbs: ["list", "watch", "create", "delete"] },
  { apiGroups: ["backup.csyeteam03.xyz"], resources: ["backups/status"], verbs: ["patch"] },
  { apiGroups: ["backup.csyeteam03.xyz"], resources: ["backups/finalizers"], verbs: ["update"] },
  { apiGroups: ["backup.csyeteam03.xyz"], resources: ["backupstorages"], verbs: ["list", "watch"] },
  { apiGroups: ["backup.csyeteam03.xyz"], resources: ["restores"], verbs: ["list", "watch", "create", "patch"] },
  { apiGroups: ["backup.csyeteam03.xyz"], resources: ["restores/status"], verbs: ["patch"] },
  { apiGroups: ["backup.csyeteam03.xyz"], resources: ["restores/finalizers"], verbs: ["update"] },
  { apiGroups: ["batch"], resources: ["jobs"], verbs: ["list", "watch", "create", "patch", "delete"] },
  { apiGroups: [""], resources: ["pods"], verbs: ["list"] },
  { apiGroups: [""], resources: ["serviceaccounts"], verbs: ["get"] },
  { apiGroups: ["events.k8s.io"], resources: ["events"], verbs: ["create", "patch"] }
]
const leaderElectionRules = [
  { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["get", "create", "update", "patch"] }
]
const secretOptInRules = [{ apiGroups: [""], resources: ["secrets"], verbs: ["get"] }]

// Only the fields the assertions read; decoding drops the rest.
const Metadata = Schema.Struct({
  name: Schema.String,
  namespace: Schema.optionalKey(Schema.String),
  labels: Schema.optionalKey(StringMap),
  annotations: Schema.optionalKey(StringMap)
})
const Manifest = Schema.Struct({ apiVersion: Schema.String, kind: Schema.String, metadata: Metadata })
const Rule = Schema.Struct({
  apiGroups: Schema.Array(Schema.String),
  resources: Schema.Array(Schema.String),
  verbs: Schema.Array(Schema.String)
})
const Role = Schema.Struct({ metadata: Metadata, rules: Schema.Array(Rule) })
const Binding = Schema.Struct({
  metadata: Metadata,
  roleRef: Schema.Struct({ kind: Schema.String, name: Schema.String }),
  subjects: Schema.Array(Schema.Struct({ kind: Schema.String, name: Schema.String, namespace: Schema.String }))
})
const Probe = Schema.Struct({
  httpGet: Schema.Struct({ path: Schema.String, port: Schema.Union([Schema.String, Schema.Int]) })
})
const Container = Schema.Struct({
  name: Schema.String,
  image: Schema.String,
  imagePullPolicy: Schema.String,
  args: Schema.Array(Schema.String),
  env: Schema.Array(EnvVar),
  ports: Schema.Array(Schema.Struct({ name: Schema.String, containerPort: Schema.Int })),
  livenessProbe: Probe,
  readinessProbe: Probe,
  securityContext: SecurityContext,
  resources: ResourceRequirements
})
const Deployment = Schema.Struct({
  metadata: Metadata,
  spec: Schema.Struct({
    replicas: Schema.Int,
    selector: Schema.Struct({ matchLabels: StringMap }),
    template: Schema.Struct({
      metadata: Schema.Struct({ labels: StringMap, annotations: Schema.optionalKey(StringMap) }),
      spec: Schema.Struct({
        serviceAccountName: Schema.String,
        securityContext: Schema.Struct({
          runAsNonRoot: Schema.Boolean,
          runAsUser: Schema.Int,
          runAsGroup: Schema.Int,
          seccompProfile: Schema.Struct({ type: Schema.String })
        }),
        containers: Schema.Array(Container),
        imagePullSecrets: Schema.optionalKey(Schema.Array(Schema.Struct({ name: Schema.String }))),
        priorityClassName: Schema.optionalKey(Schema.String),
        nodeSelector: Schema.optionalKey(StringMap),
        tolerations: Schema.optionalKey(Schema.Array(Schema.Unknown)),
        affinity: Schema.optionalKey(Schema.Unknown),
        topologySpreadConstraints: Schema.optionalKey(Schema.Array(Schema.Unknown))
      })
    })
  })
})
const Service = Schema.Struct({
  metadata: Metadata,
  spec: Schema.Struct({
    selector: StringMap,
    ports: Schema.Array(Schema.Struct({ name: Schema.String, port: Schema.Int, targetPort: Schema.String }))
  })
})
const Pdb = Schema.Struct({
  spec: Schema.Struct({ minAvailable: Schema.Int, selector: Schema.Struct({ matchLabels: StringMap }) })
})
const ServiceMonitor = Schema.Struct({
  metadata: Metadata,
  spec: Schema.Struct({
    selector: Schema.Struct({ matchLabels: StringMap }),
    namespaceSelector: Schema.Struct({ matchNames: Schema.Array(Schema.String) }),
    endpoints: Schema.Array(Schema.Struct({ port: Schema.String, path: Schema.String }))
  })
})

interface Rendered {
  readonly kinds: ReadonlyArray<string>
  /** The one document of `kind`, decoded with `schema`; fails the test when there are none or several. */
  readonly one: <S extends Schema.ConstraintDecoder<unknown>>(kind: string, schema: S) => S["Type"]
  /** Every document of `kind`, decoded with `schema`, in the rendered order. */
  readonly all: <S extends Schema.ConstraintDecoder<unknown>>(kind: string, schema: S) => ReadonlyArray<S["Type"]>
  readonly has: (kind: string) => boolean
  /** The YAML of every document except those of `kinds`. */
  readonly yamlWithout: (...kinds: ReadonlyArray<string>) => string
}

const render = (options: TemplateOptions = {}) =>
  Effect.map(renderChart(options), (yaml): Rendered => {
    const documents = yamlDocuments(yaml).map((document) => ({
      ...document,
      manifest: Schema.decodeUnknownSync(Manifest)(document.value)
    }))
    const ofKind = (kind: string) => documents.filter((document) => document.manifest.kind === kind)
    return {
      kinds: documents.map((document) => document.manifest.kind),
      one: (kind, schema) => {
        const found = ofKind(kind)
        assert.lengthOf(found, 1, `one ${kind} rendered`)
        return Schema.decodeUnknownSync(schema)(found[0]?.value)
      },
      all: (kind, schema) => ofKind(kind).map((document) => Schema.decodeUnknownSync(schema)(document.value)),
      has: (kind) => ofKind(kind).length > 0,
      yamlWithout: (...kinds) =>
        documents
          .filter((document) => !kinds.includes(document.manifest.kind))
          .map((document) => document.text)
          .join("---")
    }
  })

const operatorContainer = (rendered: Rendered) => {
  const containers = rendered.one("Deployment", Deployment).spec.template.spec.containers
  assert.lengthOf(containers, 1)
  const [container] = containers
  if (container === undefined) return assert.fail("no container")
  return container
}

/** helm template must refuse `values`, with a message naming `field`. */
const refuses = (values: Readonly<Record<string, unknown>>, field: string) =>
  Effect.gen(function* () {
    const result = yield* helmTemplate({ values })
    assert.notStrictEqual(result.exitCode, 0, `helm template accepted ${JSON.stringify(values)}`)
    assert.include(result.stderr, field)
  })

describe("the Helm chart, rendered", () => {
  it.live("passes helm lint --strict, which fails on a wrong value", () =>
    Effect.gen(function* () {
      const lint = yield* helm(["lint", "--strict", chartDir])
      assert.strictEqual(lint.exitCode, 0, `${lint.stdout}\n${lint.stderr}`)
      assert.include(lint.stdout, "0 chart(s) failed")
      const wrong = yield* helm(["lint", "--strict", chartDir, "--set", "replicaCount=-1"])
      assert.notStrictEqual(wrong.exitCode, 0)
      assert.include(`${wrong.stdout}${wrong.stderr}`, "/replicaCount")
    })
  )

  it.live("deploys the operator's own version, and ships the generated CRDs", () =>
    Effect.gen(function* () {
      const chart = Schema.decodeUnknownSync(Schema.Struct({ apiVersion: Schema.String, appVersion: Schema.String }))(
        Yaml.parse(readFileSync(`${chartDir}/Chart.yaml`, "utf8"))
      )
      assert.deepStrictEqual(chart, { apiVersion: "v2", appVersion: operatorVersion })
      const rendered = yield* render({ includeCrds: true })
      assert.deepStrictEqual(
        rendered
          .all("CustomResourceDefinition", Manifest)
          .map((crd) => crd.metadata.name)
          .sort(),
        crdNames
      )
      assert.strictEqual(operatorContainer(rendered).image, `db-backup-operator:${operatorVersion}`)
      assert.include(operatorContainer(rendered).args, `--runner-image=db-backup-runner:${operatorVersion}`)
    })
  )

  it.live("runs 2 leader-elected replicas, locked down, probed on /healthz and /readyz", () =>
    Effect.gen(function* () {
      const rendered = yield* render()
      const deployment = rendered.one("Deployment", Deployment)
      assert.strictEqual(deployment.spec.replicas, 2)
      assert.strictEqual(deployment.metadata.namespace, defaultRelease)
      const container = operatorContainer(rendered)
      assert.deepStrictEqual(container.args, [
        `--runner-image=db-backup-runner:${operatorVersion}`,
        "--leader-elect=true",
        `--leader-election-namespace=${defaultRelease}`,
        "--leader-elect-lease-duration=15 seconds",
        "--leader-elect-renew-deadline=10 seconds",
        "--leader-elect-retry-period=2 seconds",
        "--metrics-bind-address=$(POD_IP):8080",
        "--health-probe-bind-address=$(POD_IP):8081",
        "--backup-interval=5 minutes",
        "--default-retention=keepLast=24,keepDaily=7,keepWeekly=5,keepMonthly=12",
        "--max-concurrent-backups=10",
        "--max-concurrent-backups-per-server=2",
        "--backup-workers=4",
        "--kube-api-qps=50",
        "--kube-api-burst=100"
      ])
      assert.deepStrictEqual(container.env, [
        { name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
        { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
        { name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } }
      ])
      assert.deepStrictEqual(container.ports, [
        { name: "metrics", containerPort: 8080 },
        { name: "health", containerPort: 8081 }
      ])
      assert.deepStrictEqual(container.livenessProbe.httpGet, { path: "/healthz", port: "health" })
      assert.deepStrictEqual(container.readinessProbe.httpGet, { path: "/readyz", port: "health" })
      assert.deepStrictEqual(deployment.spec.template.spec.securityContext, {
        runAsNonRoot: true,
        runAsUser: 65532,
        runAsGroup: 65532,
        seccompProfile: { type: "RuntimeDefault" }
      })
      assert.deepStrictEqual(container.securityContext, {
        runAsNonRoot: true,
        runAsUser: 65532,
        runAsGroup: 65532,
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ["ALL"] },
        seccompProfile: { type: "RuntimeDefault" }
      })
      assert.deepStrictEqual(container.resources, {
        requests: { cpu: "50m", memory: "256Mi" },
        limits: { cpu: "1", memory: "512Mi" }
      })
      const selector = deployment.spec.selector.matchLabels
      assert.deepInclude(deployment.spec.template.metadata.labels, selector)
      assert.strictEqual(deployment.spec.template.spec.serviceAccountName, defaultRelease)
      assert.strictEqual(rendered.one("ServiceAccount", Manifest).metadata.name, defaultRelease)

      const service = rendered.one("Service", Service)
      assert.deepStrictEqual(service.spec.selector, selector)
      assert.deepStrictEqual(service.spec.ports, [{ name: "metrics", port: 8080, targetPort: "metrics" }])
      assert.deepStrictEqual(rendered.one("PodDisruptionBudget", Pdb).spec, {
        minAvailable: 1,
        selector: { matchLabels: selector }
      })
      assert.isFalse(rendered.has("ServiceMonitor"), "the ServiceMonitor is off by default")
    })
  )

  it.live("grants exactly the rules the operator uses, and leases only in the release namespace", () =>
    Effect.gen(function* () {
      const namespace = "ops"
      const rendered = yield* render({ namespace })
      assert.deepStrictEqual(rendered.one("ClusterRole", Role).rules, operatorRules)
      const role = rendered.one("Role", Role)
      assert.strictEqual(role.metadata.namespace, namespace)
      assert.deepStrictEqual(role.rules, leaderElectionRules)
      const subject = { kind: "ServiceAccount", name: defaultRelease, namespace }
      const clusterBinding = rendered.one("ClusterRoleBinding", Binding)
      assert.deepStrictEqual(clusterBinding.roleRef, { kind: "ClusterRole", name: defaultRelease })
      assert.deepStrictEqual(clusterBinding.subjects, [subject])
      const binding = rendered.one("RoleBinding", Binding)
      assert.deepStrictEqual(binding.roleRef, { kind: "Role", name: role.metadata.name })
      assert.deepStrictEqual(binding.subjects, [subject])
      assert.include(operatorContainer(rendered).args, `--leader-election-namespace=${namespace}`)
    })
  )

  it.live("switches: no RBAC, an existing ServiceAccount, one replica without leader election, all interfaces", () =>
    Effect.gen(function* () {
      const rendered = yield* render({
        values: {
          rbac: { create: false },
          serviceAccount: { create: false, name: "platform-operator" },
          replicaCount: 1,
          leaderElection: { enabled: false },
          listenOnPodIP: false
        }
      })
      assert.deepStrictEqual([...rendered.kinds].sort(), ["Deployment", "Service"])
      const deployment = rendered.one("Deployment", Deployment)
      assert.strictEqual(deployment.spec.template.spec.serviceAccountName, "platform-operator")
      const args = operatorContainer(rendered).args
      assert.include(args, "--leader-elect=false")
      assert.notInclude(args.join(" "), "--leader-election-namespace")
      assert.include(args, "--metrics-bind-address=:8080")
      assert.include(args, "--health-probe-bind-address=:8081")
    })
  )

  it.live("passes every operator setting on as its flag", () =>
    Effect.gen(function* () {
      const digest = `sha256:${"ab".repeat(32)}`
      const rendered = yield* render({
        values: {
          operator: {
            watchNamespaces: ["team-a", "team-b"],
            allowedNamespaces: [
              { from: "team-a", to: "shared-secrets" },
              { from: "team-b", to: "shared-secrets" }
            ],
            requireSecretOptIn: true,
            minSslMode: "verify-full",
            allowCleartextPassword: true,
            gcsEndpoint: "http://gcs.emulators.svc:4443",
            backupInterval: "1 hour",
            defaultRetention: "none",
            maxConcurrentBackupsPerServer: 1,
            backupWorkers: 16,
            kubeApiQps: 300,
            kubeApiBurst: 600
          },
          leaderElection: {
            enabled: true,
            leaseDuration: "30 seconds",
            renewDeadline: "20 seconds",
            retryPeriod: "4 seconds"
          },
          runner: { image: { repository: "europe-docker.pkg.dev/p/images/db-backup-runner", digest } },
          image: { repository: "europe-docker.pkg.dev/p/images/db-backup-operator", tag: "0.2.0-rc.1" },
          metrics: { port: 9090 },
          health: { port: 9091 }
        }
      })
      const container = operatorContainer(rendered)
      assert.strictEqual(container.image, "europe-docker.pkg.dev/p/images/db-backup-operator:0.2.0-rc.1")
      assert.includeMembers(
        [...container.args],
        [
          `--runner-image=europe-docker.pkg.dev/p/images/db-backup-runner@${digest}`,
          "--namespaces=team-a,team-b",
          "--allowed-namespaces=team-a:shared-secrets,team-b:shared-secrets",
          "--require-secret-opt-in=true",
          "--min-ssl-mode=verify-full",
          "--allow-cleartext-password=true",
          "--gcs-endpoint=http://gcs.emulators.svc:4443",
          "--backup-interval=1 hour",
          "--default-retention=none",
          "--max-concurrent-backups-per-server=1",
          "--backup-workers=16",
          "--kube-api-qps=300",
          "--kube-api-burst=600",
          "--leader-elect-lease-duration=30 seconds",
          "--leader-elect-renew-deadline=20 seconds",
          "--leader-elect-retry-period=4 seconds",
          "--metrics-bind-address=$(POD_IP):9090",
          "--health-probe-bind-address=$(POD_IP):9091"
        ]
      )
      assert.deepStrictEqual(container.ports, [
        { name: "metrics", containerPort: 9090 },
        { name: "health", containerPort: 9091 }
      ])
    })
  )

  it.live("renders the security settings as flags only when they differ from the operator's defaults", () =>
    Effect.gen(function* () {
      const flags = (operator: Readonly<Record<string, unknown>>) =>
        Effect.map(render({ values: { operator } }), (rendered) =>
          operatorContainer(rendered).args.filter((arg) =>
            /^--(allowed-namespaces|require-secret-opt-in|min-ssl-mode|allow-cleartext-password)=/u.test(arg)
          )
        )
      assert.deepStrictEqual(yield* flags({}), [])
      assert.deepStrictEqual(
        yield* flags({ requireSecretOptIn: false, minSslMode: "disable", allowCleartextPassword: false }),
        []
      )
      assert.deepStrictEqual(yield* flags({ minSslMode: "require" }), ["--min-ssl-mode=require"])
      assert.deepStrictEqual(yield* flags({ allowedNamespaces: [{ from: "team-a", to: "backup-jobs" }] }), [
        "--allowed-namespaces=team-a:backup-jobs"
      ])
      assert.deepStrictEqual(yield* flags({ allowCleartextPassword: true }), ["--allow-cleartext-password=true"])
      assert.deepStrictEqual(yield* flags({ requireSecretOptIn: true, watchNamespaces: ["team-a"] }), [
        "--require-secret-opt-in=true"
      ])
    })
  )

  it.live("reads Secrets nowhere by default: no secrets in the ClusterRole, no Role but the Lease's", () =>
    Effect.gen(function* () {
      const rendered = yield* render()
      const clusterRole = rendered.one("ClusterRole", Role)
      assert.notInclude(
        clusterRole.rules.flatMap((rule) => rule.resources),
        "secrets",
        "the ClusterRole must not grant anything on secrets"
      )
      assert.deepStrictEqual(
        rendered.all("Role", Role).map((role) => role.metadata.name),
        [`${defaultRelease}-leader-election`]
      )
      assert.notInclude(
        rendered.all("Role", Role).flatMap((role) => role.rules.flatMap((rule) => rule.resources)),
        "secrets"
      )
    })
  )

  it.live(
    "lets the operator get Secrets in each pair target and, with requireSecretOptIn, each served namespace: one Role each",
    () =>
      Effect.gen(function* () {
        const namespace = "ops"
        const pairsOnly = yield* render({
          namespace,
          values: {
            operator: {
              watchNamespaces: ["team-a", "team-b"],
              allowedNamespaces: [
                { from: "team-a", to: "backup-jobs" },
                { from: "team-b", to: "backup-jobs" },
                { from: "team-a", to: "shared" }
              ]
            }
          }
        })
        const secretRoles = (rendered: Rendered) =>
          rendered.all("Role", Role).filter((role) => role.metadata.name === `${defaultRelease}-secret-opt-in`)
        assert.deepStrictEqual(
          secretRoles(pairsOnly).map((role) => role.metadata.namespace),
          ["backup-jobs", "shared"],
          "one Role per distinct pair target; the served namespaces need none without requireSecretOptIn"
        )

        const everywhere = yield* render({
          namespace,
          values: {
            operator: {
              watchNamespaces: ["team-b", "team-a", "backup-jobs"],
              allowedNamespaces: [
                { from: "team-a", to: "backup-jobs" },
                { from: "team-b", to: "backup-jobs" },
                { from: "team-a", to: "shared" }
              ],
              requireSecretOptIn: true
            }
          }
        })
        const roles = secretRoles(everywhere)
        assert.deepStrictEqual(
          roles.map((role) => role.metadata.namespace),
          ["backup-jobs", "shared", "team-a", "team-b"],
          "pair targets and served namespaces, deduplicated and sorted"
        )
        for (const role of roles) assert.deepStrictEqual(role.rules, secretOptInRules)
        const bindings = everywhere
          .all("RoleBinding", Binding)
          .filter((binding) => binding.metadata.name === `${defaultRelease}-secret-opt-in`)
        assert.deepStrictEqual(
          bindings.map((binding) => binding.metadata.namespace),
          ["backup-jobs", "shared", "team-a", "team-b"]
        )
        for (const binding of bindings) {
          assert.deepStrictEqual(binding.roleRef, { kind: "Role", name: `${defaultRelease}-secret-opt-in` })
          assert.deepStrictEqual(binding.subjects, [{ kind: "ServiceAccount", name: defaultRelease, namespace }])
        }
        // The Lease's Role and the ClusterRole are unchanged.
        assert.deepStrictEqual(everywhere.one("ClusterRole", Role).rules, operatorRules)
        assert.lengthOf(everywhere.all("Role", Role), 5)
      })
  )

  it.live("renders no Role for Secrets without rbac.create", () =>
    Effect.gen(function* () {
      const rendered = yield* render({
        values: {
          rbac: { create: false },
          operator: { allowedNamespaces: [{ from: "team-a", to: "backup-jobs" }] }
        }
      })
      assert.isFalse(rendered.has("Role"))
      assert.isFalse(rendered.has("RoleBinding"))
      assert.include(operatorContainer(rendered).args, "--allowed-namespaces=team-a:backup-jobs")
    })
  )

  it.live("documents every value in the README's table", () =>
    Effect.sync(() => {
      const values = Yaml.parse(readFileSync(`${chartDir}/values.yaml`, "utf8"))
      const readme = readFileSync(`${chartDir}/README.md`, "utf8").split("\n## Values\n")[1]?.split("\n## ")[0] ?? ""
      const documented = new Set([...readme.matchAll(/^\| `([A-Za-z.]+)` +\|/gmu)].map((match) => match[1]))
      const isObject = (value: unknown): value is Readonly<Record<string, unknown>> =>
        typeof value === "object" && value !== null && !Array.isArray(value)
      // A documented key covers what is under it (podSecurityContext, resources); else recurse.
      const undocumented = (value: unknown, path: string): ReadonlyArray<string> =>
        path !== "" && documented.has(path)
          ? []
          : isObject(value) && Object.keys(value).length > 0
            ? Object.entries(value).flatMap(([key, inner]) => undocumented(inner, path === "" ? key : `${path}.${key}`))
            : [path]
      assert.deepStrictEqual(undocumented(values, ""), [])
      const lookup = (path: string) =>
        path.split(".").reduce<unknown>((value, key) => (isObject(value) ? value[key] : undefined), values)
      for (const key of documented)
        assert.notStrictEqual(lookup(key ?? ""), undefined, `README documents ${key}, which values.yaml lacks`)
    })
  )

  describe("refuses wrong values with a message naming the field", () => {
    it.live("replicaCount: -1", () => refuses({ replicaCount: -1 }, "/replicaCount"))
    it.live("image.tag: 5 (a number)", () => refuses({ image: { tag: 5 } }, "/image/tag"))
    it.live("image.tag with a colon", () => refuses({ image: { tag: "1.0:latest" } }, "/image/tag"))
    it.live("an unknown top-level key (a typo)", () => refuses({ replicaCont: 3 }, "replicaCont"))
    it.live("an unknown nested key", () => refuses({ serviceAccount: { annotation: {} } }, "annotation"))
    it.live("image.pullPolicy outside its enum", () =>
      refuses({ image: { pullPolicy: "Sometimes" } }, "/image/pullPolicy")
    )
    it.live("a backup interval the operator cannot parse", () =>
      refuses({ operator: { backupInterval: "5m" } }, "/operator/backupInterval")
    )
    it.live("a default retention with a misspelt rule", () =>
      refuses({ operator: { defaultRetention: "keepdaily=7" } }, "/operator/defaultRetention")
    )
    it.live("a watched namespace that is not a DNS label", () =>
      refuses({ operator: { watchNamespaces: ["Team_A"] } }, "/operator/watchNamespaces/0")
    )
    it.live("an allowed namespace in the old form (a bare namespace, not a pair)", () =>
      refuses({ operator: { allowedNamespaces: ["shared"] } }, "/operator/allowedNamespaces/0")
    )
    it.live("a pair without its target", () =>
      refuses({ operator: { allowedNamespaces: [{ from: "team-a" }] } }, "/operator/allowedNamespaces/0")
    )
    it.live("a pair whose target is not a DNS label", () =>
      refuses({ operator: { allowedNamespaces: [{ from: "team-a", to: "Jobs" }] } }, "/operator/allowedNamespaces/0/to")
    )
    it.live("a pair with an unknown key", () =>
      refuses(
        { operator: { allowedNamespaces: [{ from: "team-a", to: "jobs", namespace: "x" }] } },
        "/operator/allowedNamespaces/0"
      )
    )
    it.live("an sslmode libpq does not know", () =>
      refuses({ operator: { minSslMode: "strict" } }, "/operator/minSslMode")
    )
    it.live("requireSecretOptIn as a string", () =>
      refuses({ operator: { requireSecretOptIn: "yes" } }, "/operator/requireSecretOptIn")
    )
    it.live("allowCleartextPassword as a string", () =>
      refuses({ operator: { allowCleartextPassword: "true" } }, "/operator/allowCleartextPassword")
    )
    it.live("requireSecretOptIn without the namespaces it serves", () =>
      Effect.gen(function* () {
        const result = yield* helmTemplate({ values: { operator: { requireSecretOptIn: true } } })
        assert.notStrictEqual(result.exitCode, 0)
        assert.include(result.stderr, "operator.requireSecretOptIn")
        assert.include(result.stderr, "list the namespaces it serves in operator.watchNamespaces")
      })
    )
    it.live("a port out of range", () => refuses({ metrics: { port: 70000 } }, "/metrics/port"))
    it.live("two replicas without leader election", () =>
      refuses({ leaderElection: { enabled: false } }, "leaderElection.enabled")
    )
    it.live("no ServiceAccount to run as", () => refuses({ serviceAccount: { create: false } }, "serviceAccount.name"))
    // Each of these renders a Deployment the operator would refuse at start (a crash loop).
    it.live("a client burst below its rate", () =>
      refuses({ operator: { kubeApiQps: 50, kubeApiBurst: 10 } }, "operator.kubeApiBurst: 10 is less than")
    )
    it.live("a lease no longer than the renew deadline", () =>
      refuses(
        { leaderElection: { leaseDuration: "10 seconds", renewDeadline: "10000 millis" } },
        "leaderElection.leaseDuration: 10 seconds is not longer than"
      )
    )
    it.live("a lease under one second", () =>
      refuses(
        { leaderElection: { leaseDuration: "900 millis", renewDeadline: "500 millis", retryPeriod: "100 millis" } },
        "leaderElection.leaseDuration: 900 millis is less than 1 second"
      )
    )
    it.live("a renew deadline within 1.2 retry periods", () =>
      refuses(
        { leaderElection: { renewDeadline: "2.4 seconds", retryPeriod: "2 seconds" } },
        "leaderElection.renewDeadline: 2.4 seconds is not more than 1.2 x"
      )
    )
    it.live("a zero retry period", () =>
      refuses({ leaderElection: { retryPeriod: "0 seconds" } }, "leaderElection.retryPeriod: 0 seconds")
    )
    it.live("a ServiceMonitor where the cluster has no monitoring.coreos.com/v1", () =>
      refuses({ monitoring: { serviceMonitor: { enabled: true } } }, "monitoring.serviceMonitor.enabled")
    )
  })

  it.live("renders the ServiceMonitor for the metrics Service when the API is there", () =>
    Effect.gen(function* () {
      const rendered = yield* render({
        values: { monitoring: { serviceMonitor: { enabled: true, labels: { release: "prometheus" } } } },
        apiVersions: ["monitoring.coreos.com/v1"]
      })
      const monitor = rendered.one("ServiceMonitor", ServiceMonitor)
      const service = rendered.one("Service", Service)
      assert.strictEqual(monitor.metadata.labels?.release, "prometheus")
      assert.deepStrictEqual(monitor.spec.selector.matchLabels, service.spec.selector)
      assert.deepInclude(service.metadata.labels ?? {}, monitor.spec.selector.matchLabels)
      assert.deepStrictEqual(monitor.spec.namespaceSelector.matchNames, [defaultRelease])
      assert.deepStrictEqual(monitor.spec.endpoints, [{ port: "metrics", path: "/metrics" }])
    })
  )
})

// The API server judges the rendered objects (kubectl's default strict field validation,
// so a misspelt field fails too); the chart's CRDs are installed for real so the operator
// can run, and the release namespace exists as `helm install -n ... --create-namespace`
// would make it.
const Cluster = Layer.effectDiscard(
  ControlPlane.use((controlPlane) =>
    controlPlane.kubectl(["create", "namespace", defaultRelease]).pipe(
      Effect.filterOrFail(
        (result) => result.exitCode === 0,
        (result) => new Error(`kubectl create namespace ${defaultRelease}: ${result.stderr}`)
      )
    )
  )
).pipe(Layer.provideMerge(ControlPlane.layer({ crds: chartCrds, controllerManager: false })))

/** `kubectl apply --dry-run=server` of `yaml`; returns the `kind/name` of every object the server accepted. */
const dryRun = (yaml: string) =>
  Effect.gen(function* () {
    const controlPlane = yield* ControlPlane
    const result = yield* controlPlane.kubectl(["apply", "--dry-run=server", "-f", "-"], { stdin: yaml })
    assert.strictEqual(result.exitCode, 0, result.stderr)
    return result.stdout
      .trim()
      .split("\n")
      .map((line) => line.split(" ")[0] ?? "")
      .sort()
  })

/** Creates `names` as namespaces when they do not exist yet (tests share the API server). */
const ensureNamespaces = (...names: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const controlPlane = yield* ControlPlane
    const yaml = names.map((name) => `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${name}\n`).join("---\n")
    const result = yield* controlPlane.kubectl(["apply", "-f", "-"], { stdin: yaml })
    assert.strictEqual(result.exitCode, 0, result.stderr)
  })

/** `kubectl apply` of `yaml` for real. */
const apply = (yaml: string) =>
  Effect.gen(function* () {
    const controlPlane = yield* ControlPlane
    const result = yield* controlPlane.kubectl(["apply", "-f", "-"], { stdin: yaml })
    assert.strictEqual(result.exitCode, 0, result.stderr)
  })

/** `kubectl auth can-i` as `user`: the API server's own RBAC decision, "yes" or "no". */
const canI = (user: string, args: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const controlPlane = yield* ControlPlane
    const result = yield* controlPlane.kubectl(["auth", "can-i", ...args, `--as=${user}`])
    const answer = result.stdout.trim()
    assert.oneOf(answer, ["yes", "no"], `kubectl auth can-i ${args.join(" ")}: ${result.stderr}`)
    return answer
  })

const httpGet = (url: string) =>
  Effect.tryPromise({
    try: async (signal) => {
      const response = await fetch(url, { signal })
      return { status: response.status, body: await response.text() }
    },
    catch: (cause) => new Error(`GET ${url}: ${String(cause)}`)
  })

layer(Cluster, { timeout: "5 minutes", excludeTestServices: true })("the Helm chart, on an API server", (it) => {
  it.effect("installs: every object, CRDs included, passes a server-side dry run", () =>
    Effect.gen(function* () {
      const rendered = yield* renderChart({ includeCrds: true })
      assert.deepStrictEqual(yield* dryRun(rendered), [
        "clusterrole.rbac.authorization.k8s.io/db-backup-operator",
        "clusterrolebinding.rbac.authorization.k8s.io/db-backup-operator",
        "customresourcedefinition.apiextensions.k8s.io/backupdatabaseschemas.backup.csyeteam03.xyz",
        "customresourcedefinition.apiextensions.k8s.io/backups.backup.csyeteam03.xyz",
        "customresourcedefinition.apiextensions.k8s.io/backupstorages.backup.csyeteam03.xyz",
        "customresourcedefinition.apiextensions.k8s.io/restores.backup.csyeteam03.xyz",
        "deployment.apps/db-backup-operator",
        "poddisruptionbudget.policy/db-backup-operator",
        "role.rbac.authorization.k8s.io/db-backup-operator-leader-election",
        "rolebinding.rbac.authorization.k8s.io/db-backup-operator-leader-election",
        "service/db-backup-operator-metrics",
        "serviceaccount/db-backup-operator"
      ])
    })
  )

  it.effect("every optional value renders objects the API server accepts", () =>
    Effect.gen(function* () {
      const rendered = yield* renderChart({
        release: "backups",
        values: {
          image: { digest: `sha256:${"0f".repeat(32)}`, pullPolicy: "Always" },
          imagePullSecrets: [{ name: "regcred" }],
          serviceAccount: { annotations: { "iam.gke.io/gcp-service-account": "op@p.iam.gserviceaccount.com" } },
          operator: {
            watchNamespaces: ["team-a"],
            allowedNamespaces: [{ from: "team-a", to: "shared" }],
            requireSecretOptIn: true,
            minSslMode: "verify-full",
            allowCleartextPassword: true,
            gcsEndpoint: "https://storage.example.com"
          },
          metrics: { service: { annotations: { "prometheus.io/scrape": "true" } } },
          podDisruptionBudget: { minAvailable: 1 },
          podAnnotations: { "example.com/team": "platform" },
          podLabels: { team: "platform" },
          priorityClassName: "operators",
          nodeSelector: { "kubernetes.io/os": "linux" },
          tolerations: [{ key: "dedicated", operator: "Equal", value: "ops", effect: "NoSchedule" }],
          affinity: {
            podAntiAffinity: {
              preferredDuringSchedulingIgnoredDuringExecution: [
                {
                  weight: 100,
                  podAffinityTerm: {
                    topologyKey: "kubernetes.io/hostname",
                    labelSelector: { matchLabels: { "app.kubernetes.io/instance": "backups" } }
                  }
                }
              ]
            }
          },
          topologySpreadConstraints: [
            {
              maxSkew: 1,
              topologyKey: "topology.kubernetes.io/zone",
              whenUnsatisfiable: "ScheduleAnyway",
              labelSelector: { matchLabels: { "app.kubernetes.io/instance": "backups" } }
            }
          ]
        }
      })
      // The Secret-reading Roles go into the pair target and the served namespace.
      yield* ensureNamespaces("team-a", "shared")
      const accepted = yield* dryRun(rendered)
      assert.include(accepted, "deployment.apps/backups-db-backup-operator")
      assert.includeMembers(accepted, [
        "role.rbac.authorization.k8s.io/backups-db-backup-operator-secret-opt-in",
        "rolebinding.rbac.authorization.k8s.io/backups-db-backup-operator-secret-opt-in"
      ])
      assert.lengthOf(accepted, 12)
    })
  )

  it.effect("with the ServiceMonitor on, everything else still applies (its CRD is absent here)", () =>
    Effect.gen(function* () {
      const rendered = yield* render({
        values: { monitoring: { serviceMonitor: { enabled: true } } },
        apiVersions: ["monitoring.coreos.com/v1"]
      })
      assert.isTrue(rendered.has("ServiceMonitor"))
      assert.lengthOf(yield* dryRun(rendered.yamlWithout("ServiceMonitor")), 8)
    })
  )

  it.effect("the API server lets the operator get Secrets only where they must opt in, and never list them", () =>
    Effect.gen(function* () {
      const release = "guard"
      const namespace = "guard-system"
      const operator = `system:serviceaccount:${namespace}:${release}-db-backup-operator`
      const values = (requireSecretOptIn: boolean) => ({
        operator: {
          watchNamespaces: ["team-x"],
          allowedNamespaces: [{ from: "team-x", to: "jobs-x" }],
          requireSecretOptIn
        }
      })
      const showOnly = ["templates/serviceaccount.yaml", "templates/rbac.yaml"]
      yield* ensureNamespaces(namespace, "team-x", "jobs-x")
      yield* apply(yield* renderChart({ release, namespace, showOnly, values: values(false) }))

      assert.strictEqual(yield* canI(operator, ["get", "secrets", "-A"]), "no", "Secrets cluster-wide")
      assert.strictEqual(yield* canI(operator, ["get", "secrets", "-n", "jobs-x"]), "yes", "the pair's target")
      assert.strictEqual(yield* canI(operator, ["list", "secrets", "-n", "jobs-x"]), "no")
      assert.strictEqual(yield* canI(operator, ["watch", "secrets", "-n", "jobs-x"]), "no")
      assert.strictEqual(yield* canI(operator, ["get", "secrets", "-n", "team-x"]), "no", "without requireSecretOptIn")
      assert.strictEqual(yield* canI(operator, ["get", "secrets", "-n", namespace]), "no", "its own namespace")
      assert.strictEqual(yield* canI(operator, ["get", "secrets", "-n", "default"]), "no")
      // What the ClusterRole still grants, cluster-wide.
      assert.strictEqual(yield* canI(operator, ["list", "jobs.batch", "-A"]), "yes")
      assert.strictEqual(yield* canI(operator, ["watch", "backupdatabaseschemas.backup.csyeteam03.xyz", "-A"]), "yes")
      assert.strictEqual(yield* canI(operator, ["create", "backups.backup.csyeteam03.xyz", "-A"]), "yes")
      assert.strictEqual(
        yield* canI(operator, ["patch", "backups.backup.csyeteam03.xyz", "--subresource=status", "-A"]),
        "yes"
      )

      // An upgrade to requireSecretOptIn adds the served namespace, and only it.
      yield* apply(yield* renderChart({ release, namespace, showOnly, values: values(true) }))
      assert.strictEqual(yield* canI(operator, ["get", "secrets", "-n", "team-x"]), "yes", "a served namespace")
      assert.strictEqual(yield* canI(operator, ["list", "secrets", "-n", "team-x"]), "no")
      assert.strictEqual(yield* canI(operator, ["get", "secrets", "-A"]), "no")
      assert.strictEqual(yield* canI(operator, ["get", "secrets", "-n", "default"]), "no")
    })
  )

  it.effect("the rendered flags start the real operator, serving probes and metrics on the Pod IP only", () =>
    Effect.gen(function* () {
      const controlPlane = yield* ControlPlane
      const [metricsPort, healthPort] = yield* freePorts(2)
      if (metricsPort === undefined || healthPort === undefined) return assert.fail("two free ports")
      const container = operatorContainer(
        yield* render({ values: { metrics: { port: metricsPort }, health: { port: healthPort } } })
      )
      // What a Pod on our process node gets: its own loopback address. The kubelet expands
      // $(POD_IP) in args from the container's env.
      const podIp = "127.1.2.3"
      const env = { POD_NAMESPACE: defaultRelease, POD_NAME: "db-backup-operator-chart-test", POD_IP: podIp }
      const args = container.args.map((arg) => arg.replaceAll("$(POD_IP)", podIp))
      const operator = yield* startDaemon({
        name: "chart-operator",
        dir: controlPlane.dir,
        command: process.execPath,
        args: [operatorBin, ...args, `--kubeconfig=${controlPlane.kubeconfigPath}`],
        env
      }).pipe(Effect.provide(NodeServices.layer))

      const probe = (port: number, path: string) =>
        Effect.andThen(
          operator.ensureRunning,
          httpGet(`http://${podIp}:${port}${path}`).pipe(
            Effect.map((response) => (response.status === 200 ? response.body : undefined)),
            // Not listening yet: keep polling (a dead operator fails ensureRunning instead).
            Effect.orElseSucceed(() => undefined)
          )
        )
      // One replica: /readyz turns 200 (a standby is ready too), then it leads.
      const ready = yield* eventually("/readyz to answer 200", probe(healthPort, "/readyz"), {
        timeout: "90 seconds",
        interval: "250 millis"
      })
      assert.include(ready, "[+]caches ok")
      assert.include(yield* eventually("/healthz", probe(healthPort, "/healthz")), "ok")
      const leading = /leader_election_master_status\{[^}]*\} 1/u
      yield* eventually(
        "/metrics to show it leading",
        Effect.map(probe(metricsPort, "/metrics"), (body) =>
          body !== undefined && leading.test(body) ? body : undefined
        ),
        { timeout: "60 seconds", interval: "250 millis" }
      )
      const lease = yield* controlPlane.kubectl([
        "-n",
        defaultRelease,
        "get",
        "lease",
        "db-backup-operator",
        "-o",
        "name"
      ])
      assert.strictEqual(lease.stdout.trim(), "lease.coordination.k8s.io/db-backup-operator", lease.stderr)
      // Bound to the Pod's IP, not all interfaces: another address on the host gets nothing.
      const elsewhere = yield* Effect.result(httpGet(`http://127.0.0.1:${healthPort}/healthz`))
      assert.isTrue(Result.isFailure(elsewhere), "the health port answered on 127.0.0.1 too")
      yield* operator.stop
    })
  )
})
