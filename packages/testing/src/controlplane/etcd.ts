import { rm } from "node:fs/promises"
import { join } from "node:path"
import { Duration, Effect, type FileSystem, type Path, type Scope } from "effect"
import { HttpClient } from "effect/http"
import type { ChildProcessSpawner } from "effect/process"
import { probeOk } from "../http.ts"
import { waitUntilReady } from "../poll.ts"
import { freePorts } from "../ports.ts"
import { type Daemon, startDaemon } from "../process/Daemon.ts"
import { ControlPlaneError, controlPlaneError } from "./ControlPlaneError.ts"

/** A running single-member etcd. */
export interface Etcd {
  /** `http://127.0.0.1:PORT`, for `--etcd-servers`. */
  readonly endpoint: string
  readonly daemon: Daemon
}

/** Where an etcd member listens and keeps its data: fixed at the first start, reused by every restart. */
export interface EtcdConfig {
  readonly binary: string
  /** Working directory (log, pid). */
  readonly dir: string
  readonly dataDir: string
  readonly clientPort: number
  readonly peerPort: number
}

/**
 * Starts etcd as envtest does: one member on 127.0.0.1 (random client and peer
 * ports), data in `<dir>/etcd` (wiped first), `--unsafe-no-fsync`; ready when
 * `/health` says so. {@link runEtcd} starts it again on the same ports and data.
 *
 * @example
 * ```ts
 * declare const binaries: { readonly etcd: string }
 * declare const dir: string
 * const etcd = yield* startEtcd(binaries.etcd, dir)
 * ```
 */
export const startEtcd = (
  binary: string,
  dir: string
): Effect.Effect<
  Etcd & { readonly config: EtcdConfig },
  ControlPlaneError,
  Scope.Scope | ChildProcessSpawner.ChildProcessSpawner | FileSystem.FileSystem | Path.Path | HttpClient.HttpClient
> =>
  Effect.gen(function* () {
    const dataDir = join(dir, "etcd")
    yield* Effect.promise(() => rm(dataDir, { recursive: true, force: true }))
    const [clientPort = 0, peerPort = 0] = yield* freePorts(2).pipe(
      Effect.mapError(controlPlaneError("no free ports for etcd"))
    )
    const config: EtcdConfig = { binary, dir, dataDir, clientPort, peerPort }
    const etcd = yield* runEtcd(config)
    return { ...etcd, config }
  })

/**
 * Runs etcd with `config`, keeping whatever its data directory holds (a
 * restart: same member, same ports, same data), and waits until `/health` says so.
 *
 * @example
 * ```ts
 * declare const config: EtcdConfig
 * const etcd = yield* runEtcd(config)
 * ```
 */
export const runEtcd = (
  config: EtcdConfig
): Effect.Effect<
  Etcd,
  ControlPlaneError,
  Scope.Scope | ChildProcessSpawner.ChildProcessSpawner | FileSystem.FileSystem | Path.Path | HttpClient.HttpClient
> =>
  Effect.gen(function* () {
    const endpoint = `http://127.0.0.1:${config.clientPort}`
    const peer = `http://127.0.0.1:${config.peerPort}`
    const daemon = yield* startDaemon({
      name: "etcd",
      dir: config.dir,
      command: config.binary,
      args: [
        "--name=kube-testenv",
        `--data-dir=${config.dataDir}`,
        `--listen-client-urls=${endpoint}`,
        `--advertise-client-urls=${endpoint}`,
        `--listen-peer-urls=${peer}`,
        `--initial-advertise-peer-urls=${peer}`,
        `--initial-cluster=kube-testenv=${peer}`,
        "--unsafe-no-fsync=true",
        "--log-level=warn"
      ]
    }).pipe(Effect.mapError(controlPlaneError("cannot start etcd")))
    const client = yield* HttpClient.HttpClient
    yield* waitUntilReady(
      daemon.ensureRunning.pipe(
        Effect.mapError(controlPlaneError("etcd stopped")),
        Effect.andThen(probeOk(client, `${endpoint}/health`))
      ),
      {
        interval: Duration.millis(100),
        timeout: Duration.seconds(60),
        onTimeout: (reason) => new ControlPlaneError({ message: `etcd not healthy after 60 seconds: ${reason}` })
      }
    )
    return { endpoint, daemon }
  })
