import { spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { delimiter, join } from "node:path"
import { BlobSASPermissions, generateBlobSASQueryParameters, StorageSharedKeyCredential } from "@azure/storage-blob"
import {
  AzureBlobObjectStore,
  FileObjectStore,
  GcsObjectStore,
  type ObjectStore,
  S3ObjectStore
} from "@db-backup-operator/storage"
import { Azurite, GcsEmulator, S3Server } from "@db-backup-operator/testing"
import { Effect, FileSystem } from "effect"

// Each store the runner benchmark writes to: its test server (started only for the
// rows that need it, stopped after them), what the runner's environment says to use
// it, the benchmark's own client (sizes, clean-up), and the shell uploads to it.

export type StoreName = "gcs" | "s3" | "azure" | "file"

/** A stage of a shell pipeline: a command and its arguments, no shell. */
export interface Stage {
  readonly command: string
  readonly args: ReadonlyArray<string>
  readonly env?: NodeJS.ProcessEnv
}

/** How a shell pipeline uploads what its stdin gets. */
export type ShellUpload =
  /** curl -T -: one streamed request, chunked transfer encoding (no Content-Length). */
  | "curl-stream"
  /** curl --data-binary @-: curl reads all of stdin into memory, then sends one request with a Content-Length. */
  | "curl-buffered"
  /** aws s3 cp -: the AWS CLI's streamed multipart upload. */
  | "aws-cli"
  /** the last stage's stdout is the file (a shell's `> file`). */
  | "file"

/** Where a shell pipeline's output goes: into a last stage's stdin, or a file. */
export type ShellTarget = { readonly stage: Stage } | { readonly file: string } | { readonly skipped: string }

export interface StoreContext {
  readonly store: StoreName
  readonly bucket: string
  /** The contract variables that send the runner's backup to this store. */
  readonly runnerEnv: Readonly<Record<string, string>>
  /** The benchmark's own client: sizes of what was stored, and clean-up. */
  readonly client: ObjectStore["Service"]
  /** The last stage of a pipeline that stores its stdin as `object`, or why it cannot be done here. */
  readonly upload: (kind: ShellUpload, object: string) => Effect.Effect<ShellTarget>
}

export const bucket = "bench-backups"

/** Whether `command` is on PATH (or is a path to a file). */
export const hasCommand = (command: string): boolean =>
  command.includes("/")
    ? existsSync(command)
    : (process.env.PATH ?? "").split(delimiter).some((dir) => dir !== "" && existsSync(join(dir, command)))

/** Runs a command with `input` on its stdin; its exit code and output. */
const runWithInput = (stage: Stage, input: Uint8Array) =>
  Effect.promise(
    () =>
      new Promise<{ readonly code: number; readonly stdout: string; readonly stderr: string }>((resolve) => {
        const child = spawn(stage.command, [...stage.args], { env: stage.env ?? process.env })
        let stdout = ""
        let stderr = ""
        child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")))
        child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")))
        child.on("error", (error) => resolve({ code: 127, stdout, stderr: String(error) }))
        child.on("close", (code) => resolve({ code: code ?? 128, stdout, stderr }))
        child.stdin.on("error", () => {})
        child.stdin.end(input)
      })
  )

/**
 * Whether the server takes a streamed upload of unknown length (`curl -T -`
 * sends it chunked): one small upload, answered with its HTTP status and the
 * store's error code. S3's PutObject and Azure's Put Blob need a Content-Length.
 */
const probeChunked = (stage: Stage, why: string) =>
  Effect.gen(function* () {
    // The body is printed, then the status on a line of its own.
    const probe = { ...stage, args: ["--silent", "--show-error", "--write-out", "\n%{http_code}", ...stage.args] }
    const result = yield* runWithInput(probe, Buffer.from("probe\n"))
    const status = result.stdout.trim().split("\n").at(-1) ?? ""
    if (result.code === 0 && /^2\d\d$/u.test(status)) return undefined
    const code = /<Code>([^<]+)<\/Code>/u.exec(result.stdout)?.[1]
    return `refused: HTTP ${status}${code === undefined ? "" : ` ${code}`} to a chunked upload (${why})${result.code === 0 ? "" : `; curl: ${result.stderr.trim()}`}`
  })

const curl = "curl"
const curlArgs = ["--silent", "--show-error", "--fail", "--output", "/dev/null"]

/** The curl stage, failing on an HTTP error and printing nothing but errors. */
const checked = (stage: Stage): Stage => ({ ...stage, args: [...curlArgs, ...stage.args] })

const missing = (command: string) => (hasCommand(command) ? undefined : { skipped: `skipped: ${command} not found` })

/** The GCS emulator (fake-gcs-server): a JSON API media upload streams chunked. */
export const withGcs = <A, E>(f: (context: StoreContext) => Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const gcs = yield* GcsEmulator
    yield* gcs.createBucket(bucket)
    return yield* f({
      store: "gcs",
      bucket,
      runnerEnv: { BACKUP_STORE: "gcs", GCS_ENDPOINT: gcs.endpoint },
      client: GcsObjectStore.make({ apiEndpoint: gcs.endpoint }),
      upload: (kind, object) =>
        Effect.succeed(
          missing(curl) ??
            (kind === "curl-stream"
              ? {
                  stage: {
                    command: curl,
                    args: [
                      ...curlArgs,
                      "-X",
                      "POST",
                      "-T",
                      "-",
                      `${gcs.endpoint}/upload/storage/v1/b/${bucket}/o?uploadType=media&name=${encodeURIComponent(object)}`
                    ]
                  }
                }
              : { skipped: `skipped: no ${kind} upload to GCS here` })
        )
    })
  }).pipe(Effect.provide(GcsEmulator.layer))

