import { createHash } from "node:crypto"
import { GcsObjectStore } from "@db-backup-operator/storage"
import { GcsEmulator, Postgres } from "@db-backup-operator/testing"
import { Effect } from "effect"
import { appRoleOnce } from "./runRunner.ts"

// The schema the runner's integration tests back up and restore: awkward data in every
// column type, a view, sequences, and a schema beside it that must not be dumped.

/** The password of role `app`, which owns each test database; no run may print it. */
export const appPassword = "app-Pa55word-never-logged"
export const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")
export const decoder = new TextDecoder()

/** A database `name` owned by role `app`, with schema `shop` full of awkward data, and a schema `other` that must not be dumped. */
export const createShop = (name: string) =>
  Effect.gen(function* () {
    const pg = yield* Postgres
    yield* pg.createDatabase(name, { owner: "app" })
    yield* pg.psql(
      `
      CREATE SCHEMA shop;
      CREATE SCHEMA other;
      CREATE TABLE shop.customers (
        id bigserial PRIMARY KEY, name text NOT NULL, email text UNIQUE, note text,
        created timestamptz NOT NULL DEFAULT '2025-01-01T00:00:00Z', data jsonb, photo bytea,
        score numeric(12,3), tags text[]
      );
      CREATE TABLE shop.orders (
        id serial PRIMARY KEY, customer_id bigint NOT NULL REFERENCES shop.customers(id),
        total numeric(12,2) NOT NULL, placed date NOT NULL
      );
      INSERT INTO shop.customers (name, email, note, created, data, photo, score, tags)
      SELECT
        CASE g % 4 WHEN 0 THEN 'Zoë 東京 🚀 ' || g WHEN 1 THEN E'tab\\there' || g WHEN 2 THEN 'quote''s "and" \\\\ ' || g ELSE 'plain ' || g END,
        CASE WHEN g % 7 = 0 THEN NULL ELSE 'user' || g || '@example.com' END,
        CASE WHEN g % 5 = 0 THEN E'line1\\nline2\\r\\n\\\\.' ELSE NULL END,
        '2025-01-01T00:00:00Z'::timestamptz + g * interval '1 minute',
        jsonb_build_object('n', g, 'nested', jsonb_build_array(g, 'x', NULL)),
        decode(md5(g::text), 'hex'),
        g * 1.125,
        ARRAY['a' || g, NULL, 'c,d']
      FROM generate_series(1, 3000) AS g;
      INSERT INTO shop.orders (customer_id, total, placed)
      SELECT 1 + (g % 3000), g * 0.01, DATE '2025-01-01' + (g % 365) FROM generate_series(1, 6000) AS g;
      CREATE VIEW shop.big_spenders AS SELECT customer_id, sum(total) AS spent FROM shop.orders GROUP BY customer_id;
      CREATE TABLE other.secrets (id int, secret text);
      INSERT INTO other.secrets VALUES (1, 'must-not-be-dumped');
      `,
      { database: name, user: "app", password: appPassword }
    )
  })

/** What a restore must reproduce exactly: every row of every table, and the sequences. */
export const fingerprint = (database: string) =>
  Effect.gen(function* () {
    const pg = yield* Postgres
    return yield* pg.psql(
      `
      SELECT (SELECT count(*) FROM shop.customers) || ' ' ||
             (SELECT md5(string_agg(c::text, E'\\n' ORDER BY id)) FROM shop.customers c) || ' ' ||
             (SELECT count(*) FROM shop.orders) || ' ' ||
             (SELECT md5(string_agg(o::text, E'\\n' ORDER BY id)) FROM shop.orders o) || ' ' ||
             (SELECT last_value FROM shop.customers_id_seq) || ' ' ||
             (SELECT last_value FROM shop.orders_id_seq) || ' ' ||
             (SELECT count(*) FROM shop.big_spenders)
      `,
      { database }
    )
  })

/** A backup run's environment, as the controller sets it: schema `shop` of `database` to `object` in `bucket` on the GCS emulator. */
export const contractEnv = (options: {
  readonly database: string
  readonly bucket: string
  readonly object: string
  readonly manifest: string
  readonly password?: string
  readonly compression?: "gzip" | "zstd" | "none"
}) =>
  Effect.gen(function* () {
    const pg = yield* Postgres
    const gcs = yield* GcsEmulator
    return {
      DB_HOST: pg.host,
      DB_PORT: String(pg.port),
      DB_USER: "app",
      DB_NAME: options.database,
      DB_SCHEMA: "shop",
      PGPASSWORD: options.password ?? appPassword,
      BACKUP_BUCKET: options.bucket,
      BACKUP_OBJECT: options.object,
      BACKUP_MANIFEST_OBJECT: options.manifest,
      BACKUP_COMPRESSION: options.compression ?? "gzip",
      BACKUP_RESOURCE: "team/shop-backup",
      GCS_ENDPOINT: gcs.endpoint
    }
  })

/** A client of the GCS emulator, as the tests read the bucket with. */
export const storeOf = Effect.gen(function* () {
  const gcs = yield* GcsEmulator
  return GcsObjectStore.make({ apiEndpoint: gcs.endpoint })
})

const ensureAppRole = appRoleOnce(appPassword)
/** A new database with the shop schema and a new bucket, both named after `suffix`. */
export const setup = (suffix: string) =>
  Effect.gen(function* () {
    const gcs = yield* GcsEmulator
    yield* ensureAppRole
    const database = `shop_${suffix}`
    const bucket = `backups-${suffix}`
    yield* createShop(database)
    yield* gcs.createBucket(bucket)
    return { database, bucket, prefix: "backups/team/shop-backup/" }
  })
