import { describe, expect, it } from "@effect/vitest"
import { admit, serverOf } from "../src/admission.ts"

const limits = { total: 3, perServer: 2 }

describe("admit", () => {
  it.each([
    { name: "nothing running", running: [], expected: "Admitted" },
    { name: "one run of its server", running: ["pg:5432"], expected: "Admitted" },
    { name: "its server at the limit", running: ["pg:5432", "pg:5432"], expected: "ServerBusy" },
    { name: "other servers do not count per server", running: ["other:5432", "other:5432"], expected: "Admitted" },
    { name: "the operator at its limit", running: ["a:1", "b:1", "c:1"], expected: "OperatorBusy" },
    { name: "the same host on another port is another server", running: ["pg:5433", "pg:5433"], expected: "Admitted" }
  ])("$name: $expected", ({ running, expected }) => {
    const admission = admit("pg:5432", running, limits)
    expect(admission._tag === "Admitted" ? "Admitted" : admission.reason).toBe(expected)
  })

  it("says how many run and which flag limits them", () => {
    expect(admit("pg:5432", ["pg:5432"], { total: 10, perServer: 1 })).toEqual({
      _tag: "Waiting",
      reason: "ServerBusy",
      message:
        "1 backup of pg:5432 is running (--max-concurrent-backups-per-server=1): this run starts when one finishes"
    })
  })

  it("counts a server by host (case-insensitive) and port", () => {
    expect(serverOf({ dbHost: "PG.db.svc", dbPort: 5432 })).toBe(serverOf({ dbHost: "pg.db.svc", dbPort: 5432 }))
  })
})
