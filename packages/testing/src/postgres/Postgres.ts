import { randomBytes } from "node:crypto"
import { NodeServices } from "@effect/platform-node"
import { Context, Effect, Exit, FileSystem, Layer, Path, Ref, Schema, Scope } from "effect"
import { ChildProcessSpawner } from "effect/process"
import { NotReady, waitUntilReady } from "../poll.ts"
import { freePort } from "../ports.ts"
import { startDaemon } from "../process/Daemon.ts"
import { isRoot } from "../process/privileges.ts"
import { runChecked, runProcess } from "../process/run.ts"
import { userIds } from "../process/users.ts"
import { createCertificateAuthority, issueCertificate, loopbackNames, serverExtensions } from "../tls/pki.ts"
import { findPostgresBinDir } from "./binaries.ts"
import { quoteIdent, quoteLiteral } from "./sql.ts"

/** The throwaway PostgreSQL server could not be started, or an SQL command failed. */
export class PostgresError extends Schema.TaggedError<PostgresError>()("PostgresError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

/** Where {@link Postgres.psql} connects, and as whom. */
export interface PsqlOptions {
  /** Database to connect to (default `postgres`). */
  readonly database?: string | undefined
  /** Role to connect as (default the superuser). */
  readonly user?: string | undefined
  /** That role's password (default the superuser's). */
  readonly password?: string | undefined
}

/** The TLS side of a server started with `tls` (see {@link PostgresOptions}). */
export interface PostgresTls {
  /** The PEM of the CA that signed the server's certificate (what `DB_SSL_ROOT_CERT` carries). */
  readonly caPem: string
  /** The same CA as a file (for `PGSSLROOTCERT` / `sslrootcert`). */
  readonly caFile: string
  /** The names the server's certificate is valid for, as openssl writes them (`IP:127.0.0.1`, `DNS:localhost`). */
  readonly subjectAltNames: ReadonlyArray<string>
}

/** A running throwaway PostgreSQL server and helpers to set it up. */
export interface PostgresShape {
  readonly host: string
  readonly port: number
  /** The superuser, `postgres`. */
  readonly user: string
  /** The superuser's random password. */
  readonly password: string
  /** The server version, e.g. `"15.18"`. */
  readonly version: string
  /**
   * `PGHOST`, `PGPORT`, `PGUSER` and `PGPASSWORD` for libpq clients; with TLS
   * also `PGSSLMODE` (verify-full, or verify-ca when the certificate does not
   * name 127.0.0.1) and `PGSSLROOTCERT`.
   */
  readonly env: Record<string, string>
  /** The CA to verify the server with, when it was started with TLS; `undefined` otherwise. */
  readonly tls: PostgresTls | undefined
  /**
   * Runs SQL through `psql -v ON_ERROR_STOP=1 -At` over TCP (the SQL goes in on
   * stdin, never in arguments) and returns its stdout without the final newline.
   * With TLS it verifies the server like {@link PostgresShape.env} says.
   */
  readonly psql: (sql: string, options?: PsqlOptions) => Effect.Effect<string, PostgresError>
  /** `CREATE ROLE name LOGIN PASSWORD ...`. */
  readonly createRole: (name: string, password: string) => Effect.Effect<void, PostgresError>
  /** `CREATE DATABASE name [OWNER owner]`. */
  readonly createDatabase: (name: string, options?: { readonly owner?: string }) => Effect.Effect<void, PostgresError>
  /** `CREATE SCHEMA schema [AUTHORIZATION owner]` inside `database`. */
  readonly createSchema: (
    database: string,
    schema: string,
    options?: { readonly owner?: string }
  ) => Effect.Effect<void, PostgresError>
  /**
   * Stops the server the way the layer's release does (a fast shutdown:
   * every session is rolled back and disconnected), then starts it again on
   * the same port and data directory; done once it accepts connections. For
   * tests of what clients do when their database restarts.
   */
  readonly restart: Effect.Effect<void, PostgresError>
}

const superuser = "postgres"
const host = "127.0.0.1"

const fail = (message: string) => (cause: { readonly message: string }) =>
  new PostgresError({ message: `${message}: ${cause.message}`, cause })

/** Options of {@link Postgres.layerWith}. */
export interface PostgresOptions {
  /** Directory for `postgres.log` (default: the cluster's temporary directory). */
  readonly logDir?: string | undefined
  /**
   * Serve TLS (`ssl=on`) with a certificate from a fresh test CA, valid for
   * 127.0.0.1 and localhost, or for the given subject alternative names (for
   * host-name mismatch tests). Clients may still connect without TLS. Default: off.
   */
  readonly tls?: boolean | { readonly subjectAltNames: ReadonlyArray<string> } | undefined
}

/**
 * A CA and a server certificate in `<dir>/tls`. The server refuses a key that
 * its group or others can read, or that another user owns: the key is mode
 * 0600 and, when we are root, owned by the postgres user.
 */
const serverTls = (
  dir: string,
  options: true | { readonly subjectAltNames: ReadonlyArray<string> },
  owner: { readonly uid: number; readonly gid: number } | undefined
) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const tlsDir = path.join(dir, "tls")
    const subjectAltNames = options === true ? loopbackNames : options.subjectAltNames
    const ca = yield* createCertificateAuthority({ dir: tlsDir, commonName: "db-backup-operator-test-postgres-ca" })
    const server = yield* issueCertificate(ca, {
      dir: tlsDir,
      name: "server",
      subject: "/CN=db-backup-operator-test-postgres",
      extensions: serverExtensions(subjectAltNames)
    })
    if (owner !== undefined) {
      yield* Effect.forEach([tlsDir, server.certFile, server.keyFile], (file) => fs.chown(file, owner.uid, owner.gid))
    }
    return {
      caPem: ca.certPem,
      caFile: ca.certFile,
      certFile: server.certFile,
      keyFile: server.keyFile,
      subjectAltNames
    }
  }).pipe(Effect.mapError(fail("cannot create the server's TLS certificate")))

