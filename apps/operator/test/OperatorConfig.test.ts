import { describe, expect, it } from "@effect/vitest"
import { parseAddress } from "../src/OperatorConfig.ts"

// The chart passes `--metrics-bind-address=$(POD_IP):8080`: whatever address family the
// cluster gives the Pod, the operator must start listening rather than exit on a bad flag.
describe("parseAddress", () => {
  it.each([
    [":8080", { port: 8080 }],
    ["127.0.0.1:8080", { host: "127.0.0.1", port: 8080 }],
    ["127.1.2.3:8081", { host: "127.1.2.3", port: 8081 }],
    ["[::1]:8081", { host: "::1", port: 8081 }],
    ["[fd00::1]:8080", { host: "fd00::1", port: 8080 }],
    ["fd00::1:8080", { host: "fd00::1", port: 8080 }],
    ["localhost:9000", { host: "localhost", port: 9000 }],
    ["0", false],
    ["false", false],
    ["", false]
  ] as const)("%j", (text, expected) => {
    expect(parseAddress(text)).toStrictEqual(expected)
  })

  it.each(["8080", ":70000", "host:", "a b:80", "[fd00::1:80", "fd00::zz:80", "host/x:80"])("refuses %j", (text) => {
    expect(parseAddress(text)).toBeUndefined()
  })
})
