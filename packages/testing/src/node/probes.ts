import * as http from "node:http"
import * as https from "node:https"
import * as net from "node:net"
import { Clock, Duration, Effect, Option } from "effect"
import type { NodeContainer, NodeProbe } from "./podSpec.ts"

/**
 * Container probes as the kubelet runs them: a pure part (timing defaults,
 * the success/failure threshold state machine, what a probe's handler
 * resolves to) and a thin effectful part (the HTTP, TCP and exec checks, and
 * the loops that drive them on the clock).
 */

/** The three probes of a container. */
export type ProbeKind = "startup" | "readiness" | "liveness"

/** One check's result: `Unknown` is the kubelet's probe error, which changes nothing. */
export type ProbeResult = "Success" | "Failure" | "Unknown"

/** One check: its result and what it said (an HTTP status, a connection error). */
export interface ProbeOutcome {
  readonly result: ProbeResult
  readonly output: string
}

/** A probe's timing with the API server's defaults applied. */
export interface ProbeTiming {
  readonly initialDelay: Duration.Duration
  readonly period: Duration.Duration
  readonly timeout: Duration.Duration
  readonly successThreshold: number
  readonly failureThreshold: number
}

const positive = (value: number | undefined, fallback: number): number =>
  value === undefined || value < 1 ? fallback : value

/**
 * The probe's timing: `periodSeconds` 10, `timeoutSeconds` 1,
 * `successThreshold` 1, `failureThreshold` 3 unless set (the API server's
 * defaults), `initialDelaySeconds` 0.
 *
 * @example
 * ```ts
 * probeTiming({ httpGet: { port: 8080 }, periodSeconds: 5 }).failureThreshold // 3
 * ```
 */
export const probeTiming = (probe: NodeProbe): ProbeTiming => ({
  initialDelay: Duration.seconds(Math.max(0, probe.initialDelaySeconds ?? 0)),
  period: Duration.seconds(positive(probe.periodSeconds, 10)),
  timeout: Duration.seconds(positive(probe.timeoutSeconds, 1)),
  successThreshold: positive(probe.successThreshold, 1),
  failureThreshold: positive(probe.failureThreshold, 3)
})

/** What a probe reports so far, and the run of equal outcomes that may change it. */
export interface ProbeTracker {
  /** The reported result: `Unknown` only for a startup probe that has not decided yet. */
  readonly result: ProbeResult
  readonly last: ProbeResult | undefined
  readonly run: number
}

/**
 * The kubelet's initial results: a container is not ready until its readiness
 * probe succeeds, alive until its liveness probe fails, and not started until
 * its startup probe decides.
 */
export const initialTracker = (kind: ProbeKind): ProbeTracker => ({
  result: kind === "readiness" ? "Failure" : kind === "liveness" ? "Success" : "Unknown",
  last: undefined,
  run: 0
})

/**
 * One check observed, as the kubelet's probe worker does: `successThreshold`
 * successes in a row report Success, `failureThreshold` failures in a row
 * report Failure, and an `Unknown` (a probe error) changes nothing.
 *
 * @example
 * ```ts
 * const timing = probeTiming({ tcpSocket: { port: 80 }, failureThreshold: 2 })
 * const once = observe(initialTracker("liveness"), "Failure", timing) // still Success
 * observe(once, "Failure", timing).result // "Failure"
 * ```
 */
export const observe = (
  tracker: ProbeTracker,
  outcome: ProbeResult,
  timing: Pick<ProbeTiming, "successThreshold" | "failureThreshold">
): ProbeTracker => {
  if (outcome === "Unknown") return tracker
  const run = tracker.last === outcome ? tracker.run + 1 : 1
  const threshold = outcome === "Success" ? timing.successThreshold : timing.failureThreshold
  return { result: run >= threshold ? outcome : tracker.result, last: outcome, run }
}

/** What a probe's handler resolves to on this node. */
export type ProbeAction =
  | {
      readonly _tag: "HttpGet"
      readonly url: string
      readonly scheme: "HTTP" | "HTTPS"
      readonly headers: Readonly<Record<string, string>>
    }
  | { readonly _tag: "TcpSocket"; readonly host: string; readonly port: number }
  | { readonly _tag: "Exec"; readonly command: ReadonlyArray<string> }
  /** A probe the kubelet would run but that errors every time (an unknown port name): stays Unknown. */
  | { readonly _tag: "Invalid"; readonly message: string }
  /** A probe this node cannot run: treated as absent. */
  | { readonly _tag: "Unsupported"; readonly reason: string }