const make = (options: PostgresOptions) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const bin = yield* findPostgresBinDir
    if (bin === undefined) {
      return yield* new PostgresError({
        message: "PostgreSQL server binaries not found (install postgresql-15, or set POSTGRES_BINDIR)"
      })
    }
    // initdb and postgres refuse to run as root: as root, the cluster belongs to the postgres user.
    const owner = isRoot() ? yield* userIds(superuser).pipe(Effect.mapError(fail("no postgres user"))) : undefined
    const dir = yield* fs
      .makeTempDirectoryScoped({ prefix: "db-backup-operator-pg-" })
      .pipe(Effect.mapError(fail("cannot create a temporary directory")))
    const dataDir = path.join(dir, "data")
    const socketDir = path.join(dir, "socket")
    const passwordFile = path.join(dir, "password")
    const password = randomBytes(18).toString("base64url")
    yield* Effect.gen(function* () {
      yield* fs.makeDirectory(socketDir, { mode: 0o700 })
      yield* fs.writeFileString(passwordFile, `${password}\n`, { mode: 0o600 })
      if (owner !== undefined) {
        for (const file of [dir, socketDir, passwordFile]) yield* fs.chown(file, owner.uid, owner.gid)
      }
    }).pipe(Effect.mapError(fail("cannot prepare the cluster directory")))

    yield* runChecked(
      path.join(bin, "initdb"),
      [
        `--pgdata=${dataDir}`,
        `--username=${superuser}`,
        `--pwfile=${passwordFile}`,
        "--auth=scram-sha-256",
        "--encoding=UTF8",
        "--locale=C",
        "--no-sync",
        "--no-instructions"
      ],
      { user: superuser, cwd: dir, env: { LC_ALL: "C" } }
    ).pipe(Effect.mapError(fail("initdb failed")))
    yield* fs.remove(passwordFile).pipe(Effect.ignore)

    const tls =
      options.tls === undefined || options.tls === false ? undefined : yield* serverTls(dir, options.tls, owner)
    const tlsArgs =
      tls === undefined
        ? []
        : ["-c", "ssl=on", "-c", `ssl_cert_file=${tls.certFile}`, "-c", `ssl_key_file=${tls.keyFile}`]
    const clientTls =
      tls === undefined
        ? {}
        : {
            PGSSLMODE: tls.subjectAltNames.includes("IP:127.0.0.1") ? "verify-full" : "verify-ca",
            PGSSLROOTCERT: tls.caFile
          }

    const port = yield* freePort.pipe(Effect.mapError(fail("no free port")))
    // Each run of the server gets its own scope inside the layer's, so `restart` can stop one and start the next.
    const layerScope = yield* Effect.scope
    const services = yield* Effect.context<
      FileSystem.FileSystem | Path.Path | ChildProcessSpawner.ChildProcessSpawner
    >()
    const startServer = Effect.gen(function* () {
      const scope = yield* Scope.fork(layerScope)
      const daemon = yield* startDaemon({
        name: "postgres",
        dir: options.logDir ?? dir,
        command: path.join(bin, "postgres"),
        args: [
          "-D",
          dataDir,
          "-p",
          String(port),
          "-c",
          `listen_addresses=${host}`,
          "-c",
          `unix_socket_directories=${socketDir}`,
          "-c",
          "fsync=off",
          "-c",
          "synchronous_commit=off",
          "-c",
          "full_page_writes=off",
          ...tlsArgs
        ],
        cwd: dir,
        user: superuser,
        // SIGTERM is a "smart" shutdown that waits for every client to leave; SIGINT rolls them back and stops.
        stopSignal: "SIGINT",
        // If we die, an immediate shutdown: the cluster is thrown away anyway.
        parentDeathSignal: "SIGQUIT"
      }).pipe(
        Scope.provide(scope),
        Effect.provideContext(services),
        Effect.tapError(() => Scope.close(scope, Exit.void)),
        Effect.mapError(fail("cannot start postgres"))
      )
      return { daemon, scope }
    })
    const server = yield* Ref.make(yield* startServer)

    const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
    const psql = (sql: string, options: PsqlOptions = {}): Effect.Effect<string, PostgresError> =>
      runProcess(
        path.join(bin, "psql"),
        [
          "-X",
          "-v",
          "ON_ERROR_STOP=1",
          "-At",
          "-h",
          host,
          "-p",
          String(port),
          "-U",
          options.user ?? superuser,
          "-d",
          // As a connection string: a database name with `=` or a URI prefix stays a name.
          `dbname='${(options.database ?? "postgres").replace(/\\/gu, "\\\\").replace(/'/gu, "\\'")}'`,
          "-f",
          "-"
        ],
        {
          stdin: sql,
          env: {
            PGPASSWORD: options.password ?? password,
            PGCONNECT_TIMEOUT: "10",
            PGAPPNAME: "kube-testenv",
            ...clientTls
          },
          timeout: "60 seconds"
        }
      ).pipe(
        Effect.provideService(ChildProcessSpawner.ChildProcessSpawner, spawner),
        Effect.mapError(fail("psql failed")),
        Effect.flatMap((result) =>
          result.exitCode === 0
            ? Effect.succeed(result.stdout.replace(/\n$/u, ""))
            : Effect.fail(
                new PostgresError({ message: `psql exited with code ${result.exitCode}: ${result.stderr.trim()}` })
              )
        )
      )

    /** Waits until the running server answers `SHOW server_version`; fails at once if it stopped. */
    const ready = waitUntilReady(
      Ref.get(server).pipe(
        Effect.flatMap(({ daemon }) => daemon.ensureRunning),
        Effect.mapError(fail("postgres stopped")),
        Effect.andThen(psql("SHOW server_version")),
        Effect.catchTag(
          "PostgresError",
          (e): Effect.Effect<never, PostgresError | NotReady> =>
            e.message.startsWith("postgres stopped") ? Effect.fail(e) : Effect.fail(new NotReady({ reason: e.message }))
        )
      ),
      {
        timeout: "60 seconds",
        onTimeout: (reason) => new PostgresError({ message: `postgres not ready after 60 seconds: ${reason}` })
      }
    )
    const version = yield* ready

    const restart = Effect.gen(function* () {
      // Closing the run's scope stops the daemon as the layer's release would: SIGINT, SIGKILL after 5 s.
      yield* Scope.close((yield* Ref.get(server)).scope, Exit.void)
      yield* Ref.set(server, yield* startServer)
      yield* ready
    })

    return Postgres.of({
      host,
      port,
      user: superuser,
      password,
      version: version.split(" ")[0] ?? version,
      env: { PGHOST: host, PGPORT: String(port), PGUSER: superuser, PGPASSWORD: password, ...clientTls },
      tls:
        tls === undefined ? undefined : { caPem: tls.caPem, caFile: tls.caFile, subjectAltNames: tls.subjectAltNames },
      psql,
      createRole: (name, rolePassword) =>
        psql(`CREATE ROLE ${quoteIdent(name)} LOGIN PASSWORD ${quoteLiteral(rolePassword)}`).pipe(Effect.asVoid),
      createDatabase: (name, options = {}) =>
        psql(
          `CREATE DATABASE ${quoteIdent(name)}${options.owner === undefined ? "" : ` OWNER ${quoteIdent(options.owner)}`}`
        ).pipe(Effect.asVoid),
      createSchema: (database, schema, options = {}) =>
        psql(
          `CREATE SCHEMA ${quoteIdent(schema)}${options.owner === undefined ? "" : ` AUTHORIZATION ${quoteIdent(options.owner)}`}`,
          { database }
        ).pipe(Effect.asVoid),
      restart
    })
  })

