import {
  binCacheDir,
  cacheRoot,
  entryDir,
  envFileText,
  freePorts,
  parseImageMapFlags,
  quoteIdent,
  quoteLiteral
} from "@db-backup-operator/testing"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"

describe("SQL quoting", () => {
  it("double-quotes identifiers and doubles inner quotes", () => {
    assert.strictEqual(quoteIdent("orders"), '"orders"')
    assert.strictEqual(quoteIdent('a "b"; DROP TABLE x'), '"a ""b""; DROP TABLE x"')
    assert.throws(() => quoteIdent("a\0b"))
  })
  it("single-quotes literals and doubles inner quotes, leaving backslashes alone", () => {
    assert.strictEqual(quoteLiteral("it's"), "'it''s'")
    assert.strictEqual(quoteLiteral("a\\b"), "'a\\b'")
  })
})

describe("env file", () => {
  it("writes safe values bare and quotes the rest", () => {
    assert.strictEqual(
      envFileText({ PGPORT: "5432", GCS_ENDPOINT: "http://127.0.0.1:1", ODD: "a b'c" }),
      "PGPORT=5432\nGCS_ENDPOINT=http://127.0.0.1:1\nODD='a b'\"'\"'c'\n"
    )
  })
  it("parses --image-map IMAGE=COMMAND at the first =", () => {
    assert.deepStrictEqual(parseImageMapFlags(["runner:dev=node main.ts --x=1"]), {
      _tag: "Ok",
      map: { "runner:dev": "node main.ts --x=1" }
    })
    assert.deepStrictEqual(parseImageMapFlags(["=x"]), { _tag: "Invalid", entry: "=x" })
    assert.deepStrictEqual(parseImageMapFlags(["image"]), { _tag: "Invalid", entry: "image" })
  })
})

describe("binary cache location", () => {
  it("honours DB_BACKUP_OPERATOR_CACHE, then XDG_CACHE_HOME, then ~/.cache", () => {
    assert.strictEqual(cacheRoot({ DB_BACKUP_OPERATOR_CACHE: "/c" }), "/c")
    assert.strictEqual(cacheRoot({ XDG_CACHE_HOME: "/x" }), "/x/db-backup-operator")
    assert.match(cacheRoot({}), /\/\.cache\/db-backup-operator$/u)
    assert.strictEqual(binCacheDir({ DB_BACKUP_OPERATOR_CACHE: "/c" }), "/c/bin")
    assert.strictEqual(
      entryDir("etcd", "v3.6.16", "go1.26.8", { DB_BACKUP_OPERATOR_CACHE: "/c" }),
      "/c/bin/etcd-v3.6.16-go1.26.8"
    )
  })
})

describe("freePorts", () => {
  it.effect("returns distinct loopback ports", () =>
    Effect.gen(function* () {
      const ports = yield* freePorts(5)
      assert.strictEqual(new Set(ports).size, 5)
      for (const port of ports) assert.isTrue(port > 0 && port < 65536)
    })
  )
})
