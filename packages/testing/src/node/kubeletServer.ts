import { readFile } from "node:fs/promises"
import { createServer } from "node:https"
import { NodeHttpServer } from "@effect/platform-node"
import { Effect, FileSystem, Path, Result, type Scope, Stream } from "effect"
import { HttpServerRequest, HttpServerResponse } from "effect/http"
import type { ChildProcessSpawner } from "effect/process"
import { runChecked } from "../process/run.ts"
import { ProcessNodeError } from "./errors.ts"
import { readLog } from "./logStream.ts"
import type { LogRegistry } from "./logs.ts"

/** How the node's kubelet endpoint is served. */
export interface KubeletServerOptions {
  readonly nodeName: string
  /** Where the serving key and certificate are written. */
  readonly pkiDir: string
  /**
   * The cluster CA (PEM). When given, only clients presenting a certificate
   * it signed get through the TLS handshake (kube-apiserver's kubelet client
   * certificate); without it, any client is served.
   */
  readonly clientCaPem?: string | undefined
  readonly logs: LogRegistry
}

/** A running kubelet endpoint. */
export interface KubeletServer {
  /** The port on 127.0.0.1: the Node's `daemonEndpoints.kubeletEndpoint.Port`. */
  readonly port: number
}

/**
 * A self-signed serving certificate for 127.0.0.1 and the node's name.
 * kube-apiserver does not verify kubelet serving certificates unless it is
 * given `--kubelet-certificate-authority`, so this is all the TLS it needs.
 */
const servingCertificate = (options: KubeletServerOptions) =>
  Effect.gen(function* () {
    const path = yield* Path.Path
    const key = path.join(options.pkiDir, "kubelet.key")
    const cert = path.join(options.pkiDir, "kubelet.crt")
    yield* runChecked("openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      "3650",
      "-sha256",
      "-subj",
      `/CN=${options.nodeName}`,
      "-addext",
      `subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:${options.nodeName}`
    ])
    return yield* Effect.tryPromise({
      try: async () => ({ key: await readFile(key, "utf8"), cert: await readFile(cert, "utf8") }),
      catch: (cause) =>
        new ProcessNodeError({ message: `cannot read the kubelet certificate: ${String(cause)}`, cause })
    })
  })

/** A non-negative integer query parameter, or undefined when absent or malformed. */
const count = (params: URLSearchParams, name: string): number | undefined => {
  const value = params.get(name)
  if (value === null || !/^\d+$/u.test(value)) return undefined
  return Number(value)
}

const flag = (params: URLSearchParams, name: string): boolean => params.get(name) === "true"

const plain = (status: number, message: string) => HttpServerResponse.text(`${message}\n`, { status })

/**
 * `GET /containerLogs/<namespace>/<pod>/<container>` as the kubelet answers
 * it: `follow`, `previous`, `tailLines` (and the legacy `tail`), `limitBytes`.
 * `timestamps` and `sinceSeconds`/`sinceTime` are accepted and ignored (the
 * node keeps no per-line times).
 */
const handler = (logs: LogRegistry) =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const url = new URL(request.url, "https://kubelet")
    const parts = url.pathname.split("/").filter((part) => part !== "")
    if (request.method === "GET" && url.pathname === "/healthz") return HttpServerResponse.text("ok")
    if (request.method !== "GET" || parts[0] !== "containerLogs" || parts.length !== 4) {
      return plain(404, "404 page not found")
    }
    const [namespace, pod, container] = parts.slice(1).map(decodeURIComponent)
    if (namespace === undefined || pod === undefined || container === undefined) {
      return plain(400, '{"message": "Missing podID."}')
    }
    const params = url.searchParams
    const tail = params.get("tail")
    const tailLines = tail !== null && tail !== "all" ? count(params, "tail") : count(params, "tailLines")
    const selected = logs.select(namespace, pod, container, flag(params, "previous"))
    if (Result.isFailure(selected)) return plain(selected.failure.status, selected.failure.message)
    const fs = yield* FileSystem.FileSystem
    const body = readLog(selected.success, {
      follow: flag(params, "follow"),
      tailLines,
      limitBytes: count(params, "limitBytes")
    }).pipe(Stream.provideService(FileSystem.FileSystem, fs))
    return HttpServerResponse.stream(body, { contentType: "text/plain" })
  })

/**
 * Serves the kubelet's log endpoint over HTTPS on a random port of
 * 127.0.0.1 until the scope closes, so `kubectl logs` (through
 * kube-apiserver's `pods/log` proxy) reaches the node's containers.
 *
 * @example
 * ```ts
 * const { port } = yield* serveKubelet({ nodeName, pkiDir, clientCaPem: caPem, logs })
 * ```
 */
export const serveKubelet = (
  options: KubeletServerOptions
): Effect.Effect<
  KubeletServer,
  ProcessNodeError,
  Scope.Scope | FileSystem.FileSystem | Path.Path | ChildProcessSpawner.ChildProcessSpawner
> =>
  Effect.gen(function* () {
    const { key, cert } = yield* servingCertificate(options).pipe(
      Effect.mapError(
        (error) =>
          new ProcessNodeError({ message: `cannot create the kubelet certificate: ${error.message}`, cause: error })
      )
    )
    const tls =
      options.clientCaPem === undefined
        ? { key, cert }
        : { key, cert, ca: options.clientCaPem, requestCert: true, rejectUnauthorized: true }
    const server = yield* NodeHttpServer.make(() => createServer(tls), {
      host: "127.0.0.1",
      port: 0,
      // A `kubectl logs -f` still open at teardown must not hold the node for long.
      gracefulShutdownTimeout: "2 seconds"
    }).pipe(
      Effect.mapError(
        (error) =>
          new ProcessNodeError({ message: `cannot serve the kubelet endpoint: ${error.message}`, cause: error })
      )
    )
    yield* server.serve(handler(options.logs))
    const address = server.address
    if (address._tag === "UnixPathAddress") {
      return yield* new ProcessNodeError({ message: "the kubelet endpoint has no TCP port" })
    }
    return { port: address.port }
  })
