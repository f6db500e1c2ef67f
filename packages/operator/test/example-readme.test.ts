import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"

// The README shows the example's code. A block whose first line is a comment naming
// a file (`// examples/...`) must appear in that file verbatim, so the README cannot
// drift from the code that the integration tests run.

const root = fileURLToPath(new URL("..", import.meta.url))
const readme = readFileSync(`${root}README.md`, "utf8")

const blocks = [...readme.matchAll(/```ts\n\/\/ (examples\/\S+\.ts)\n([\s\S]*?)```/gu)].map((match) => ({
  file: match[1] ?? "",
  code: match[2] ?? ""
}))

describe("packages/operator/README.md", () => {
  it("quotes the example's code", () => {
    assert.isAtLeast(blocks.length, 4)
    for (const block of blocks) {
      const source = readFileSync(`${root}${block.file}`, "utf8")
      assert.include(source, block.code.trimEnd(), `a README block differs from ${block.file}`)
    }
  })
})