/**
 * A throwaway PostgreSQL cluster (Debian's PostgreSQL 15): `initdb` into a
 * temporary directory (as the `postgres` user when we are root), a random
 * superuser password, scram-sha-256 authentication, 127.0.0.1 on a random port,
 * fsync off. Stopped and deleted when the layer is released. `layerWith({ tls: true })`
 * also serves TLS with a certificate from a throwaway CA (`tls.caPem`).
 *
 * @example
 * ```ts
 * const program = Effect.gen(function* () {
 *   const pg = yield* Postgres
 *   yield* pg.createRole("app", "secret")
 *   yield* pg.createDatabase("shop", { owner: "app" })
 *   yield* pg.createSchema("shop", "orders", { owner: "app" })
 *   return yield* pg.psql("SELECT current_user", { database: "shop", user: "app", password: "secret" })
 * }).pipe(Effect.provide(Postgres.layer))
 * ```
 */
export class Postgres extends Context.Service<Postgres, PostgresShape>()("@db-backup-operator/testing/Postgres") {
  static readonly layer: Layer.Layer<Postgres, PostgresError> = Layer.effect(Postgres, make({})).pipe(
    Layer.provide(NodeServices.layer)
  )

  /**
   * The cluster with options (where its log goes, TLS).
   *
   * @example
   * ```ts
   * const program = Effect.gen(function* () {
   *   const pg = yield* Postgres
   *   // verify-full against the test CA: the connection is encrypted and the server authenticated
   *   return yield* pg.psql("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")   // "t"
   * }).pipe(Effect.provide(Postgres.layerWith({ tls: true })))
   * ```
   */
  static readonly layerWith = (options: PostgresOptions): Layer.Layer<Postgres, PostgresError> =>
    Layer.effect(Postgres, make(options)).pipe(Layer.provide(NodeServices.layer))
}
