import { Context, Duration, Effect, Layer, Metric, Schedule, Schema, type Scope, Stream } from "effect"
import { DecodeError, fromStatus, type KubeError, Transient } from "../errors.ts"
import { type KubeObject, ObjectMeta } from "../ObjectMeta.ts"
import type { Resource } from "../Resource.ts"
import { type ConfigError, type ConfigSource, type Connection, resolve } from "./Connection.ts"
import * as Http from "./Http.ts"
import * as Http2Transport from "./Http2Transport.ts"
import { collectionPath, objectPath } from "./paths.ts"
import * as RateLimiter from "./RateLimiter.ts"
import type { WatchEvent } from "./WatchEvent.ts"

/** Selects objects by namespace (all when absent), labels and fields. */
export interface Selector {
  readonly namespace?: string
  readonly labelSelector?: string
  readonly fieldSelector?: string
}

export interface ListOptions extends Selector {
  /** Page size; pages are followed with `continue` until the list is complete. */
  readonly limit?: number
}

export interface ListResult<A> {
  readonly items: ReadonlyArray<A>
  /** The list's resourceVersion: start a watch from here to miss nothing. */
  readonly resourceVersion: string
  /** Objects the server sent that do not match the Schema (named, not dropped silently). */
  readonly malformed: ReadonlyArray<DecodeError>
}

export interface WatchOptions extends Selector {
  readonly resourceVersion?: string
  /** Server-side timeout: the server ends the watch cleanly after this long. */
  readonly timeoutSeconds?: number
  /** Ask for BOOKMARK events (default true). */
  readonly allowWatchBookmarks?: boolean
}

export interface WriteOptions {
  /** The object's namespace; for create, defaults to `metadata.namespace`. */
  readonly namespace?: string
  readonly fieldManager?: string
  readonly subresource?: string
  readonly dryRun?: boolean
}

export interface ApplyOptions extends WriteOptions {
  readonly fieldManager: string
  readonly force?: boolean
}

export interface DeleteOptions {
  readonly namespace?: string
  readonly propagationPolicy?: "Background" | "Foreground" | "Orphan"
  readonly preconditions?: { readonly uid?: string; readonly resourceVersion?: string }
  readonly gracePeriodSeconds?: number
}

/** One RFC 6902 operation. */
export interface JsonPatchOperation {
  readonly op: "add" | "remove" | "replace" | "test" | "move" | "copy"
  readonly path: string
  readonly value?: unknown
  readonly from?: string
}

export interface RawRequest {
  readonly method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE"
  readonly path: string
  readonly query?: Readonly<Record<string, string>>
  readonly body?: unknown
  readonly contentType?: string
  /** `Accept` header; default `application/json`. */
  readonly accept?: string
}

type Kind<A extends KubeObject, I> = Resource<A, I>

/**
 * The Kubernetes API as an Effect service: typed reads and watches decoded by each
 * kind's Schema, writes as patches or server-side apply (never a replace of a
 * partial object), typed errors, retries of transient failures with jittered
 * backoff honouring `Retry-After`, and a client-side rate limit.
 *
 * @example
 * ```ts
 * const program = Effect.gen(function* () {
 *   const kube = yield* KubeClient
 *   const job = yield* kube.get(Job, "backup-1", { namespace: "db" })
 *   yield* kube.mergePatch(Job, "backup-1", { metadata: { labels: { seen: "yes" } } }, { namespace: "db" })
 *   return job.status?.succeeded
 * })
 * program.pipe(Effect.provide(KubeClient.layer({ _tag: "Default" })))
 * ```
 */
