import { describe, expect, it } from "@effect/vitest"
import { loadOptions } from "./load.ts"
import {
  componentOf,
  cpuByComponent,
  everySlots,
  lagReport,
  type ObservedJob,
  parseSeries,
  percentile,
  ratePerSecond,
  slotCoverage,
  statTicks,
  sumByLabel,
  summarize,
  sumSeries,
  vmRssBytes
} from "./loadStats.ts"

// The pure half of the load profile (`npm run chaos -- --load`); the profile itself needs a stack and minutes.

describe("percentile (nearest rank)", () => {
  it.each([
    { name: "no values", values: [], p: 0.5, expected: 0 },
    { name: "one value", values: [7], p: 0.99, expected: 7 },
    { name: "median of an odd count", values: [5, 1, 4, 2, 3], p: 0.5, expected: 3 },
    { name: "median of an even count: the lower middle", values: [4, 1, 3, 2], p: 0.5, expected: 2 },
    {
      name: "p99 of 100 values: the 99th",
      values: Array.from({ length: 100 }, (_, i) => i + 1),
      p: 0.99,
      expected: 99
    },
    { name: "p99 of 10 values: the largest", values: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], p: 0.99, expected: 10 },
    { name: "p100: the maximum", values: [3, 9, 1], p: 1, expected: 9 }
  ])("$name", ({ values, p, expected }) => {
    expect(percentile(values, p)).toBe(expected)
  })

  it("does not reorder its input", () => {
    const values = [3, 1, 2]
    summarize(values)
    expect(values).toEqual([3, 1, 2])
  })
})

const job = (overrides: Partial<ObservedJob>): ObservedJob => ({
  resource: "uid-1",
  slot: 60_000,
  created: 61_000,
  received: 61_400,
  started: 62_000,
  completed: 65_000,
  ...overrides
})

describe("lagReport", () => {
  it.each([
    {
      name: "one Job: each figure from its own timestamps",
      jobs: [job({})],
      expected: { creation: 1000, watch: 1400, pickup: 1000, duration: 4000, watched: 1, finished: 1 }
    },
    {
      name: "creation truncated below its slot's second: 0, not negative",
      jobs: [job({ slot: 61_200, created: 61_000, received: 61_300 })],
      expected: { creation: 0, watch: 100, pickup: 1000, duration: 4000, watched: 1, finished: 1 }
    },
    {
      name: "a Job never received on the watch, not started, not complete: only its creation lag counts",
      jobs: [job({ received: undefined, started: undefined, completed: undefined }), job({ created: 63_000 })],
      expected: { creation: 3000, watch: 1400, pickup: 0, duration: 2000, watched: 1, finished: 1 }
    }
  ])("$name", ({ jobs, expected }) => {
    const report = lagReport(jobs)
    expect(report.byCreationTimestamp.max).toBe(expected.creation)
    expect(report.byWatch.max).toBe(expected.watch)
    expect(report.byWatch.count).toBe(expected.watched)
    expect(report.jobControllerPickup.max).toBe(expected.pickup)
    expect(report.jobDuration.max).toBe(expected.duration)
    expect(report.jobDuration.count).toBe(expected.finished)
  })
})

describe("slots", () => {
  it.each([
    { name: "cut-off before the anchor: none", anchor: 10_000, until: 9_999, expected: [] },
    { name: "cut-off at the anchor: the anchor itself", anchor: 10_000, until: 10_000, expected: [10_000] },
    { name: "a slot exactly at the cut-off is due", anchor: 0, until: 120_000, expected: [0, 60_000, 120_000] },
    { name: "partial period after the last slot", anchor: 0, until: 179_999, expected: [0, 60_000, 120_000] }
  ])("everySlots: $name", ({ anchor, until, expected }) => {
    expect(everySlots(anchor, 60_000, until)).toEqual(expected)
  })

  it.each([
    {
      name: "every due slot ran",
      jobs: [
        { resource: "a", slot: 0 },
        { resource: "a", slot: 60_000 },
        { resource: "b", slot: 30_000 }
      ],
      expected: { due: 3, withJob: 3, withoutJob: 0 }
    },
    {
      name: "a skipped slot, a Job after the cut-off and a duplicate do not count as due slots with a Job",
      jobs: [
        { resource: "a", slot: 0 },
        { resource: "a", slot: 0 },
        { resource: "a", slot: 120_000 },
        { resource: "b", slot: 30_000 }
      ],
      expected: { due: 3, withJob: 2, withoutJob: 1 }
    },
    {
      name: "a Job of another resource's slot does not cover it",
      jobs: [{ resource: "b", slot: 0 }],
      expected: { due: 3, withJob: 0, withoutJob: 3 }
    }
  ])("slotCoverage: $name", ({ jobs, expected }) => {
    const resources = [
      { uid: "a", anchor: 0 },
      { uid: "b", anchor: 30_000 }
    ]
    expect(slotCoverage({ resources, periodMillis: 60_000, until: 80_000, jobs })).toEqual(expected)
  })
})

