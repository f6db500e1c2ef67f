import { CrdSchema } from "@db-backup-operator/kube"
import { Schema } from "effect"

/**
 * String shapes shared by the backup API's Schemas. Every RegExp carries the `u`
 * flag: Effect's JSON Schema emitter drops patterns without it, and the patterns
 * end up in the CRD's OpenAPI schema where `kubectl apply` enforces them.
 * Lengths are checked in code points (`isMinCodePoints`), which is what JSON
 * Schema's `minLength` means; `isMinLength` counts UTF-16 units and is emitted
 * as a looser bound.
 */

/** A non-empty string of at most `max` characters. */
export const nonEmpty = (max: number) => Schema.String.check(Schema.isMinCodePoints(1), Schema.isMaxCodePoints(max))

/** DNS-1123 label: namespaces (`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`, at most 63 characters). */
export const DnsLabel = Schema.String.check(
  Schema.isMinCodePoints(1),
  Schema.isMaxCodePoints(63),
  Schema.isPattern(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/u)
)

/** DNS-1123 subdomain: Secret and ServiceAccount names (dot-separated labels, at most 253 characters). */
export const DnsSubdomain = Schema.String.check(
  Schema.isMinCodePoints(1),
  Schema.isMaxCodePoints(253),
  Schema.isPattern(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/u)
)

/**
 * A key of a Secret's `data` (`[-._a-zA-Z0-9]+`, at most 253 characters), as the
 * API server validates it.
 */
export const SecretKey = Schema.String.check(
  Schema.isMinCodePoints(1),
  Schema.isMaxCodePoints(253),
  Schema.isPattern(/^[-._a-zA-Z0-9]+$/u)
)

/**
 * One naming rule of a store, written once: as the CRD's CEL `rule` (on
 * `self`, the name) and as the `test` of the Schema's check, with the same
 * `message` for both.
 */
export interface NameRule {
  readonly rule: string
  readonly message: string
  readonly test: (name: string) => boolean
}

/** A Schema check per rule, with its message. */
export const nameChecks = (rules: ReadonlyArray<NameRule>) =>
  rules.map(({ message, test }) => Schema.makeFilter((name: string) => (test(name) ? undefined : message)))

/**
 * The CRD's CEL form of `rules`, on the object whose `field` holds the name:
 * each rule reads `self.<field>` (only when the field is set), and its error
 * names the field.
 *
 * @example
 * ```ts
 * nameValidations(gcsBucketRules, "gcsBucket")[0]
 * // { rule: "!has(self.gcsBucket) || (!self.gcsBucket.startsWith('goog'))", message: "must not start with goog (GCS reserves it)", fieldPath: ".gcsBucket" }
 * ```
 */
export const nameValidations = (rules: ReadonlyArray<NameRule>, field: string) =>
  rules.map(({ rule, message }) => ({
    rule: `!has(self.${field}) || (${rule.replaceAll("self", `self.${field}`)})`,
    message,
    fieldPath: `.${field}`
  }))

/**
 * What GCS refuses in a bucket name beyond its characters and length (its
 * naming rules): the `goog` prefix, `google` and its look-alikes, an IP
 * address, and dot-separated parts that are empty or start or end with `-`.
 * Each rule once, as the CRD's CEL rule and as the check of {@link GcsBucketName}.
 */
export const gcsBucketRules: ReadonlyArray<NameRule> = [
  {
    rule: "!self.startsWith('goog')",
    message: "must not start with goog (GCS reserves it)",
    test: (name) => !name.startsWith("goog")
  },
  {
    rule: "!self.matches('g[o0][o0]gle')",
    message: "must not contain google or a look-alike such as g00gle (GCS refuses them)",
    test: (name) => !/g[o0][o0]gle/u.test(name)
  },
  {
    rule: "!self.matches('^[0-9]{1,3}([.][0-9]{1,3}){3}$')",
    message: "must not be an IP address (GCS refuses them)",
    test: (name) => !/^[0-9]{1,3}(\.[0-9]{1,3}){3}$/u.test(name)
  },
  {
    rule: "!self.contains('..') && !self.contains('.-') && !self.contains('-.')",
    message: "each dot-separated part must be non-empty and start and end with a letter or digit",
    test: (name) => !name.includes("..") && !name.includes(".-") && !name.includes("-.")
  }
]