export interface KubeClientShape {
  readonly server: string
  readonly get: <A extends KubeObject, I>(
    resource: Kind<A, I>,
    name: string,
    options?: { readonly namespace?: string }
  ) => Effect.Effect<A, KubeError>
  /**
   * An object's metadata only (`PartialObjectMetadata`): labels, annotations,
   * owners, never its data. Needs the same `get` permission, but a caller that
   * only checks a Secret's annotations never holds its values.
   */
  readonly getMetadata: <A extends KubeObject, I>(
    resource: Kind<A, I>,
    name: string,
    options?: { readonly namespace?: string }
  ) => Effect.Effect<ObjectMeta, KubeError>
  readonly list: <A extends KubeObject, I>(
    resource: Kind<A, I>,
    options?: ListOptions
  ) => Effect.Effect<ListResult<A>, KubeError>
  readonly watch: <A extends KubeObject, I>(
    resource: Kind<A, I>,
    options?: WatchOptions
  ) => Stream.Stream<WatchEvent<A>, KubeError>
  readonly create: <A extends KubeObject, I>(
    resource: Kind<A, I>,
    object: A,
    options?: WriteOptions
  ) => Effect.Effect<A, KubeError>
  readonly mergePatch: <A extends KubeObject, I>(
    resource: Kind<A, I>,
    name: string,
    patch: unknown,
    options?: WriteOptions
  ) => Effect.Effect<A, KubeError>
  readonly jsonPatch: <A extends KubeObject, I>(
    resource: Kind<A, I>,
    name: string,
    operations: ReadonlyArray<JsonPatchOperation>,
    options?: WriteOptions
  ) => Effect.Effect<A, KubeError>
  /** Server-side apply: `object` is the partial intent (JSON), owned by `fieldManager`. */
  readonly apply: <A extends KubeObject, I>(
    resource: Kind<A, I>,
    name: string,
    object: unknown,
    options: ApplyOptions
  ) => Effect.Effect<A, KubeError>
  readonly delete: <A extends KubeObject, I>(
    resource: Kind<A, I>,
    name: string,
    options?: DeleteOptions
  ) => Effect.Effect<void, KubeError>
  /** Escape hatch for endpoints without a kind (bindings, discovery, logs). Returns parsed JSON or text. */
  readonly request: (request: RawRequest) => Effect.Effect<unknown, KubeError>
}

/** controller-runtime's metric name, so existing dashboards work. */
const requestsTotal = Metric.counter("rest_client_requests_total", {
  description: "Number of HTTP requests, partitioned by status code, method, and host."
})

export interface ClientOptions {
  /** Client-side rate limit (default 50 requests/s with bursts of 100). */
  readonly qps?: number
  readonly burst?: number
  /** Attempts for transient failures before the error reaches the caller (default 6). */
  readonly retries?: number
}

/** What `getMetadata` decodes: the object's metadata and nothing else. */
const PartialObjectMetadata = Schema.Struct({ metadata: ObjectMeta })

const describeObject = (raw: unknown): string => {
  if (typeof raw === "object" && raw !== null && "metadata" in raw) {
    const metadata = raw.metadata
    if (typeof metadata === "object" && metadata !== null) {
      const name = "name" in metadata && typeof metadata.name === "string" ? metadata.name : "<unnamed>"
      const namespace = "namespace" in metadata && typeof metadata.namespace === "string" ? metadata.namespace : ""
      return namespace === "" ? name : `${namespace}/${name}`
    }
  }
  return "<not an object>"
}

const resourceVersionOf = (raw: unknown): string | undefined => {
  if (typeof raw === "object" && raw !== null && "metadata" in raw) {
    const metadata = raw.metadata
    if (typeof metadata === "object" && metadata !== null && "resourceVersion" in metadata) {
      return typeof metadata.resourceVersion === "string" ? metadata.resourceVersion : undefined
    }
  }
  return undefined
}

/** Decodes one object, naming the object and the failing field when it does not fit the Schema. */
const decodeObject = <A extends KubeObject, I>(resource: Kind<A, I>, raw: unknown): Effect.Effect<A, DecodeError> =>
  Schema.decodeUnknownEffect(resource.schema)(raw).pipe(
    Effect.mapError((error) => {
      const object = describeObject(raw)
      return new DecodeError({ kind: resource.kind, object, message: `${resource.kind} ${object}: ${error.message}` })
    })
  )