/** A port number, or the `containerPort` of the container's port of that name. */
export const resolvePort = (port: number | string, container: NodeContainer): Option.Option<number> => {
  if (typeof port === "number") return port >= 1 && port <= 65535 ? Option.some(port) : Option.none()
  if (/^\d+$/u.test(port)) return resolvePort(Number(port), container)
  const named = container.ports?.find((candidate) => candidate.name === port)
  return named === undefined ? Option.none() : Option.some(named.containerPort)
}

const hostPort = (host: string, port: number): string => `${host.includes(":") ? `[${host}]` : host}:${port}`

/**
 * The kubelet's probe `User-Agent` for the Kubernetes version this project pins.
 */
const userAgent = "kube-probe/1.37"

/**
 * How a probe runs for a container whose Pod has `podIP`: `httpGet` and
 * `tcpSocket` against `host` or the Pod IP and a port by number or by name,
 * `exec` when the runtime can exec into the container (`canExec`).
 *
 * @example
 * ```ts
 * probeAction({ httpGet: { path: "/readyz", port: "health" } }, container, { podIP: "127.93.1.1", canExec: false })
 * // { _tag: "HttpGet", url: "http://127.93.1.1:8081/readyz", scheme: "HTTP", headers: { ... } }
 * ```
 */
export const probeAction = (
  probe: NodeProbe,
  container: NodeContainer,
  options: { readonly podIP: string; readonly canExec: boolean }
): ProbeAction => {
  const portOf = (port: number | string) =>
    Option.match(resolvePort(port, container), {
      onNone: () => ({ _tag: "Invalid", message: `unknown port ${JSON.stringify(port)}` }) as const,
      onSome: (number) => ({ _tag: "Port", number }) as const
    })
  if (probe.httpGet !== undefined) {
    const get = probe.httpGet
    const scheme = (get.scheme ?? "HTTP").toUpperCase()
    if (scheme !== "HTTP" && scheme !== "HTTPS") return { _tag: "Invalid", message: `unsupported scheme ${scheme}` }
    const port = portOf(get.port)
    if (port._tag === "Invalid") return port
    const host = get.host === undefined || get.host === "" ? options.podIP : get.host
    const path = get.path === undefined || get.path === "" ? "/" : get.path.startsWith("/") ? get.path : `/${get.path}`
    const headers: Record<string, string> = { "User-Agent": userAgent, Accept: "*/*" }
    for (const header of get.httpHeaders ?? []) headers[header.name] = header.value
    return { _tag: "HttpGet", url: `${scheme.toLowerCase()}://${hostPort(host, port.number)}${path}`, scheme, headers }
  }
  if (probe.tcpSocket !== undefined) {
    const port = portOf(probe.tcpSocket.port)
    if (port._tag === "Invalid") return port
    const host =
      probe.tcpSocket.host === undefined || probe.tcpSocket.host === "" ? options.podIP : probe.tcpSocket.host
    return { _tag: "TcpSocket", host, port: port.number }
  }
  if (probe.exec !== undefined) {
    const command = probe.exec.command ?? []
    if (!options.canExec) return { _tag: "Unsupported", reason: "exec probes need container mode (podman)" }
    if (command.length === 0) return { _tag: "Invalid", message: "exec probe without a command" }
    return { _tag: "Exec", command }
  }
  if (probe.grpc !== undefined) return { _tag: "Unsupported", reason: "grpc probes are not supported" }
  return { _tag: "Unsupported", reason: "the probe has no handler" }
}

const success = (output = ""): ProbeOutcome => ({ result: "Success", output })
const failure = (output: string): ProbeOutcome => ({ result: "Failure", output })

/** Reads at most this much of a probe's response body, as the kubelet. */
const maxBody = 10 * 1024

/** GET the URL: 2xx and 3xx succeed (redirects are not followed), the rest fail. No keep-alive, no TLS verification. */
const httpCheck = (action: Extract<ProbeAction, { _tag: "HttpGet" }>): Effect.Effect<ProbeOutcome> =>
  Effect.callback<ProbeOutcome>((resume, signal) => {
    const client = action.scheme === "HTTPS" ? https : http
    const request = client.request(
      action.url,
      {
        method: "GET",
        headers: { ...action.headers, Connection: "close" },
        agent: false,
        signal,
        ...(action.scheme === "HTTPS" ? { rejectUnauthorized: false } : {})
      },
      (response) => {
        const status = response.statusCode ?? 0
        let body = ""
        response.setEncoding("utf8")
        response.on("data", (chunk: string) => {
          if (body.length < maxBody) body += chunk.slice(0, maxBody - body.length)
        })
        response.on("error", (error) => resume(Effect.succeed(failure(error.message))))
        response.on("end", () =>
          resume(
            Effect.succeed(
              status >= 200 && status < 400
                ? success(body)
                : failure(`HTTP probe failed with statuscode: ${status}${body === "" ? "" : `: ${body.trim()}`}`)
            )
          )
        )
      }
    )
    request.on("error", (error) => resume(Effect.succeed(failure(`Get "${action.url}": ${error.message}`))))
    request.end()
  })