/** versitygw: S3 wants a Content-Length, so curl can only send it buffered (no multipart with curl). */
export const withS3 = <A, E>(f: (context: StoreContext) => Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const s3 = yield* S3Server
    yield* s3.createBucket(bucket)
    const credentials = { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey }
    const signed = (object: string, body: ReadonlyArray<string>): Stage => ({
      command: curl,
      args: [
        "--aws-sigv4",
        `aws:amz:${s3.region}:s3`,
        "--user",
        `${s3.accessKeyId}:${s3.secretAccessKey}`,
        // curl 7.88 signs no payload hash of its own, and versitygw requires the header.
        "-H",
        "x-amz-content-sha256: UNSIGNED-PAYLOAD",
        ...body,
        `${s3.endpoint}/${bucket}/${object}`
      ]
    })
    let chunked: string | undefined | null = null
    return yield* f({
      store: "s3",
      bucket,
      runnerEnv: {
        BACKUP_STORE: "s3",
        S3_ENDPOINT: s3.endpoint,
        S3_REGION: s3.region,
        S3_FORCE_PATH_STYLE: "true",
        AWS_ACCESS_KEY_ID: s3.accessKeyId,
        AWS_SECRET_ACCESS_KEY: s3.secretAccessKey
      },
      client: S3ObjectStore.make({ endpoint: s3.endpoint, region: s3.region, forcePathStyle: true, credentials }),
      upload: (kind, object): Effect.Effect<ShellTarget> =>
        Effect.gen(function* () {
          if (kind === "aws-cli") {
            return (
              missing("aws") ?? {
                stage: {
                  command: "aws",
                  args: [
                    "--endpoint-url",
                    s3.endpoint,
                    "s3",
                    "cp",
                    "--only-show-errors",
                    "-",
                    `s3://${bucket}/${object}`
                  ],
                  env: {
                    ...process.env,
                    AWS_ACCESS_KEY_ID: s3.accessKeyId,
                    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
                    AWS_DEFAULT_REGION: s3.region,
                    AWS_CONFIG_FILE: "/dev/null",
                    AWS_SHARED_CREDENTIALS_FILE: "/dev/null"
                  }
                }
              }
            )
          }
          const noCurl = missing(curl)
          if (noCurl !== undefined) return noCurl
          if (kind === "curl-buffered") return { stage: checked(signed(object, ["-X", "PUT", "--data-binary", "@-"])) }
          if (kind !== "curl-stream") return { skipped: `skipped: no ${kind} upload to S3 here` }
          if (chunked === null) {
            chunked = yield* probeChunked(
              signed(`${object}.probe`, ["-T", "-"]),
              "S3 needs a Content-Length, and curl cannot do a multipart upload"
            )
          }
          return chunked === undefined ? { stage: checked(signed(object, ["-T", "-"])) } : { skipped: chunked }
        })
    })
  }).pipe(Effect.provide(S3Server.layer))

