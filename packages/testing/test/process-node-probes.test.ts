import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Duration, Effect, Fiber, Ref } from "effect"
import { TestClock } from "effect/testing"
import type { NodeContainer } from "../src/node/podSpec.ts"
import {
  checkProbe,
  initialTracker,
  observe,
  type ProbeKind,
  type ProbeOutcome,
  type ProbeResult,
  probeAction,
  probeTiming,
  type ScheduledProbe,
  superviseProbes
} from "../src/node/probes.ts"

const container: NodeContainer = {
  name: "main",
  image: "busybox",
  ports: [
    { name: "metrics", containerPort: 8080 },
    { name: "health", containerPort: 8081 }
  ]
}

describe("probe timing and thresholds", () => {
  it("applies the API server's defaults", () => {
    assert.deepStrictEqual(probeTiming({ tcpSocket: { port: 80 } }), {
      initialDelay: Duration.seconds(0),
      period: Duration.seconds(10),
      timeout: Duration.seconds(1),
      successThreshold: 1,
      failureThreshold: 3
    })
    const custom = probeTiming({
      tcpSocket: { port: 80 },
      initialDelaySeconds: 5,
      periodSeconds: 2,
      timeoutSeconds: 3,
      successThreshold: 2,
      failureThreshold: 1
    })
    assert.deepStrictEqual(
      [custom.initialDelay, custom.period, custom.timeout, custom.successThreshold, custom.failureThreshold],
      [Duration.seconds(5), Duration.seconds(2), Duration.seconds(3), 2, 1]
    )
  })

  const run = (kind: ProbeKind, outcomes: ReadonlyArray<ProbeResult>, successThreshold = 1, failureThreshold = 3) => {
    let tracker = initialTracker(kind)
    return outcomes.map((outcome) => {
      tracker = observe(tracker, outcome, { successThreshold, failureThreshold })
      return tracker.result
    })
  }

  const table: ReadonlyArray<{
    readonly name: string
    readonly kind: ProbeKind
    readonly outcomes: ReadonlyArray<ProbeResult>
    readonly thresholds: readonly [number, number]
    readonly reported: ReadonlyArray<ProbeResult>
  }> = [
    {
      name: "readiness starts unready and turns ready after one success",
      kind: "readiness",
      outcomes: ["Failure", "Success", "Failure", "Failure", "Failure"],
      thresholds: [1, 3],
      reported: ["Failure", "Success", "Success", "Success", "Failure"]
    },
    {
      name: "readiness needs successThreshold successes in a row",
      kind: "readiness",
      outcomes: ["Success", "Failure", "Success", "Success", "Success"],
      thresholds: [3, 1],
      reported: ["Failure", "Failure", "Failure", "Failure", "Success"]
    },
    {
      name: "a probe error (Unknown) changes nothing and does not break a run",
      kind: "readiness",
      outcomes: ["Success", "Unknown", "Success"],
      thresholds: [2, 3],
      reported: ["Failure", "Failure", "Success"]
    },
    {
      name: "liveness starts alive and fails after failureThreshold failures in a row",
      kind: "liveness",
      outcomes: ["Failure", "Failure", "Success", "Failure", "Failure", "Failure"],
      thresholds: [1, 3],
      reported: ["Success", "Success", "Success", "Success", "Success", "Failure"]
    },
    {
      name: "startup is undecided until a success or failureThreshold failures",
      kind: "startup",
      outcomes: ["Failure", "Success"],
      thresholds: [1, 2],
      reported: ["Unknown", "Success"]
    },
    {
      name: "startup fails after failureThreshold failures",
      kind: "startup",
      outcomes: ["Failure", "Failure"],
      thresholds: [1, 2],
      reported: ["Unknown", "Failure"]
    }
  ]
  for (const row of table) {
    it(row.name, () => {
      assert.deepStrictEqual(run(row.kind, row.outcomes, ...row.thresholds), row.reported)
    })
  }
})