/**
 * A GCS bucket name: 3–63 characters of lowercase letters, digits, `-`, `_` and
 * `.`, starting and ending with a letter or digit, and none of {@link gcsBucketRules}
 * broken. (GCS allows up to 222 characters in a name with dots; 63 is kept.)
 */
export const GcsBucketName = Schema.String.check(
  Schema.isMinCodePoints(3),
  Schema.isMaxCodePoints(63),
  ...nameChecks(gcsBucketRules),
  Schema.isPattern(/^[a-z0-9][-a-z0-9_.]*[a-z0-9]$/u)
)

/**
 * What S3 refuses in a bucket name beyond its characters and length (its
 * general-purpose bucket naming rules): `..`, an IP address, and the prefixes
 * and suffixes AWS reserves. S3-compatible servers accept these names too.
 */
export const s3BucketRules: ReadonlyArray<NameRule> = [
  {
    rule: "!self.contains('..')",
    message: "must not contain two adjacent dots (S3 refuses them)",
    test: (name) => !name.includes("..")
  },
  {
    rule: "!self.matches('^[0-9]{1,3}([.][0-9]{1,3}){3}$')",
    message: "must not be an IP address (S3 refuses them)",
    test: (name) => !/^[0-9]{1,3}(\.[0-9]{1,3}){3}$/u.test(name)
  },
  {
    rule: "!self.startsWith('xn--') && !self.startsWith('sthree-') && !self.startsWith('amzn-s3-demo-')",
    message: "must not start with xn--, sthree- or amzn-s3-demo- (S3 reserves them)",
    test: (name) => !/^(xn--|sthree-|amzn-s3-demo-)/u.test(name)
  },
  {
    rule: "!self.endsWith('-s3alias') && !self.endsWith('--ol-s3') && !self.endsWith('.mrap') && !self.endsWith('--x-s3') && !self.endsWith('--table-s3')",
    message: "must not end with -s3alias, --ol-s3, .mrap, --x-s3 or --table-s3 (S3 reserves them)",
    test: (name) => !/(-s3alias|--ol-s3|\.mrap|--x-s3|--table-s3)$/u.test(name)
  }
]

/**
 * An S3 bucket name: 3–63 lowercase letters, digits, `.` and `-`, starting and
 * ending with a letter or digit, none of {@link s3BucketRules} broken.
 */
export const S3BucketName = Schema.String.check(
  Schema.isMinCodePoints(3),
  Schema.isMaxCodePoints(63),
  ...nameChecks(s3BucketRules),
  Schema.isPattern(/^[a-z0-9][-a-z0-9.]*[a-z0-9]$/u)
)

/**
 * An Azure Blob container name: 3–63 lowercase letters, digits and `-`,
 * starting with a letter or digit, every `-` between two letters or digits.
 */
export const AzureContainerName = Schema.String.check(
  Schema.isMinCodePoints(3),
  Schema.isMaxCodePoints(63),
  Schema.isPattern(/^[a-z0-9]+(-[a-z0-9]+)*$/u)
)

/** An Azure storage account name: 3–24 lowercase letters and digits. */
export const AzureAccountName = Schema.String.check(
  Schema.isMinCodePoints(3),
  Schema.isMaxCodePoints(24),
  Schema.isPattern(/^[a-z0-9]+$/u)
)

/**
 * A directory inside a volume: a relative path of at most 255 characters
 * whose parts start with a letter, digit or `_` (so no `.` or `..` part, no
 * empty part, no leading `/`).
 */
export const VolumeSubPath = Schema.String.check(
  Schema.isMinCodePoints(1),
  Schema.isMaxCodePoints(255),
  Schema.isPattern(/^[A-Za-z0-9_][-A-Za-z0-9_.]*(\/[A-Za-z0-9_][-A-Za-z0-9_.]*)*$/u)
)

