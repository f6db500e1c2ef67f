import { describe, expect, it } from "vitest"

describe("toolchain", () => {
  it("runs on the Node 24 pinned as the root devDependency", () => {
    expect(process.versions.node.startsWith("24.")).toBe(true)
  })
})
