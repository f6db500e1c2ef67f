import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { zstdDecompressSync } from "node:zlib"
import { type BackupDatabaseSchema, StorageLocation } from "@db-backup-operator/backup-api"
import { AzureBlobObjectStore, S3ObjectStore } from "@db-backup-operator/storage"
import { Azurite, Postgres, S3Server } from "@db-backup-operator/testing"
import { assert, layer } from "@effect/vitest"
import { Decrypter, generateIdentity, identityToRecipient } from "age-encryption"
import { Effect, Layer, Option } from "effect"
import { KnownSecrets } from "../stack/secretLeaks.ts"
import { installChart, installedEnvironment } from "./installed.ts"
import {
  applyYaml,
  eventually,
  getBackup,
  gunzip,
  kubectl,
  prepareNamespace,
  seedExampleDatabase,
  sha256,
  succeeded
} from "./support.ts"

// The stores a BackupStorage can name, each through the installed product (images, Helm chart,
// podman node) as a platform engineer runs it: S3 (versitygw, a real S3 server), Azure Blob
// (Azurite) and a PersistentVolumeClaim (a hostPath PersistentVolume bound by the real PV
// binder, mounted into the runner's container). Each dump is read back from the store with
// its own SDK, checked against the manifest, and restored: the tables come back identical.

const namespace = "stores"
const password = "st0res-Pa55"
const bucket = "pg-dumps"

const Environment = Layer.effectDiscard(seedExampleDatabase(password)).pipe(
  Layer.provideMerge(
    Layer.mergeAll(
      installedEnvironment(Postgres.layer),
      S3Server.layerWith({ buckets: [bucket] }),
      Azurite.layerWith({ containers: [bucket] })
    )
  )
)

/** The original example's database part, backed up to the BackupStorage `storage`. */
const resourceYaml = (name: string, storage: string, extra: ReadonlyArray<string> = []) =>
  [
    "apiVersion: backup.csyeteam03.xyz/v1",
    "kind: BackupDatabaseSchema",
    "metadata:",
    `  name: ${name}`,
    `  namespace: ${namespace}`,
    "spec:",
    '  dbUser: "team03"',
    '  dbPasswordSecretName: "backup-secret"',
    '  dbPasswordSecretKey: "password"',
    '  dbName: "api"',
    '  dbSchema: "api"',
    "  kubeServiceAccount: backup-sa",
    `  storageRef: { name: ${storage} }`,
    ...extra.map((line) => `  ${line}`)
  ].join("\n")

const withServer = (yaml: string, pg: { readonly host: string; readonly port: number }) =>
  `${yaml}\n  dbHost: "${pg.host}"\n  dbPort: ${pg.port}\n`

const storageYaml = (name: string, spec: ReadonlyArray<string>) =>
  [
    "apiVersion: backup.csyeteam03.xyz/v1",
    "kind: BackupStorage",
    "metadata:",
    `  name: ${name}`,
    `  namespace: ${namespace}`,
    "spec:",
    ...spec.map((line) => `  ${line}`)
  ].join("\n")

/** Every file under `dir`, relative to it (for a failure's message). */
const filesUnder = (dir: string): ReadonlyArray<string> =>
  readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name).slice(dir.length + 1))

/** The object name of a location's dump, and of its manifest. */
const objectsOf = (location: string) => {
  const object = Option.getOrThrow(StorageLocation.backupObjectOfUrl(location))
  return { object, manifest: StorageLocation.manifestObjectOf(object) }
}

/** The tables of the backed-up schema, restored from `sql` into a new database, equal the source's. */
const restoresIdentically = (database: string, sql: string) =>
  Effect.gen(function* () {
    const pg = yield* Postgres
    yield* pg.createDatabase(database, { owner: "team03" })
    // pg_dump 17 writes `SET transaction_timeout = 0`, which this PostgreSQL 15 server lacks.
    yield* pg.psql(sql.replace(/^SET transaction_timeout = 0;$/mu, ""), { database })
    for (const query of ["SELECT * FROM api.items ORDER BY id", "SELECT * FROM api.notes ORDER BY id"]) {
      assert.strictEqual(yield* pg.psql(query, { database }), yield* pg.psql(query, { database: "api" }), query)
    }
  })