/** Azurite, with the account key for the runner and a SAS URL for curl. */
export const withAzure = <A, E>(f: (context: StoreContext) => Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const azurite = yield* Azurite
    yield* azurite.createContainer(bucket)
    const key = new StorageSharedKeyCredential(azurite.accountName, azurite.accountKey)
    const blobUrl = (object: string) => {
      const sas = generateBlobSASQueryParameters(
        {
          containerName: bucket,
          blobName: object,
          permissions: BlobSASPermissions.parse("cw"),
          expiresOn: new Date(Date.now() + 6 * 3600_000)
        },
        key
      ).toString()
      return `${azurite.endpoint}/${bucket}/${object.split("/").map(encodeURIComponent).join("/")}?${sas}`
    }
    const putBlob = (object: string, body: ReadonlyArray<string>): Stage => ({
      command: curl,
      args: ["-H", "x-ms-blob-type: BlockBlob", ...body, blobUrl(object)]
    })
    let chunked: string | undefined | null = null
    return yield* f({
      store: "azure",
      bucket,
      runnerEnv: {
        BACKUP_STORE: "azure",
        AZURE_STORAGE_ACCOUNT: azurite.accountName,
        AZURE_BLOB_ENDPOINT: azurite.endpoint,
        AZURE_STORAGE_KEY: azurite.accountKey
      },
      client: AzureBlobObjectStore.make({
        accountName: azurite.accountName,
        endpoint: azurite.endpoint,
        credentials: { accountKey: azurite.accountKey }
      }),
      upload: (kind, object) =>
        Effect.gen(function* () {
          const noCurl = missing(curl)
          if (noCurl !== undefined) return noCurl
          if (kind === "curl-buffered") return { stage: checked(putBlob(object, ["-X", "PUT", "--data-binary", "@-"])) }
          if (kind !== "curl-stream") return { skipped: `skipped: no ${kind} upload to Azure here` }
          if (chunked === null) {
            chunked = yield* probeChunked(
              putBlob(`${object}.probe`, ["-T", "-"]),
              "Put Blob needs a Content-Length; staged blocks are not possible with one curl"
            )
          }
          return chunked === undefined ? { stage: checked(putBlob(object, ["-T", "-"])) } : { skipped: chunked }
        })
    })
  }).pipe(Effect.provide(Azurite.layer))

/** A temporary directory as the volume (deleted afterwards); the shell pipeline's compressor writes the file. */
export const withFile = <A, E>(f: (context: StoreContext) => Effect.Effect<A, E>) =>
  Effect.scoped(
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped({ prefix: "bench-runner-volume-" })
      return yield* f({
        store: "file",
        bucket: dir,
        runnerEnv: { BACKUP_STORE: "file" },
        client: FileObjectStore.make(),
        upload: (kind, object): Effect.Effect<ShellTarget> =>
          Effect.gen(function* () {
            if (kind !== "file") return { skipped: `skipped: no ${kind} upload to a volume` }
            const file = join(dir, ...object.split("/"))
            yield* fs.makeDirectory(join(file, ".."), { recursive: true }).pipe(Effect.orDie)
            return { file }
          })
      })
    })
  )

export const withStore = <A, E>(store: StoreName, f: (context: StoreContext) => Effect.Effect<A, E>) => {
  switch (store) {
    case "gcs":
      return withGcs(f)
    case "s3":
      return withS3(f)
    case "azure":
      return withAzure(f)
    case "file":
      return withFile(f)
  }
}