const retryAfterOf = (response: Http.Head): number | undefined => {
  const header = response.headers["retry-after"]
  if (typeof header !== "string") return undefined
  const seconds = Number(header)
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : undefined
}

const parseBody = (text: string): unknown => {
  if (text.length === 0) return undefined
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

const queryOf = (entries: Record<string, string | number | boolean | undefined>): Record<string, string> => {
  const query: Record<string, string> = {}
  for (const [key, value] of Object.entries(entries)) if (value !== undefined) query[key] = String(value)
  return query
}

const selectorQuery = (selector: Selector) => ({
  labelSelector: selector.labelSelector,
  fieldSelector: selector.fieldSelector
})

const namespaceFor = (object: KubeObject, options: WriteOptions | undefined): string | undefined =>
  options?.namespace ?? object.metadata.namespace

const ListEnvelope = Schema.Struct({
  metadata: Schema.optionalKey(
    Schema.Struct({
      resourceVersion: Schema.optionalKey(Schema.String),
      continue: Schema.optionalKey(Schema.String)
    })
  ),
  items: Schema.NullOr(Schema.Array(Schema.Unknown))
})

const WatchLine = Schema.Struct({
  type: Schema.Literals(["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]),
  object: Schema.Unknown
})

/**
 * Builds the client for one resolved connection. Prefer {@link layer}; this is
 * exposed for tests that construct a Connection by hand.
 */
const make = Effect.fn("KubeClient.make")(function* (connection: Connection, options?: ClientOptions) {
  // Requests are cancelled when interrupted, and a watch's when its Scope closes.
  const transport = yield* Http.HttpTransport
  const limiter = yield* RateLimiter.make({ qps: options?.qps ?? 50, burst: options?.burst ?? 100 })
  const origin = new URL(connection.server).origin
  // A server URL may carry a path prefix (a proxy's): requests go below it.
  const prefix = new URL(connection.server).pathname.replace(/\/+$/u, "")
  const host = new URL(connection.server).host
  const retrySchedule = Schedule.exponential("200 millis", 2).pipe(
    Schedule.jittered,
    Schedule.modifyDelay((meta) => {
      const capped = Duration.min(meta.duration, Duration.seconds(30))
      const input: unknown = meta.input
      const retryAfter = input instanceof Transient ? input.retryAfterSeconds : undefined
      return Effect.succeed(
        retryAfter === undefined ? capped : Duration.max(capped, Duration.seconds(Math.min(retryAfter, 60)))
      )
    }),
    Schedule.upTo({ times: options?.retries ?? 6 })
  )

  // One counter per (method, code), made once rather than per request.
  const counters = new Map<string, Metric.Counter<number>>()
  const count = (method: string, code: string) => {
    const key = `${method} ${code}`
    let counter = counters.get(key)
    if (counter === undefined) {
      counter = Metric.withAttributes(requestsTotal, { code, method, host })
      counters.set(key, counter)
    }
    return Metric.update(counter, 1)
  }

  /** The HTTP request for `raw`, after a rate-limit token and with the current auth headers. */
  const prepare = (raw: RawRequest): Effect.Effect<Http.Request, KubeError> =>
    Effect.gen(function* () {
      yield* limiter.take
      const auth = yield* connection.headers.pipe(
        Effect.mapError((error) => new Transient({ message: error.message, request: `${raw.method} ${raw.path}` }))
      )
      const query = raw.query === undefined ? "" : new URLSearchParams(raw.query).toString()
      const headers: Record<string, string> = { ...auth, accept: raw.accept ?? "application/json" }
      if (raw.body !== undefined) headers["content-type"] = raw.contentType ?? "application/json"
      return {
        origin,
        method: raw.method,
        path: `${prefix}${raw.path}${query === "" ? "" : `?${query}`}`,
        headers,
        ...(raw.body === undefined ? {} : { body: JSON.stringify(raw.body) })
      }
    })

  const unreachable = (description: string) => (error: Http.HttpFailure) =>
    new Transient({ message: `${description}: ${error.message}`, request: description })

  /** A non-2xx answer as the typed error its status means. */
  const refused = (description: string, answer: Http.Head, body: string) =>
    fromStatus(description, answer.status, parseBody(body), retryAfterOf(answer))

  /** Sends `raw` with `via` (a whole answer or a streamed one), counting it; an unreachable server is Transient. */
  const sendWith = <A extends Http.Head, R>(
    raw: RawRequest,
    via: (request: Http.Request) => Effect.Effect<A, Http.HttpFailure, R>
  ): Effect.Effect<A, KubeError, R> =>
    prepare(raw).pipe(
      Effect.flatMap(via),
      Effect.tap((answer) => count(raw.method, String(answer.status))),
      Effect.catchTag("HttpFailure", (error) =>
        Effect.andThen(count(raw.method, "<error>"), Effect.fail(unreachable(`${raw.method} ${raw.path}`)(error)))
      )
    )

  /** Sends one request and maps failures to typed errors; transient ones are retried. */
  const request = (raw: RawRequest): Effect.Effect<unknown, KubeError> =>
    Effect.flatMap(sendWith(raw, transport.exchange), (answer) =>
      answer.status >= 200 && answer.status < 300
        ? Effect.succeed(parseBody(answer.body))
        : Effect.fail(refused(`${raw.method} ${raw.path}`, answer, answer.body))
    ).pipe(Effect.retry({ schedule: retrySchedule, while: (error) => error._tag === "Transient" }))

  /** Opens a streamed request (a watch); a non-2xx answer is read whole and fails typed. */
  const send = (raw: RawRequest): Effect.Effect<Http.Streamed, KubeError, Scope.Scope> =>
    Effect.flatMap(sendWith(raw, transport.open), (answer) =>
      answer.status >= 200 && answer.status < 300
        ? Effect.succeed(answer)
        : answer.body.pipe(
            Stream.decodeText(),
            Stream.mkString,
            Effect.orElseSucceed(() => ""),
            Effect.flatMap((text) => Effect.fail(refused(`${raw.method} ${raw.path}`, answer, text)))
          )
    )

  const decodeResponse = <A extends KubeObject, I>(resource: Kind<A, I>, raw: RawRequest) =>
    Effect.flatMap(request(raw), (body) => decodeObject(resource, body))

  const get: KubeClientShape["get"] = (resource, name, options) =>
    decodeResponse(resource, { method: "GET", path: objectPath(resource, options?.namespace, name) })

  const getMetadata: KubeClientShape["getMetadata"] = (resource, name, options) =>
    request({
      method: "GET",
      path: objectPath(resource, options?.namespace, name),
      // The full object as a fallback, for API servers (or proxies) that do not serve the partial form.
      accept: "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
    }).pipe(
      Effect.flatMap(Schema.decodeUnknownEffect(PartialObjectMetadata)),
      Effect.map((partial) => partial.metadata),
      Effect.mapError((error) =>
        error._tag === "SchemaError"
          ? new DecodeError({ kind: resource.kind, object: name, message: error.message })
          : error
      )
    )

  const list = <A extends KubeObject, I>(resource: Kind<A, I>, options?: ListOptions) =>
    Effect.gen(function* () {
      const decoded: Array<A> = []
      const malformed: Array<DecodeError> = []
      let continueToken: string | undefined
      let resourceVersion = ""
      do {
        const body = yield* request({
          method: "GET",
          path: collectionPath(resource, options?.namespace),
          query: queryOf({ ...selectorQuery(options ?? {}), limit: options?.limit ?? 500, continue: continueToken })
        })
        const envelope = yield* Schema.decodeUnknownEffect(ListEnvelope)(body).pipe(
          Effect.mapError(
            (error) =>
              new DecodeError({ kind: `${resource.kind}List`, object: resource.plural, message: error.message })
          )
        )
        for (const raw of envelope.items ?? []) {
          const result = yield* Effect.result(decodeObject(resource, raw))
          if (result._tag === "Success") decoded.push(result.success)
          else malformed.push(result.failure)
        }
        continueToken = envelope.metadata?.continue || undefined
        resourceVersion = envelope.metadata?.resourceVersion ?? resourceVersion
      } while (continueToken !== undefined)
      const result: ListResult<A> = { items: decoded, resourceVersion, malformed }
      return result
    })

  const watch = <A extends KubeObject, I>(
    resource: Kind<A, I>,
    options?: WatchOptions
  ): Stream.Stream<WatchEvent<A>, KubeError> => {
    const raw: RawRequest = {
      method: "GET",
      path: collectionPath(resource, options?.namespace),
      query: queryOf({
        ...selectorQuery(options ?? {}),
        watch: "true",
        resourceVersion: options?.resourceVersion,
        allowWatchBookmarks: options?.allowWatchBookmarks ?? true,
        timeoutSeconds: options?.timeoutSeconds
      })
    }
    const description = `WATCH ${raw.path}`
    return Stream.unwrap(
      Effect.map(send(raw), (response) =>
        response.body.pipe(
          Stream.mapError(unreachable(description)),
          Stream.decodeText(),
          Stream.splitLines,
          Stream.filter((line) => line.length > 0),
          Stream.mapEffect((line) =>
            Effect.gen(function* (): Effect.fn.Return<WatchEvent<A>, KubeError> {
              const event = yield* Schema.decodeUnknownEffect(Schema.fromJsonString(WatchLine))(line).pipe(
                Effect.mapError(
                  (error) => new DecodeError({ kind: resource.kind, object: "<watch event>", message: error.message })
                )
              )
              if (event.type === "ERROR") {
                const code =
                  typeof event.object === "object" && event.object !== null && "code" in event.object
                    ? Number(event.object.code)
                    : 500
                return yield* Effect.fail(fromStatus(description, code, event.object))
              }
              if (event.type === "BOOKMARK") {
                return { type: "BOOKMARK", resourceVersion: resourceVersionOf(event.object) ?? "" }
              }
              const decoded = yield* Effect.result(decodeObject(resource, event.object))
              return decoded._tag === "Success"
                ? { type: event.type, object: decoded.success }
                : { type: "MALFORMED", error: decoded.failure, resourceVersion: resourceVersionOf(event.object) }
            })
          )
        )
      )
    )
  }

  const write = <A extends KubeObject, I>(
    resource: Kind<A, I>,
    method: "POST" | "PATCH",
    path: string,
    body: unknown,
    contentType: string,
    options: WriteOptions | undefined,
    extra: Record<string, string | boolean | undefined> = {}
  ) =>
    decodeResponse(resource, {
      method,
      path,
      body,
      contentType,
      query: queryOf({ fieldManager: options?.fieldManager, dryRun: options?.dryRun ? "All" : undefined, ...extra })
    })

  const create: KubeClientShape["create"] = (resource, object, options) =>
    Effect.flatMap(
      Schema.encodeUnknownEffect(resource.schema)(object).pipe(
        Effect.mapError(
          (error) => new DecodeError({ kind: resource.kind, object: describeObject(object), message: error.message })
        )
      ),
      (encoded) =>
        write(
          resource,
          "POST",
          collectionPath(resource, namespaceFor(object, options)),
          { apiVersion: resource.apiVersion, kind: resource.kind, ...(encoded as object) },
          "application/json",
          options
        )
    )

  const mergePatch: KubeClientShape["mergePatch"] = (resource, name, patch, options) =>
    write(
      resource,
      "PATCH",
      objectPath(resource, options?.namespace, name, options?.subresource),
      patch,
      "application/merge-patch+json",
      options
    )

  const jsonPatch: KubeClientShape["jsonPatch"] = (resource, name, operations, options) =>
    write(
      resource,
      "PATCH",
      objectPath(resource, options?.namespace, name, options?.subresource),
      operations,
      "application/json-patch+json",
      options
    )

  const apply: KubeClientShape["apply"] = (resource, name, object, options) =>
    write(
      resource,
      "PATCH",
      objectPath(resource, options.namespace, name, options.subresource),
      { apiVersion: resource.apiVersion, kind: resource.kind, ...(object as object) },
      "application/apply-patch+yaml",
      options,
      { force: options.force }
    )

  const del: KubeClientShape["delete"] = (resource, name, options) =>
    Effect.asVoid(
      request({
        method: "DELETE",
        path: objectPath(resource, options?.namespace, name),
        body: {
          apiVersion: "v1",
          kind: "DeleteOptions",
          ...(options?.propagationPolicy === undefined ? {} : { propagationPolicy: options.propagationPolicy }),
          ...(options?.preconditions === undefined ? {} : { preconditions: options.preconditions }),
          ...(options?.gracePeriodSeconds === undefined ? {} : { gracePeriodSeconds: options.gracePeriodSeconds })
        }
      })
    )

  const client: KubeClientShape = {
    server: connection.server,
    get,
    getMetadata,
    list,
    watch,
    create,
    mergePatch,
    jsonPatch,
    apply,
    delete: del,
    request
  }
  return client
})

/**
 * The transport for a server: HTTP/2 (node:http2) for https, as every API server speaks it;
 * undici for plain http (a `kubectl proxy`), imported only then. A 15 s PING notices a
 * silently dead connection (and the watches on it) in time.
 */
const transportFor = (connection: Connection): Layer.Layer<Http.HttpTransport> =>
  connection.server.startsWith("https:")
    ? Http2Transport.layer(connection.server, { tls: connection.tls, pingInterval: Duration.seconds(15) })
    : Layer.unwrap(
        Effect.promise(() => import("./UndiciTransport.ts")).pipe(
          Effect.map((undici) => undici.layer({ connect: { ...connection.tls }, h2Options: { pingInterval: 15_000 } }))
        )
      )

/**
 * The client for a cluster, its HTTP connection pool scoped to the layer.
 *
 * @example
 * ```ts
 * const KubeLive = KubeClient.layer({ _tag: "File", path: "/tmp/env/kubeconfig" })
 * ```
 */
const layer = (source: ConfigSource, options?: ClientOptions): Layer.Layer<KubeClient, ConfigError> =>
  Layer.unwrap(
    Effect.map(resolve(source), (connection) =>
      Layer.effect(KubeClient, make(connection, options)).pipe(
        // Fresh: a memoized transport built elsewhere (without this cluster's CA) must not be reused.
        Layer.provide(Layer.fresh(transportFor(connection)))
      )
    )
  )

/**
 * The Kubernetes API client service. The class is the one name for the client:
 * `yield* KubeClient` for the operations, and its statics to build or reuse it.
 * Defined last because the statics are the functions above (whose bodies refer
 * to the class only when they run).
 */
export class KubeClient extends Context.Service<KubeClient, KubeClientShape>()("@db-backup-operator/kube/KubeClient") {
  /** The client for a cluster, its HTTP connection pool scoped to the layer. */
  static readonly layer = layer
  /** A client over a resolved {@link Connection}, given an {@link Http.HttpTransport} (tests give it their own). */
  static readonly make = make
  /** Decodes one object, naming the object and the failing field when it does not fit the Schema. */
  static readonly decodeObject = decodeObject
  /** `rest_client_requests_total`: requests by status code, method and host. */
  static readonly requestsTotal = requestsTotal
}
