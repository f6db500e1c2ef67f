import { describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import {
  filterStatements,
  keeps,
  maxStatementHead,
  StatementFilter,
  type StatementRules,
  unknownSettingsOf
} from "../src/restore/statements.ts"

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const all: StatementRules = { noOwner: true, noPrivileges: true, createdSchema: "shop" }
const none: StatementRules = { noOwner: false, noPrivileges: false }

/** The filter's output for `text` fed in pieces of `size` bytes. */
const filtered = (rules: StatementRules, text: string, size = text.length) => {
  const filter = new StatementFilter(rules)
  const bytes = encoder.encode(text)
  const out: Array<Uint8Array> = []
  for (let at = 0; at < bytes.length; at += Math.max(size, 1)) out.push(...filter.push(bytes.subarray(at, at + size)))
  out.push(...filter.end())
  return decoder.decode(Buffer.concat(out))
}

// The shape of a plain pg_dump of one schema (pg_dump 15.18 with \restrict), with what can hide a `;`.
const dump = `--
-- PostgreSQL database dump
--

\\restrict AbC123xyz

SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);

--
-- Name: shop; Type: SCHEMA; Schema: -; Owner: app
--

CREATE SCHEMA shop;


ALTER SCHEMA shop OWNER TO app;

CREATE FUNCTION shop.f() RETURNS text
    LANGUAGE plpgsql
    AS $_$
BEGIN
  -- not a comment to the splitter; and a ; inside
  ALTER TABLE shop.orders OWNER TO nobody;
  RETURN $x$ GRANT ; $x$ || E'it''s \\' ; ' || 'a;b' || "weird;ident";
END;
$_$;


ALTER FUNCTION shop.f() OWNER TO app;

CREATE TABLE shop.orders (
    id integer NOT NULL, /* a ; in /* a nested */ comment */ note text DEFAULT '--;'::text
);


ALTER TABLE shop.orders OWNER TO "App Owner";

COPY shop.orders (id, note) FROM stdin;
1\tALTER TABLE x OWNER TO y;
2\tGRANT ALL ON x TO y;
3\t\\\\.
\\.


GRANT SELECT ON TABLE shop.orders TO reporting;
REVOKE ALL ON SCHEMA shop FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE app IN SCHEMA shop GRANT SELECT ON TABLES TO reporting;

COPY shop.empty (id) FROM stdin;
\\.


--
-- PostgreSQL database dump complete
--

\\unrestrict AbC123xyz

`

const kept = (rules: StatementRules) => filtered(rules, dump)

describe("keeps", () => {
  it.each([
    ["ALTER TABLE shop.orders OWNER TO app;", { noOwner: true }, false],
    ["ALTER TABLE shop.orders OWNER TO app;", { noOwner: false }, true],
    ['\n-- Name: x\nALTER FUNCTION shop."f;"(integer) OWNER TO "Some ""Role""";', { noOwner: true }, false],
    ["ALTER TABLE ONLY shop.orders ADD CONSTRAINT orders_pkey PRIMARY KEY (id);", { noOwner: true }, true],
    ['ALTER TABLE shop.t RENAME TO "x OWNER TO y";', { noOwner: true }, true],
    ["GRANT SELECT ON TABLE shop.orders TO reporting;", { noPrivileges: true }, false],
    ["REVOKE ALL ON SCHEMA shop FROM PUBLIC;", { noPrivileges: true }, false],
    ["ALTER DEFAULT PRIVILEGES IN SCHEMA shop GRANT SELECT ON TABLES TO r;", { noPrivileges: true }, false],
    ["GRANT SELECT ON TABLE shop.orders TO reporting;", { noOwner: true }, true],
    ["CREATE SCHEMA shop;", { createdSchema: "shop" }, false],
    ['CREATE SCHEMA "Shop";', { createdSchema: "Shop" }, false],
    ["CREATE SCHEMA other;", { createdSchema: "shop" }, true],
    ["CREATE SCHEMA shop AUTHORIZATION app;", { createdSchema: "shop" }, true],
    ["SET transaction_timeout = 0;", { unknownSettings: ["transaction_timeout"] }, false],
    ["\nSET Transaction_Timeout TO 0;", { unknownSettings: ["transaction_timeout"] }, false],
    ["SET transaction_timeout = 0;", { unknownSettings: [] }, true],
    ["SET statement_timeout = 0;", { unknownSettings: ["transaction_timeout"] }, true],
    ["SELECT 'SET transaction_timeout = 0;';", { unknownSettings: ["transaction_timeout"] }, true]
  ] as const)("%j with %j: %s", (statement, rules, expected) => {
    expect(keeps({ noOwner: false, noPrivileges: false, ...rules }, statement)).toBe(expected)
  })
})

describe("unknownSettingsOf", () => {
  it.each([
    [150018, ["transaction_timeout"]],
    [160004, ["transaction_timeout"]],
    [170000, []],
    [180001, []]
  ] as const)("server %i lacks %j", (version, expected) => {
    expect(unknownSettingsOf(version)).toEqual(expected)
  })
})

describe("StatementFilter", () => {
  it("passes a dump through unchanged when no rule drops anything", () => {
    expect(kept(none)).toBe(dump)
  })

  it("drops ownership, privileges and the schema's creation, and nothing inside strings, comments or COPY data", () => {
    const out = kept(all)
    expect(out).not.toContain("CREATE SCHEMA shop;")
    expect(out).not.toContain("ALTER SCHEMA shop OWNER TO app;")
    expect(out).not.toContain("ALTER FUNCTION shop.f() OWNER TO app;")
    expect(out).not.toContain('OWNER TO "App Owner"')
    expect(out).not.toContain("GRANT SELECT ON TABLE shop.orders TO reporting;")
    expect(out).not.toContain("REVOKE ALL")
    expect(out).not.toContain("ALTER DEFAULT PRIVILEGES")
    // Inside the function body and the COPY data: kept, byte for byte.
    expect(out).toContain(dump.slice(dump.indexOf("CREATE FUNCTION"), dump.indexOf("$_$;") + 4))
    expect(out).toContain(dump.slice(dump.indexOf("COPY shop.orders"), dump.indexOf("\\.\n") + 3))
    expect(out).toContain("CREATE TABLE shop.orders (")
    expect(out).toContain("\\restrict AbC123xyz\n")
    expect(out).toContain("\\unrestrict AbC123xyz\n")
    expect(out).toContain("COPY shop.empty (id) FROM stdin;\n\\.\n")
  })

  it("gives the same output however the dump is cut into chunks", () => {
    const whole = kept(all)
    for (let size = 1; size <= 64; size++) expect(filtered(all, dump, size), `chunks of ${size}`).toBe(whole)
    for (let size = 1; size <= 16; size++) expect(filtered(none, dump, size), `chunks of ${size}`).toBe(dump)
  })

  it("finds the end of COPY data split anywhere around its `\\.` line", () => {
    const text = "COPY t (a) FROM stdin;\nx\n\\.\nALTER TABLE t OWNER TO r;\nGRANT ALL ON t TO r;\n"
    for (let size = 1; size <= text.length; size++) {
      expect(filtered(all, text, size), `chunks of ${size}`).toBe("COPY t (a) FROM stdin;\nx\n\\.\n\n")
    }
  })

  it("keeps a statement too long to decide on, streaming it through, and goes on splitting after it", () => {
    const body = "x".repeat(maxStatementHead + 10)
    const text = `GRANT ALL ON t TO r; SELECT '${body}';\nGRANT ALL ON t TO r;\n`
    const out = filtered(all, text, 64 * 1024)
    expect(out === ` SELECT '${body}';\n`, `${out.length} bytes: ${out.slice(0, 20)}…${out.slice(-20)}`).toBe(true)
  })

  it("passes an unfinished last statement on for psql to judge", () => {
    expect(filtered(all, "GRANT ALL ON t TO r;\nSELECT 1")).toBe("\nSELECT 1")
  })

  it.effect("filters a stream", () =>
    Effect.gen(function* () {
      const bytes = encoder.encode(dump)
      const chunks = Array.from({ length: Math.ceil(bytes.length / 100) }, (_, i) =>
        bytes.subarray(i * 100, (i + 1) * 100)
      )
      const out = yield* Stream.fromIterable(chunks).pipe(filterStatements(all), Stream.runCollect)
      expect(decoder.decode(Buffer.concat([...out]))).toBe(kept(all))
    })
  )
})