/** An `http(s)://host[:port][/path]` URL of a store's API endpoint. */
export const EndpointUrl = Schema.String.check(
  Schema.isMaxCodePoints(2048),
  Schema.isPattern(/^https?:\/\/[^\s/?#@]+(\/[^\s?#]*)?$/u)
)

/**
 * A GCP service account: a bare account id (`db-operator-gsa`) or a full email
 * (`db-operator-gsa@my-project.iam.gserviceaccount.com`,
 * `123-compute@developer.gserviceaccount.com`).
 */
export const GcpServiceAccount = Schema.String.check(
  Schema.isMinCodePoints(1),
  Schema.isMaxCodePoints(254),
  Schema.isPattern(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(@([a-z0-9][-a-z0-9.:]*\.)?gserviceaccount\.com)?$/u)
)

/**
 * A DNS name (`pg.db.svc`, `db_1.example.com.`), an IPv4 address or an IPv6
 * address without brackets (`fd00::5`). Nothing else: libpq reads a value
 * starting with `/` or `@` as a Unix-socket directory, and one with a comma as
 * a list of hosts, so such values could make the runner connect somewhere the
 * resource does not say.
 */
export const Host = Schema.String.check(
  Schema.isMinCodePoints(1),
  Schema.isMaxCodePoints(253),
  Schema.isPattern(
    /^([A-Za-z0-9]([-A-Za-z0-9_]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9_]*[A-Za-z0-9])?)*\.?|[0-9A-Fa-f]*:[0-9A-Fa-f:.]*)$/u
  )
)

const utf8 = new TextEncoder()

/** PostgreSQL's limit on a name: NAMEDATALEN - 1 bytes, in the server's encoding (UTF-8). */
const maxIdentifierBytes = 63

const identifierBytesMessage = `must be at most ${maxIdentifierBytes} bytes in UTF-8: PostgreSQL cuts longer names short, so this one could never match`

/**
 * A PostgreSQL identifier as stored in the catalog (a database, role or schema
 * name): 1–63 bytes in UTF-8 (NAMEDATALEN - 1; PostgreSQL silently truncates a
 * longer name where it is created, so the full name could never match), no
 * control characters.
 */
export const PgIdentifier = Schema.String.annotate(
  CrdSchema.validations([{ rule: `size(bytes(self)) <= ${maxIdentifierBytes}`, message: identifierBytesMessage }])
).check(
  Schema.isMinCodePoints(1),
  Schema.isMaxCodePoints(maxIdentifierBytes),
  Schema.makeFilter((name: string) =>
    utf8.encode(name).byteLength <= maxIdentifierBytes ? undefined : identifierBytesMessage
  ),
  // Last: a field's own annotations (its description) go to the last check, which the CRD shows.
  Schema.isPattern(/^[^\p{Cc}]+$/u)
)

/** A TCP port, 1–65535. */
export const Port = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 65535 }))

/** An RFC 3339 timestamp as Kubernetes writes it (`2025-01-02T03:04:05Z`). */
export const Timestamp = Schema.String.annotate({ format: "date-time" }).check(
  Schema.isPattern(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/u)
)

/**
 * The shape of a backup schedule, checked at `kubectl apply`: five cron fields,
 * a macro (`@daily`, `@hourly`, ..., or its `-random` spread form), or
 * `@every <duration>` such as `@every 1h30m`. The operator checks the rest
 * (field ranges, the minimum interval) and names the field when it refuses one.
 */
export const ScheduleText = Schema.String.check(
  Schema.isMaxCodePoints(100),
  Schema.isPattern(
    /^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)(-random)?|@every ([0-9]+[hms])+|(\S+\s+){4}\S+)$/u
  )
)

/** An IANA time zone name's shape (`Europe/Berlin`, `UTC`); the operator checks that it exists. */
export const TimeZoneName = Schema.String.check(
  Schema.isMaxCodePoints(64),
  Schema.isPattern(/^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+)*$/u)
)

/** A SHA-256 digest as 64 lowercase hex characters. */
export const Sha256Hex = Schema.String.check(Schema.isPattern(/^[0-9a-f]{64}$/u))

/** A non-negative integer (sizes, generations). */
export const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

/**
 * An age recipient (a public key): X25519 `age1…` or post-quantum hybrid
 * `age1pq1…`, in bech32's lowercase alphabet. Never a private identity
 * (`AGE-SECRET-KEY-1…`), which the pattern cannot match.
 */
export const AgeRecipient = Schema.String.check(
  Schema.isMinCodePoints(62),
  Schema.isMaxCodePoints(2048),
  Schema.isPattern(/^age1[02-9ac-hj-np-z]+$/u)
)