/** Connects and hangs up at once: a connection is a success. */
const tcpCheck = (action: Extract<ProbeAction, { _tag: "TcpSocket" }>): Effect.Effect<ProbeOutcome> =>
  Effect.callback<ProbeOutcome>((resume) => {
    const address = hostPort(action.host, action.port)
    const socket = net.connect({ host: action.host, port: action.port })
    socket.once("connect", () => {
      socket.destroy()
      resume(Effect.succeed(success()))
    })
    socket.once("error", (error) => resume(Effect.succeed(failure(`dial tcp ${address}: ${error.message}`))))
    return Effect.sync(() => socket.destroy())
  })

/** Runs a command in the container and tells its exit code (or why it could not run). */
export type ExecInContainer = (
  command: ReadonlyArray<string>,
  timeout: Duration.Duration
) => Effect.Effect<{ readonly exitCode: number; readonly output: string }, string>

/**
 * One check of a probe, bounded by its timeout (a timeout is a failure, as
 * the kubelet's); `Invalid` is an `Unknown` every time.
 */
export const checkProbe = (
  action: Exclude<ProbeAction, { _tag: "Unsupported" }>,
  timeout: Duration.Duration,
  exec?: ExecInContainer
): Effect.Effect<ProbeOutcome> => {
  const timedOut = (what: string) =>
    Effect.succeed(failure(`${what}: timeout after ${Duration.format(timeout)} (timeoutSeconds)`))
  switch (action._tag) {
    case "HttpGet":
      return httpCheck(action).pipe(Effect.timeoutOrElse({ duration: timeout, orElse: () => timedOut(action.url) }))
    case "TcpSocket":
      return tcpCheck(action).pipe(
        Effect.timeoutOrElse({ duration: timeout, orElse: () => timedOut(hostPort(action.host, action.port)) })
      )
    case "Exec":
      return exec === undefined
        ? Effect.succeed({ result: "Unknown", output: "this runtime cannot exec into containers" })
        : exec(action.command, timeout).pipe(
            Effect.map(({ exitCode, output }) =>
              exitCode === 0 ? success(output) : failure(`command exited with ${exitCode}: ${output.trim()}`)
            ),
            Effect.catch((message) => Effect.succeed<ProbeOutcome>({ result: "Unknown", output: message })),
            Effect.timeoutOrElse({ duration: timeout, orElse: () => timedOut(`command ${action.command[0]}`) })
          )
    case "Invalid":
      return Effect.succeed({ result: "Unknown", output: action.message })
  }
}

/** A probe ready to run: its timing and one check. */
export interface ScheduledProbe {
  readonly timing: ProbeTiming
  readonly check: Effect.Effect<ProbeOutcome>
  /** The probe's own `terminationGracePeriodSeconds` for a kill it causes. */
  readonly terminationGracePeriodSeconds?: number | undefined
}

/** A container's probes that this node runs. */
export interface ContainerProbes {
  readonly startup?: ScheduledProbe | undefined
  readonly readiness?: ScheduledProbe | undefined
  readonly liveness?: ScheduledProbe | undefined
}

/** Why the container has to be killed: its startup or liveness probe failed. */
export interface ProbeKill {
  readonly kind: "startup" | "liveness"
  /** The last check's output. */
  readonly output: string
  readonly terminationGracePeriodSeconds?: number | undefined
}

/** What the container's status does when a probe decides. */
export interface ProbeReactions {
  /** The startup probe succeeded: the container is started (readiness and liveness probes begin). */
  readonly started: Effect.Effect<void>
  /** The readiness probe's result changed. */
  readonly ready: (ready: boolean) => Effect.Effect<void>
}

const capitalized = (kind: ProbeKind) => `${kind.charAt(0).toUpperCase()}${kind.slice(1)}`

/**
 * Checks a probe every `period` once `initialDelay` has passed since the
 * container started, reports each change of its result, and returns the
 * result `until` accepts (with the last output). A failing check is logged
 * when what it says changes, not every period.
 */