describe("Prometheus text", () => {
  const text = [
    "# HELP rest_client_requests_total Number of HTTP requests",
    "# TYPE rest_client_requests_total counter",
    'rest_client_requests_total{code="200",method="GET",host="127.0.0.1:6443"} 120',
    'rest_client_requests_total{code="201",method="POST",host="127.0.0.1:6443"} 30',
    'rest_client_requests_total{code="409",method="POST",host="127.0.0.1:6443"} 2',
    'controller_runtime_reconcile_total{controller="backupdatabaseschema",result="success"} 900',
    'controller_runtime_reconcile_total{controller="jobcleanup",result="success"} 50',
    'weird{msg="a \\"quoted\\" value"} 1',
    "process_up 1",
    "not a sample"
  ].join("\n")
  const series = parseSeries(text)

  it.each([
    { name: "a counter over all its labels", metric: "rest_client_requests_total", where: {}, expected: 152 },
    { name: "filtered by a label", metric: "rest_client_requests_total", where: { method: "POST" }, expected: 32 },
    {
      name: "one controller's reconciles",
      metric: "controller_runtime_reconcile_total",
      where: { controller: "backupdatabaseschema" },
      expected: 900
    },
    { name: "a sample without labels", metric: "process_up", where: {}, expected: 1 },
    { name: "an escaped quote in a label value", metric: "weird", where: { msg: 'a \\"quoted\\" value' }, expected: 1 },
    { name: "an absent metric", metric: "absent_total", where: {}, expected: 0 }
  ])("sumSeries: $name", ({ metric, where, expected }) => {
    expect(sumSeries(series, metric, where)).toBe(expected)
  })

  it("sumByLabel groups a counter by one label", () => {
    expect(sumByLabel(series, "rest_client_requests_total", "method")).toEqual({ GET: 120, POST: 32 })
  })

  it.each([
    { before: 100, after: 400, seconds: 60, expected: 5 },
    { before: 100, after: 100, seconds: 60, expected: 0 },
    { before: 0, after: 10, seconds: 0, expected: 0 }
  ])("ratePerSecond($before, $after, $seconds) = $expected", ({ before, after, seconds, expected }) => {
    expect(ratePerSecond(before, after, seconds)).toBe(expected)
  })
})