/** The dump and manifest are what status says: the manifest's sha256 and size are the stored bytes'. */
const checkStored = (done: BackupDatabaseSchema, dump: Uint8Array, manifestText: string, store: string) => {
  const manifest = JSON.parse(manifestText) as { sha256: string; sizeBytes: number; store: string }
  assert.strictEqual(manifest.sha256, sha256(Buffer.from(dump)))
  assert.strictEqual(manifest.sizeBytes, dump.byteLength)
  assert.strictEqual(manifest.store, store)
  assert.strictEqual(done.status?.lastBackupSha256, manifest.sha256)
  return manifest
}

layer(Environment, { timeout: "900 seconds", excludeTestServices: true })("BackupStorage", (it) => {
  it.effect(
    "backs up to S3, Azure Blob and a volume through the installed operator; each dump restores identically; an encrypted one needs its identity",
    () =>
      Effect.gen(function* () {
        const pg = yield* Postgres
        const s3 = yield* S3Server
        const azurite = yield* Azurite
        yield* installChart([])
        yield* prepareNamespace(namespace, { name: "backup-secret", password })

        // What kubectl apply refuses, with a message naming the field.
        const twoStores = yield* applyYaml(
          storageYaml("two", [`s3: { bucket: ${bucket} }`, `gcs: { bucket: ${bucket} }`])
        )
        assert.notStrictEqual(twoStores.exitCode, 0)
        assert.include(twoStores.stderr, "set exactly one of gcs, s3, azure and volume")
        const badBucket = yield* applyYaml(storageYaml("bad", ["s3: { bucket: a..b }"]))
        assert.notStrictEqual(badBucket.exitCode, 0)
        assert.include(badBucket.stderr, "spec.s3.bucket")
        const halfKeys = yield* applyYaml(
          storageYaml("half", [`s3: { bucket: ${bucket}, accessKeyIdSecretRef: { name: s3-keys, key: id } }`])
        )
        assert.notStrictEqual(halfKeys.exitCode, 0)
        assert.include(halfKeys.stderr, "set both accessKeyIdSecretRef and secretAccessKeySecretRef, or neither")
        const both = yield* applyYaml(
          withServer(resourceYaml("both", "archive", [`gcsBucket: ${bucket}`, "gcpServiceAccount: gsa"]), pg)
        )
        assert.notStrictEqual(both.exitCode, 0)
        assert.include(both.stderr, "set exactly one of gcsBucket and storageRef")

        // S3, with keys from a Secret; Azure, with the account key from a Secret. The secret parts
        // join the stack's leak check: no log, status, Event or Job may show them.
        yield* KnownSecrets.use((secrets) =>
          Effect.andThen(secrets.add(s3.secretAccessKey), secrets.add(azurite.accountKey))
        )
        yield* kubectl([
          ...["create", "secret", "generic", "s3-keys", "-n", namespace],
          `--from-literal=id=${s3.accessKeyId}`,
          `--from-literal=secret=${s3.secretAccessKey}`
        ])
        yield* kubectl([
          ...["create", "secret", "generic", "azure-key", "-n", namespace],
          `--from-literal=key=${azurite.accountKey}`
        ])
        const s3Spec = [
          "s3:",
          `  bucket: ${bucket}`,
          `  endpoint: ${s3.endpoint}`,
          `  region: ${s3.region}`,
          "  forcePathStyle: true",
          "  accessKeyIdSecretRef: { name: s3-keys, key: id }",
          "  secretAccessKeySecretRef: { name: s3-keys, key: secret }"
        ]
        const applied = yield* applyYaml(
          [
            storageYaml("archive", s3Spec),
            storageYaml("azure", [
              "azure:",
              `  storageAccount: ${azurite.accountName}`,
              `  container: ${bucket}`,
              `  endpoint: ${azurite.endpoint}`,
              "  accountKeySecretRef: { name: azure-key, key: key }"
            ]),
            withServer(resourceYaml("to-s3", "archive"), pg),
            withServer(resourceYaml("to-azure", "azure", ["compression: zstd"]), pg),
            // A resource whose storage does not exist yet: it waits, and creating the storage wakes it.
            withServer(resourceYaml("to-volume", "volume"), pg)
          ].join("\n---\n")
        )
        assert.strictEqual(applied.exitCode, 0, applied.stderr)
        const waiting = yield* eventually(
          "to-volume Ready=False StorageNotFound",
          Effect.map(getBackup(namespace, "to-volume"), (backup) => {
            const ready = backup.status?.conditions?.find((condition) => condition.type === "Ready")
            return ready?.reason === "StorageNotFound" ? ready : undefined
          })
        )
        assert.strictEqual(waiting.message, `BackupStorage ${namespace}/volume (spec.storageRef.name) not found`)

        // A volume: a hostPath PersistentVolume the real binder binds to the claim; the Job mounts it.
        const hostDir = mkdtempSync(join(tmpdir(), "stores-pv-"))
        chmodSync(hostDir, 0o755)
        yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(hostDir, { recursive: true, force: true })))
        const volume = yield* applyYaml(
          [
            "apiVersion: v1",
            "kind: PersistentVolume",
            "metadata: { name: stores-backups }",
            "spec:",
            "  capacity: { storage: 1Gi }",
            "  accessModes: [ReadWriteOnce]",
            '  storageClassName: ""',
            `  hostPath: { path: ${hostDir} }`,
            "---",
            "apiVersion: v1",
            "kind: PersistentVolumeClaim",
            `metadata: { name: backups, namespace: ${namespace} }`,
            "spec:",
            "  accessModes: [ReadWriteOnce]",
            '  storageClassName: ""',
            "  resources: { requests: { storage: 1Gi } }",
            "---",
            storageYaml("volume", ["volume: { persistentVolumeClaimName: backups, subPath: pg }"])
          ].join("\n")
        )
        assert.strictEqual(volume.exitCode, 0, volume.stderr)

        const [toS3, toAzure, toVolume] = yield* Effect.all(
          ["to-s3", "to-azure", "to-volume"].map((name) => succeeded(namespace, name, "300 seconds")),
          { concurrency: "unbounded" }
        )

        // S3: read back with the AWS SDK.
        const s3Location = toS3?.status?.backupLocation ?? ""
        assert.match(
          s3Location,
          new RegExp(`^s3://${bucket}/backups/${namespace}/to-s3/backup-\\d{8}-\\d{6}\\.sql\\.gz$`, "u")
        )
        const s3Store = S3ObjectStore.make({
          endpoint: s3.endpoint,
          region: s3.region,
          forcePathStyle: true,
          credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey }
        })
        const s3Objects = objectsOf(s3Location)
        const s3Dump = yield* s3Store.read(bucket, s3Objects.object)
        const s3Manifest = yield* s3Store.read(bucket, s3Objects.manifest)
        checkStored(toS3 as BackupDatabaseSchema, s3Dump, Buffer.from(s3Manifest).toString("utf8"), "s3")
        yield* restoresIdentically("restored_s3", gunzip(Buffer.from(s3Dump)).toString("utf8"))

        // Azure Blob: zstd, read back with the Azure SDK.
        const azureLocation = toAzure?.status?.backupLocation ?? ""
        assert.match(
          azureLocation,
          new RegExp(`^azblob://${azurite.accountName}/${bucket}/backups/${namespace}/to-azure/.*\\.sql\\.zst$`, "u")
        )
        const azureStore = AzureBlobObjectStore.make({
          accountName: azurite.accountName,
          endpoint: azurite.endpoint,
          credentials: { accountKey: azurite.accountKey }
        })
        const azureObjects = objectsOf(azureLocation)
        const azureDump = yield* azureStore.read(bucket, azureObjects.object)
        const azureManifest = yield* azureStore.read(bucket, azureObjects.manifest)
        checkStored(toAzure as BackupDatabaseSchema, azureDump, Buffer.from(azureManifest).toString("utf8"), "azure")
        yield* restoresIdentically("restored_azure", zstdDecompressSync(azureDump).toString("utf8"))

        // The volume: the files are in the PersistentVolume's directory, under the subPath.
        const volumeLocation = toVolume?.status?.backupLocation ?? ""
        assert.match(volumeLocation, /^file:\/\/\/var\/lib\/db-backup\/backups\/pg\/backups\/stores\/to-volume\//u)
        const volumeObjects = objectsOf(volumeLocation)
        // For a failure's message: what the runner said, and what the Pod mounted.
        const volumeLog = [
          yield* kubectl(["logs", "-n", namespace, `job/${toVolume?.status?.jobName ?? "?"}`]),
          yield* kubectl(["get", "pods", "-n", namespace, "-o", "jsonpath={.items[*].spec.volumes}"])
        ].join("\n")
        const onHost = (object: string) => {
          const path = join(hostDir, "pg", object)
          assert.isTrue(
            existsSync(path),
            `${path} exists; the volume holds: ${filesUnder(hostDir).join(", ")}; the runner said: ${volumeLog}`
          )
          return readFileSync(path)
        }
        const volumeDump = onHost(volumeObjects.object)
        checkStored(
          toVolume as BackupDatabaseSchema,
          volumeDump,
          onHost(volumeObjects.manifest).toString("utf8"),
          "file"
        )
        yield* restoresIdentically("restored_volume", gunzip(volumeDump).toString("utf8"))

        // Encrypted with age to a recipient: the stored bytes are not a gzip stream, the manifest
        // names the recipient, and the official age library with the identity gives the dump back.
        const identity = yield* Effect.promise(() => generateIdentity())
        const recipient = yield* Effect.promise(() => identityToRecipient(identity))
        const encrypted = yield* applyYaml(
          withServer(resourceYaml("encrypted", "archive", [`encryption: { ageRecipients: [${recipient}] }`]), pg)
        )
        assert.strictEqual(encrypted.exitCode, 0, encrypted.stderr)
        const sealed = yield* succeeded(namespace, "encrypted", "300 seconds")
        const sealedLocation = sealed.status?.backupLocation ?? ""
        assert.match(sealedLocation, /\.sql\.gz\.age$/u)
        const sealedObjects = objectsOf(sealedLocation)
        const ciphertext = yield* s3Store.read(bucket, sealedObjects.object)
        const sealedManifest = checkStored(
          sealed,
          ciphertext,
          Buffer.from(yield* s3Store.read(bucket, sealedObjects.manifest)).toString("utf8"),
          "s3"
        ) as unknown as { encryption?: { format: string; recipients: Array<string> } }
        assert.deepStrictEqual(sealedManifest.encryption, { format: "age", recipients: [recipient] })
        assert.strictEqual(Buffer.from(ciphertext).subarray(0, 21).toString("latin1"), "age-encryption.org/v1")
        const wrong = new Decrypter()
        wrong.addIdentity(yield* Effect.promise(() => generateIdentity()))
        const refused = yield* Effect.promise(() =>
          wrong.decrypt(ciphertext).then(
            () => "decrypted",
            (error: unknown) => String(error)
          )
        )
        assert.notStrictEqual(refused, "decrypted", "another identity cannot decrypt it")
        const decrypter = new Decrypter()
        decrypter.addIdentity(identity)
        const plain = yield* Effect.promise(() => decrypter.decrypt(ciphertext))
        yield* restoresIdentically("restored_encrypted", gunzip(Buffer.from(plain)).toString("utf8"))
      }),
    { timeout: 900_000 }
  )
})