const probeLoop = (
  kind: ProbeKind,
  probe: ScheduledProbe,
  startedAt: number,
  onChange: (result: ProbeResult) => Effect.Effect<void>,
  until: (result: ProbeResult) => boolean
): Effect.Effect<ProbeOutcome> =>
  Effect.gen(function* () {
    const elapsed = Duration.millis((yield* Clock.currentTimeMillis) - startedAt)
    const wait = Duration.subtract(probe.timing.initialDelay, elapsed)
    if (Duration.isGreaterThan(wait, Duration.zero)) yield* Effect.sleep(wait)
    let tracker = initialTracker(kind)
    let lastOutput = ""
    for (;;) {
      const outcome = yield* probe.check
      if (outcome.result !== "Success" && outcome.output !== lastOutput) {
        yield* Effect.logInfo(
          outcome.result === "Failure"
            ? `${capitalized(kind)} probe failed: ${outcome.output}`
            : `${capitalized(kind)} probe errored: ${outcome.output}`
        )
      }
      lastOutput = outcome.result === "Success" ? "" : outcome.output
      const next = observe(tracker, outcome.result, probe.timing)
      if (next.result !== tracker.result) {
        yield* onChange(next.result)
        if (until(next.result)) return { result: next.result, output: outcome.output }
      }
      tracker = next
      yield* Effect.sleep(probe.timing.period)
    }
  })

/**
 * Runs a started container's probes as the kubelet's probe workers: the
 * startup probe first (until it succeeds, nothing else runs), then readiness
 * and liveness side by side. Completes only when the container must be
 * killed (its startup or liveness probe reached `failureThreshold`);
 * otherwise it runs until interrupted, which the Pod worker does when the
 * container stops. With no probe at all it never completes.
 *
 * @example
 * ```ts
 * const fiber = yield* superviseProbes(probes, { started, ready }).pipe(
 *   Effect.flatMap((kill) => running.stop(grace)),
 *   Effect.forkScoped
 * )
 * ```
 */
export const superviseProbes = (probes: ContainerProbes, reactions: ProbeReactions): Effect.Effect<ProbeKill> =>
  Effect.gen(function* () {
    const startedAt = yield* Clock.currentTimeMillis
    if (probes.startup !== undefined) {
      const startup = probes.startup
      const decided = yield* probeLoop(
        "startup",
        startup,
        startedAt,
        () => Effect.void,
        (result) => result !== "Unknown"
      )
      if (decided.result === "Failure") {
        return {
          kind: "startup",
          output: decided.output,
          terminationGracePeriodSeconds: startup.terminationGracePeriodSeconds
        } satisfies ProbeKill
      }
      yield* reactions.started
    }
    const readiness =
      probes.readiness === undefined
        ? Effect.never
        : probeLoop(
            "readiness",
            probes.readiness,
            startedAt,
            (result) => reactions.ready(result === "Success"),
            () => false
          ).pipe(Effect.andThen(Effect.never))
    const liveness: Effect.Effect<ProbeKill> =
      probes.liveness === undefined
        ? Effect.never
        : Effect.map(
            probeLoop(
              "liveness",
              probes.liveness,
              startedAt,
              () => Effect.void,
              (result) => result === "Failure"
            ),
            (outcome) => ({
              kind: "liveness",
              output: outcome.output,
              terminationGracePeriodSeconds: probes.liveness?.terminationGracePeriodSeconds
            })
          )
    return yield* Effect.raceFirst(liveness, readiness)
  })

/**
 * The probes of `container` this node runs, each with its check: a probe
 * this node cannot run (`exec` in process mode, `grpc`) is left out with a
 * log line, so the container behaves as if it had none.
 *
 * @example
 * ```ts
 * const probes = yield* containerProbes(container, { podIP, exec: running.exec })
 * ```
 */
export const containerProbes = (
  container: NodeContainer,
  options: { readonly podIP: string; readonly exec?: ExecInContainer | undefined }
): Effect.Effect<ContainerProbes> =>
  Effect.gen(function* () {
    const schedule = (kind: ProbeKind, probe: NodeProbe | undefined) =>
      Effect.gen(function* () {
        if (probe === undefined) return undefined
        const action = probeAction(probe, container, { podIP: options.podIP, canExec: options.exec !== undefined })
        if (action._tag === "Unsupported") {
          yield* Effect.logWarning(
            `process node: ${kind} probe of container ${container.name} is not run (${action.reason}); treated as absent`
          )
          return undefined
        }
        const timing = probeTiming(probe)
        const scheduled: ScheduledProbe = {
          timing,
          check: checkProbe(action, timing.timeout, options.exec),
          terminationGracePeriodSeconds: probe.terminationGracePeriodSeconds
        }
        return scheduled
      })
    return {
      startup: yield* schedule("startup", container.startupProbe),
      readiness: yield* schedule("readiness", container.readinessProbe),
      liveness: yield* schedule("liveness", container.livenessProbe)
    }
  })