describe("probe actions", () => {
  it("resolves httpGet against the Pod IP, a named port, a path and headers", () => {
    assert.deepStrictEqual(
      probeAction(
        { httpGet: { path: "readyz", port: "health", httpHeaders: [{ name: "X-Probe", value: "1" }] } },
        container,
        { podIP: "127.93.1.1", canExec: false }
      ),
      {
        _tag: "HttpGet",
        url: "http://127.93.1.1:8081/readyz",
        scheme: "HTTP",
        headers: { "User-Agent": "kube-probe/1.37", Accept: "*/*", "X-Probe": "1" }
      }
    )
    const withHost = probeAction({ httpGet: { port: 9000, host: "::1", scheme: "HTTPS" } }, container, {
      podIP: "127.93.1.1",
      canExec: false
    })
    assert.strictEqual(withHost._tag === "HttpGet" ? withHost.url : "", "https://[::1]:9000/")
  })

  it("resolves tcpSocket, and an unknown port name is a probe error", () => {
    assert.deepStrictEqual(
      probeAction({ tcpSocket: { port: "metrics" } }, container, { podIP: "127.9.1.2", canExec: false }),
      {
        _tag: "TcpSocket",
        host: "127.9.1.2",
        port: 8080
      }
    )
    assert.deepStrictEqual(
      probeAction({ tcpSocket: { port: "nope" } }, container, { podIP: "127.9.1.2", canExec: false }),
      {
        _tag: "Invalid",
        message: 'unknown port "nope"'
      }
    )
  })

  it("runs exec only where the runtime can exec; grpc is unsupported", () => {
    const exec = { exec: { command: ["pg_isready"] } }
    assert.strictEqual(probeAction(exec, container, { podIP: "127.9.1.2", canExec: false })._tag, "Unsupported")
    assert.deepStrictEqual(probeAction(exec, container, { podIP: "127.9.1.2", canExec: true }), {
      _tag: "Exec",
      command: ["pg_isready"]
    })
    assert.strictEqual(
      probeAction({ grpc: { port: 9090 } }, container, { podIP: "127.9.1.2", canExec: true })._tag,
      "Unsupported"
    )
  })

  it.live("checks HTTP status codes and TCP connections on a real socket", () =>
    Effect.gen(function* () {
      const server = yield* Effect.acquireRelease(
        Effect.callback<ReturnType<typeof createServer>>((resume) => {
          const created = createServer((request, response) => {
            if (request.url === "/slow") return
            response.statusCode = request.url === "/ok" ? 200 : 500
            response.end(request.headers["x-probe"] ?? "")
          })
          created.listen(0, "127.0.0.1", () => resume(Effect.succeed(created)))
        }),
        (created) =>
          Effect.sync(() => {
            created.closeAllConnections()
            created.close()
          })
      )
      const { port } = server.address() as AddressInfo
      const check = (path: string) =>
        checkProbe(
          { _tag: "HttpGet", url: `http://127.0.0.1:${port}${path}`, scheme: "HTTP", headers: { "X-Probe": "hi" } },
          Duration.millis(500)
        )
      assert.deepStrictEqual(yield* check("/ok"), { result: "Success", output: "hi" })
      assert.deepStrictEqual(yield* check("/bad"), {
        result: "Failure",
        output: "HTTP probe failed with statuscode: 500: hi"
      })
      const slow = yield* check("/slow")
      assert.strictEqual(slow.result, "Failure")
      assert.include(slow.output, "timeout")
      assert.strictEqual(
        (yield* checkProbe({ _tag: "TcpSocket", host: "127.0.0.1", port }, Duration.seconds(1))).result,
        "Success"
      )
      server.close()
      const refused = yield* checkProbe({ _tag: "TcpSocket", host: "127.0.0.1", port }, Duration.seconds(1))
      assert.strictEqual(refused.result, "Failure")
      assert.include(refused.output, "ECONNREFUSED")
    })
  )
})

/** A check that answers the scripted results in order (then the last one), and records when it ran. */
const scripted = (results: ReadonlyArray<ProbeResult>) =>
  Effect.gen(function* () {
    const calls = yield* Ref.make<ReadonlyArray<number>>([])
    const check: Effect.Effect<ProbeOutcome> = Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      const done = yield* Ref.getAndUpdate(calls, (times) => [...times, now])
      const result = results[Math.min(done.length, results.length - 1)] ?? "Unknown"
      return { result, output: result === "Failure" ? "HTTP probe failed with statuscode: 500" : "" }
    })
    return { calls, check }
  })

const probe = (check: Effect.Effect<ProbeOutcome>, fields: Parameters<typeof probeTiming>[0]): ScheduledProbe => ({
  timing: probeTiming(fields),
  check
})