describe("/proc", () => {
  it.each([
    {
      name: "VmRSS in kB (KiB)",
      status: "Name:\tnode\nVmPeak:\t 999 kB\nVmRSS:\t  123456 kB\n",
      expected: 126_418_944
    },
    { name: "a zombie has none", status: "Name:\tnode\nState:\tZ (zombie)\n", expected: undefined }
  ])("vmRssBytes: $name", ({ status, expected }) => {
    expect(vmRssBytes(status)).toBe(expected)
  })

  it.each([
    {
      name: "plain command name",
      stat: "42 (etcd) S 1 42 42 0 -1 4194560 100 0 0 0 150 50 7 3 20 0 12 0",
      expected: { pid: 42, ppid: 1, own: 200, children: 10 }
    },
    {
      name: "command name with spaces and parentheses",
      stat: "7 (node (a) b) R 3 7 7 0 -1 0 0 0 0 0 11 22 33 44 20 0",
      expected: { pid: 7, ppid: 3, own: 33, children: 77 }
    },
    { name: "truncated", stat: "7 (node) R 3", expected: undefined }
  ])("statTicks: $name", ({ stat, expected }) => {
    expect(statTicks(stat)).toEqual(expected)
  })

  it.each([
    { cmdline: ["/usr/bin/node", "/w/apps/operator/bin/db-backup-operator.js", "--x"], expected: "operator" },
    {
      cmdline: ["/usr/bin/setpriv", "--pdeathsig=SIGKILL", "--", "/c/kube-apiserver", "--etcd-servers=x"],
      expected: "kube-apiserver"
    },
    { cmdline: ["/c/kube-controller-manager", "--kubeconfig=/d/kubeconfig"], expected: "kube-controller-manager" },
    { cmdline: ["/c/etcd", "--data-dir=/d/etcd"], expected: "etcd" },
    { cmdline: ["postgres: team03 api 127.0.0.1(5000) idle"], expected: "postgres" },
    { cmdline: ["/go/bin/fake-gcs-server", "-scheme", "http"], expected: "gcs emulator" },
    { cmdline: ["true", "backup"], expected: "other" }
  ])("componentOf $cmdline.0 = $expected", ({ cmdline, expected }) => {
    expect(componentOf(cmdline)).toBe(expected)
  })

  it("cpuByComponent counts children under their topmost ancestor below the harness", () => {
    const harness = 1
    const before = [
      { pid: 1, ppid: 0, own: 1000, children: 0, cmdline: ["node", "main.ts"] },
      { pid: 10, ppid: 1, own: 100, children: 0, cmdline: ["/pg/bin/postgres", "-D", "/d"] },
      { pid: 20, ppid: 1, own: 50, children: 0, cmdline: ["/c/etcd"] }
    ]
    const after = [
      { pid: 1, ppid: 0, own: 5000, children: 900, cmdline: ["node", "main.ts"] },
      // The postmaster reaped backends worth 40 ticks; one backend still runs.
      { pid: 10, ppid: 1, own: 130, children: 40, cmdline: ["/pg/bin/postgres", "-D", "/d"] },
      { pid: 11, ppid: 10, own: 30, children: 0, cmdline: ["postgres: team03 api"] },
      { pid: 20, ppid: 1, own: 250, children: 0, cmdline: ["/c/etcd"] },
      // Started after the first snapshot: all its ticks count.
      { pid: 30, ppid: 1, own: 20, children: 0, cmdline: ["node", "/w/apps/operator/bin/db-backup-operator.js"] }
    ]
    expect(cpuByComponent(before, after, harness, 100)).toEqual({ postgres: 1, etcd: 2, operator: 0.2 })
  })
})

describe("loadOptions (the --load flags)", () => {
  it.each([
    {
      name: "defaults: 1000 resources, 15 minutes, the stand-in, a one-minute ramp",
      flags: {},
      expected: { resources: 1000, minutes: 15, runner: "stand-in", rampSeconds: 60, concurrency: 1000 }
    },
    {
      name: "small scale runs the real runner",
      flags: { resources: "10", minutes: "3" },
      expected: { resources: 10, minutes: 3, runner: "real", rampSeconds: 60, concurrency: 10 }
    },
    {
      name: "everything given",
      flags: {
        resources: "50",
        minutes: "2",
        runner: "stand-in",
        ramp: "0",
        "kcm-qps": "200",
        concurrency: "5",
        workers: "16",
        "api-qps": "300"
      },
      expected: {
        resources: 50,
        minutes: 2,
        runner: "stand-in",
        rampSeconds: 0,
        concurrency: 5,
        controllerManagerQps: 200,
        workers: 16,
        apiQps: 300
      }
    }
  ])("$name", ({ flags, expected }) => {
    expect(loadOptions(flags)).toMatchObject(expected)
  })

  it.each([
    { flags: { resources: "0" }, message: "--resources" },
    { flags: { resources: "1.5" }, message: "--resources" },
    { flags: { minutes: "soon" }, message: "--minutes" },
    { flags: { runner: "podman" }, message: "--runner" },
    { flags: { ramp: "-1" }, message: "--ramp" },
    { flags: { "kcm-qps": "0" }, message: "--kcm-qps" },
    { flags: { concurrency: "x" }, message: "--concurrency" },
    { flags: { workers: "0" }, message: "--workers" },
    { flags: { "api-qps": "2.5" }, message: "--api-qps" }
  ])("refuses $flags", ({ flags, message }) => {
    expect(loadOptions(flags)).toEqual(expect.stringContaining(message))
  })
})