describe("superviseProbes on the TestClock", () => {
  it.effect("readiness: initial delay, period, thresholds; the container is reported ready and unready", () =>
    Effect.gen(function* () {
      const readiness = yield* scripted(["Failure", "Success", "Success", "Failure", "Failure", "Success"])
      const events = yield* Ref.make<ReadonlyArray<string>>([])
      const record = (event: string) =>
        Clock.currentTimeMillis.pipe(Effect.flatMap((now) => Ref.update(events, (all) => [...all, `${now}:${event}`])))
      const fiber = yield* superviseProbes(
        {
          readiness: probe(readiness.check, {
            httpGet: { port: 80 },
            initialDelaySeconds: 3,
            periodSeconds: 2,
            successThreshold: 2,
            failureThreshold: 2
          })
        },
        { started: record("started"), ready: (ready) => record(ready ? "ready" : "unready") }
      ).pipe(Effect.forkChild({ startImmediately: true }))
      yield* TestClock.adjust("2 seconds")
      assert.deepStrictEqual(yield* Ref.get(readiness.calls), [], "nothing before the initial delay")
      yield* TestClock.adjust("12 seconds")
      // Checks at 3, 5, 7, 9, 11, 13 s: ready after the 2nd success (7 s), unready after the 2nd failure (11 s).
      assert.deepStrictEqual(yield* Ref.get(readiness.calls), [3000, 5000, 7000, 9000, 11000, 13000])
      assert.deepStrictEqual(yield* Ref.get(events), ["7000:ready", "11000:unready"])
      yield* Fiber.interrupt(fiber)
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual((yield* Ref.get(readiness.calls)).length, 6, "an interrupted supervisor probes no more")
    })
  )

  it.effect("liveness: failureThreshold failures in a row ask for a kill", () =>
    Effect.gen(function* () {
      const liveness = yield* scripted(["Success", "Failure", "Failure", "Success", "Failure"])
      const fiber = yield* superviseProbes(
        {
          liveness: {
            ...probe(liveness.check, { tcpSocket: { port: 80 }, periodSeconds: 1, failureThreshold: 2 }),
            terminationGracePeriodSeconds: 7
          }
        },
        { started: Effect.void, ready: () => Effect.void }
      ).pipe(Effect.forkChild({ startImmediately: true }))
      yield* TestClock.adjust("10 seconds")
      const kill = yield* Fiber.join(fiber)
      assert.deepStrictEqual(kill, {
        kind: "liveness",
        output: "HTTP probe failed with statuscode: 500",
        terminationGracePeriodSeconds: 7
      })
      assert.deepStrictEqual(yield* Ref.get(liveness.calls), [0, 1000, 2000])
    })
  )

  it.effect("startup gates readiness and liveness until it succeeds", () =>
    Effect.gen(function* () {
      const startup = yield* scripted(["Failure", "Failure", "Success"])
      const readiness = yield* scripted(["Success"])
      const liveness = yield* scripted(["Success"])
      const events = yield* Ref.make<ReadonlyArray<string>>([])
      yield* superviseProbes(
        {
          startup: probe(startup.check, { exec: { command: ["true"] }, periodSeconds: 5, failureThreshold: 3 }),
          readiness: probe(readiness.check, { tcpSocket: { port: 80 }, initialDelaySeconds: 2, periodSeconds: 1 }),
          liveness: probe(liveness.check, { tcpSocket: { port: 80 }, periodSeconds: 1 })
        },
        {
          started: Ref.update(events, (all) => [...all, "started"]),
          ready: (ready) => Ref.update(events, (all) => [...all, `ready=${ready}`])
        }
      ).pipe(Effect.forkChild({ startImmediately: true }))
      yield* TestClock.adjust("9 seconds")
      assert.deepStrictEqual(yield* Ref.get(readiness.calls), [])
      assert.deepStrictEqual(yield* Ref.get(liveness.calls), [])
      assert.deepStrictEqual(yield* Ref.get(events), [])
      yield* TestClock.adjust("1 second")
      // Startup succeeded at 10 s; the readiness delay (2 s since the start) has passed long ago.
      assert.deepStrictEqual(yield* Ref.get(startup.calls), [0, 5000, 10000])
      assert.deepStrictEqual(yield* Ref.get(events), ["started", "ready=true"])
      assert.deepStrictEqual(yield* Ref.get(readiness.calls), [10000])
      assert.deepStrictEqual(yield* Ref.get(liveness.calls), [10000])
    })
  )

  it.effect("a failing startup probe asks for a kill and never starts the others", () =>
    Effect.gen(function* () {
      const startup = yield* scripted(["Failure"])
      const readiness = yield* scripted(["Success"])
      const fiber = yield* superviseProbes(
        {
          startup: probe(startup.check, { tcpSocket: { port: 80 }, periodSeconds: 1, failureThreshold: 3 }),
          readiness: probe(readiness.check, { tcpSocket: { port: 80 } })
        },
        { started: Effect.void, ready: () => Effect.void }
      ).pipe(Effect.forkChild({ startImmediately: true }))
      yield* TestClock.adjust("5 seconds")
      assert.strictEqual((yield* Fiber.join(fiber)).kind, "startup")
      assert.deepStrictEqual(yield* Ref.get(startup.calls), [0, 1000, 2000])
      assert.deepStrictEqual(yield* Ref.get(readiness.calls), [])
    })
  )
})
