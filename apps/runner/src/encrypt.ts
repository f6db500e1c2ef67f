import {
  createCipheriv,
  createDecipheriv,
  createSecretKey,
  getCiphers,
  hkdfSync,
  type KeyObject,
  randomBytes
} from "node:crypto"
import { ManifestEncryption } from "@db-backup-operator/backup-api/contract"
import { Decrypter, Encrypter } from "age-encryption"
import { type Brand, Effect, Schema, Stream } from "effect"
import { blockBytes } from "./compress.ts"

/**
 * Client-side encryption of the stored dump with age (https://age-encryption.org/v1):
 * the bucket only ever holds ciphertext, and only the holder of a recipient's
 * private identity can restore. The output is a plain binary age file:
 * `age -d -i key.txt` decrypts it.
 *
 * Division of labour: the `age-encryption` library (by age's author) makes and
 * checks the header (the file key wrapped to each recipient, X25519 or
 * post-quantum hybrid, and the header MAC). The payload, age's STREAM of
 * 64 KiB ChaCha20-Poly1305 chunks, is sealed here with Node's OpenSSL: the
 * library's pure-JS ChaCha20-Poly1305 ran at ~140 MB/s on a 2-core AMD EPYC
 * VM, OpenSSL's (AVX2/AVX-512) at ~1.4 GB/s, and the dump flows at up to ~300 MB/s.
 * The library hands the file key to every `Recipient` it encrypts to (that is
 * its interface), which is how the payload gets the very key the header
 * wraps; decryption gets it back from `Decrypter.decryptHeader`.
 */

/** age's STREAM chunk: 64 KiB of plaintext, sealed with a 16-byte Poly1305 tag. */
const chunkBytes = 64 * 1024
const tagBytes = 16
const sealedChunkBytes = chunkBytes + tagBytes
/** The payload starts with a random 16-byte nonce (the salt of the payload key). */
const nonceBytes = 16
const cipherName = "chacha20-poly1305"
const versionLine = "age-encryption.org/v1\n"
/** A header holds one stanza per recipient (~1.5 KiB for a post-quantum one): far below this. */
const maxHeaderBytes = 1024 * 1024

/** Most recipients one backup may be encrypted to: each one adds a stanza to the header and a key to manage. */
export const maxRecipients = 20

/** age recipients checked by {@link parseRecipients}: deduplicated, 1 to {@link maxRecipients} of them. */
export type Recipients = Brand.Branded<ReadonlyArray<string>, "AgeRecipients">

/** A recipient given for the backup is unusable; `entry` and `line` (1-based) say which one. */
export class InvalidRecipient extends Schema.TaggedError<InvalidRecipient>()("InvalidRecipient", {
  message: Schema.String,
  entry: Schema.optionalKey(Schema.Number),
  line: Schema.optionalKey(Schema.Number)
}) {}

/** The dump could not be encrypted (the library refused the recipients, or this Node has no ChaCha20-Poly1305). */
export class EncryptionFailed extends Schema.TaggedError<EncryptionFailed>()("EncryptionFailed", {
  message: Schema.String
}) {}

/** Why a backup could not be decrypted. */
export const DecryptionFailure = Schema.Literals([
  /** An identity given to decrypt with is malformed (or is a recipient, or none was given). */
  "InvalidIdentity",
  /** None of the identities can unwrap the file key: the backup was encrypted to other keys. */
  "NoMatchingIdentity",
  /** The data does not start like an age file. */
  "NotAgeFile",
  /** The header is malformed or its MAC does not match (it was modified). */
  "HeaderCorrupted",
  /** A payload chunk fails authentication: bytes were changed. */
  "PayloadCorrupted",
  /** The data ends before age's last chunk. */
  "Truncated",
  /** Bytes follow age's last chunk. */
  "TrailingData"
])
export type DecryptionFailure = typeof DecryptionFailure.Type

/**
 * A backup could not be decrypted. `offset` is the position in the encrypted
 * data (bytes from its start) where the problem was found, when known.
 * Nothing of a chunk that failed authentication was emitted.
 */
export class DecryptionFailed extends Schema.TaggedError<DecryptionFailed>()("DecryptionFailed", {
  message: Schema.String,
  kind: DecryptionFailure,
  offset: Schema.optionalKey(Schema.Number)
}) {}

/**
 * What the manifest records about a backup's encryption (the manifest's own
 * Schema): enough for a restore to know which identity it needs.
 */
export const EncryptionMetadata = ManifestEncryption
export type EncryptionMetadata = ManifestEncryption

// ---------------------------------------------------------------------------
// Recipients

interface Entry {
  readonly text: string
  /** 1-based among the entries (comments and blank lines are not entries). */
  readonly entry: number
  readonly line: number
}

/** Entries as users write them: one per line or separated by commas or spaces; `#` starts a comment. */
const entriesOf = (text: string): ReadonlyArray<Entry> => {
  const entries: Array<Entry> = []
  text.split(/\r?\n/u).forEach((raw, index) => {
    const hash = raw.indexOf("#")
    const content = hash === -1 ? raw : raw.slice(0, hash)
    for (const token of content.split(/[\s,]+/u))
      if (token !== "") entries.push({ text: token, entry: entries.length + 1, line: index + 1 })
  })
  return entries
}

/** The start of an entry that is not a valid recipient, short enough never to echo a whole secret. */
const preview = (text: string): string => `${text.slice(0, Math.min(12, Math.floor(text.length / 2)))}…`

const where = (entry: Entry): string => `recipient ${entry.entry} (line ${entry.line})`

/** The recipient an entry stands for, or why it is not one. */
const checkEntry = (entry: Entry): string | InvalidRecipient => {
  const invalid = (message: string) =>
    new InvalidRecipient({ message: `${where(entry)} ${message}`, entry: entry.entry, line: entry.line })
  // bech32 may be written in capitals (all of it, as QR codes do); age and the library expect lower case.
  const text = entry.text === entry.text.toUpperCase() ? entry.text.toLowerCase() : entry.text
  if (/^age-(secret-key|plugin)-/iu.test(text))
    return invalid(
      "is a private age identity (AGE-SECRET-KEY-…), which must never be given to the backup: give its public " +
        "recipient (age1…) instead, printed by `age-keygen -y key.txt` and on the key file's '# public key:' line. " +
        "The private key was stored where the backup reads its settings: treat it as exposed and replace it."
    )
  if (!text.startsWith("age1"))
    return invalid(`("${preview(text)}") is not an age recipient: recipients start with age1`)
  const notValid = invalid(
    `("${preview(text)}") is not a valid age recipient (wrong checksum or length: was it copied whole?)`
  )
  // bech32: the human-readable part is everything before the last "1" (which the data part never contains).
  const hrp = text.slice(0, text.lastIndexOf("1"))
  if (hrp !== "age" && hrp !== "age1pq")
    return /^age1[a-z0-9]{1,24}$/u.test(hrp)
      ? invalid(
          `("${hrp}1…") is an age plugin or hardware-key recipient, which the backup cannot use: ` +
            "give an X25519 (age1…) or post-quantum (age1pq1…) recipient"
        )
      : notValid
  try {
    new Encrypter().addRecipient(text)
  } catch {
    return notValid
  }
  return text
}

/**
 * Reads the recipients a backup is encrypted to, as users write them: one per
 * line or comma-separated, with `#` comments and blank lines, like an age
 * recipients file. Each must be an X25519 (`age1…`) or post-quantum hybrid
 * (`age1pq1…`) recipient; duplicates are dropped; 1 to {@link maxRecipients}.
 * An error names the entry by position and line and shows at most its first
 * characters (a private identity pasted by mistake is never echoed).
 *
 * @example
 * ```ts
 * const recipients = yield* parseRecipients(`
 *   # ops team
 *   age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p, age1pq1…
 * `)
 * ```
 */
export const parseRecipients = (text: string): Effect.Effect<Recipients, InvalidRecipient> =>
  Effect.suspend(() => {
    const recipients: Array<string> = []
    for (const entry of entriesOf(text)) {
      const checked = checkEntry(entry)
      if (typeof checked !== "string") return Effect.fail(checked)
      if (!recipients.includes(checked)) recipients.push(checked)
    }
    if (recipients.length === 0)
      return Effect.fail(
        new InvalidRecipient({ message: "no age recipient is given: at least one public key (age1…) is needed" })
      )
    if (recipients.length > maxRecipients)
      return Effect.fail(
        new InvalidRecipient({
          message: `${recipients.length} age recipients are given: at most ${maxRecipients} are allowed`
        })
      )
    return Effect.succeed(recipients as ReadonlyArray<string> as Recipients)
  })

/**
 * The manifest's record of the encryption: the recipients are public keys, so
 * recording them is safe, and a restore can tell which identity it needs.
 *
 * @example
 * ```ts
 * declare const recipients: Recipients
 * const metadata: EncryptionMetadata = encryptionMetadata(recipients) // { format: "age", recipients: ["age1…"] }
 * ```
 */
export const encryptionMetadata = (recipients: Recipients): EncryptionMetadata => ({
  format: "age",
  recipients: [...recipients]
})

// ---------------------------------------------------------------------------
// STREAM (https://age-encryption.org/v1, "Payload")

/**
 * The payload key: HKDF-SHA-256 of the file key, salted with the payload's
 * nonce. A KeyObject, imported once: passing raw bytes to every chunk's cipher
 * re-imports them each time (~10% of the encryption's time).
 */
const payloadKey = (fileKey: Uint8Array, nonce: Uint8Array): KeyObject =>
  createSecretKey(Buffer.from(hkdfSync("sha256", fileKey, nonce, "payload", 32)))

/** A chunk's nonce: its index as an 11-byte big-endian counter, then 1 for the last chunk, else 0. */
const chunkNonce = (index: number, last: boolean): Buffer => {
  const nonce = Buffer.alloc(12)
  nonce.writeUIntBE(index, 5, 6) // 2^48 chunks of 64 KiB: no dump comes near
  nonce[11] = last ? 1 : 0
  return nonce
}

/** Collects output pieces into blocks of at least `blockBytes` (the upload's unit), with one copy. */
class Blocks {
  private parts: Array<Uint8Array>
  private bytes: number

  /** `first` leads the first block (the header and nonce do not go out alone). */
  constructor(first?: Uint8Array) {
    this.parts = first === undefined ? [] : [first]
    this.bytes = first?.byteLength ?? 0
  }

  add(part: Uint8Array, out: Array<Uint8Array>): void {
    this.parts.push(part)
    this.bytes += part.byteLength
    if (this.bytes >= blockBytes) this.flush(out)
  }

  flush(out: Array<Uint8Array>): void {
    if (this.bytes > 0) out.push(Buffer.concat(this.parts, this.bytes))
    this.parts = []
    this.bytes = 0
  }
}

/**
 * Cuts bytes into STREAM chunks. A full chunk is only passed on once more bytes
 * follow, because the last chunk (flagged in its nonce) may be full: an input
 * of exactly 64 KiB is one full last chunk, never a full chunk and an empty one.
 * Whole chunks of a large input are passed on as views, without a copy.
 */
class Chunker {
  private readonly size: number
  private readonly onChunk: (chunk: Uint8Array, out: Array<Uint8Array>) => void
  private readonly carry: Buffer
  private carried = 0

  constructor(size: number, onChunk: (chunk: Uint8Array, out: Array<Uint8Array>) => void) {
    this.size = size
    this.onChunk = onChunk
    this.carry = Buffer.allocUnsafe(size)
  }

  write(input: Uint8Array, out: Array<Uint8Array>): void {
    let offset = 0
    while (offset < input.byteLength) {
      if (this.carried === this.size) {
        this.onChunk(this.carry, out)
        this.carried = 0
      }
      if (this.carried === 0 && input.byteLength - offset > this.size) {
        this.onChunk(input.subarray(offset, offset + this.size), out)
        offset += this.size
        continue
      }
      const n = Math.min(this.size - this.carried, input.byteLength - offset)
      this.carry.set(input.subarray(offset, offset + n), this.carried)
      this.carried += n
      offset += n
    }
  }

  /** What is left: the last chunk (empty for an empty input). */
  rest(): Uint8Array {
    return this.carry.subarray(0, this.carried)
  }
}

/** Encrypts one stream run: a fresh file key, header and nonce per run. */
class Sealer {
  private readonly key: KeyObject
  private readonly blocks: Blocks
  private readonly chunker = new Chunker(chunkBytes, (chunk, out) => this.seal(chunk, false, out))
  private index = 0

  constructor(key: KeyObject, headerAndNonce: Uint8Array) {
    this.key = key
    this.blocks = new Blocks(headerAndNonce)
  }

  write(inputs: ReadonlyArray<Uint8Array>): Array<Uint8Array> {
    const out: Array<Uint8Array> = []
    for (const input of inputs) this.chunker.write(input, out)
    return out
  }

  end(): Array<Uint8Array> {
    const out: Array<Uint8Array> = []
    this.seal(this.chunker.rest(), true, out)
    this.blocks.flush(out)
    return out
  }

  private seal(plain: Uint8Array, last: boolean, out: Array<Uint8Array>): void {
    const cipher = createCipheriv(cipherName, this.key, chunkNonce(this.index, last), { authTagLength: tagBytes })
    const sealed = cipher.update(plain) // a copy: `plain` may be reused by the chunker
    cipher.final()
    this.blocks.add(sealed, out)
    this.blocks.add(cipher.getAuthTag(), out)
    this.index += 1
  }
}

const encryptionFailed = (what: string) => (cause: unknown) =>
  new EncryptionFailed({ message: `${what}: ${cause instanceof Error ? cause.message : String(cause)}` })

const startSealer = (recipients: Recipients): Effect.Effect<Sealer, EncryptionFailed> =>
  Effect.gen(function* () {
    if (!getCiphers().includes(cipherName))
      return yield* new EncryptionFailed({
        message: `this Node's OpenSSL has no ${cipherName} (FIPS mode?), which age encryption needs`
      })
    const { fileKey, header } = yield* Effect.tryPromise({
      try: async () => {
        let fileKey: Uint8Array | undefined
        const encrypter = new Encrypter()
        for (const recipient of recipients) encrypter.addRecipient(recipient)
        // Called with the file key the header is made with (see the module comment); adds no stanza.
        encrypter.addRecipient({
          wrapFileKey: (key) => {
            fileKey = key.slice()
            return []
          }
        })
        const empty = await encrypter.encrypt(new Uint8Array(0))
        // An empty file is the header, then the nonce and one empty sealed chunk (its tag alone).
        return { fileKey, header: empty.subarray(0, empty.byteLength - nonceBytes - tagBytes) }
      },
      catch: encryptionFailed("cannot make the age header")
    })
    const text = Buffer.from(header).toString("latin1")
    if (fileKey?.byteLength !== 16 || !text.startsWith(versionLine) || !text.endsWith("\n"))
      return yield* new EncryptionFailed({ message: "the age library made an unexpected header" })
    const nonce = randomBytes(nonceBytes)
    const key = payloadKey(fileKey, nonce)
    fileKey.fill(0) // only the derived key (inside OpenSSL) is needed from here on
    return new Sealer(key, Buffer.concat([header, nonce]))
  })

/**
 * Encrypts a byte stream with age to `recipients`, as it flows: 64 KiB chunks
 * sealed with ChaCha20-Poly1305, emitted in blocks of about 1 MiB (the first
 * one led by the header), memory bounded by about two blocks whatever the
 * size, pulling input only as fast as the output is consumed. Each run of the
 * stream has its own file key. The input's failures come out unchanged;
 * interrupting the stream leaves nothing behind (it holds no resources).
 *
 * @example
 * ```ts
 * declare const dump: Stream.Stream<Uint8Array, Error>
 * declare const recipients: Recipients
 * const stored: Stream.Stream<Uint8Array, Error | EncryptionFailed> = dump.pipe(encryptStream(recipients))
 * ```
 */
export const encryptStream =
  (recipients: Recipients) =>
  <E, R>(self: Stream.Stream<Uint8Array, E, R>): Stream.Stream<Uint8Array, E | EncryptionFailed, R> =>
    Stream.unwrap(
      Effect.map(startSealer(recipients), (sealer) =>
        self.pipe(
          Stream.mapAccumArrayEffect(
            () => undefined,
            (state, inputs) =>
              Effect.try({
                try: () => [state, sealer.write(inputs)] as const,
                catch: encryptionFailed("age encryption failed")
              })
          ),
          Stream.concat(
            Stream.fromIterableEffect(
              Effect.try({ try: () => sealer.end(), catch: encryptionFailed("age encryption failed") })
            )
          )
        )
      )
    )

// ---------------------------------------------------------------------------
// Decryption

/**
 * The identities in an age key file (as written by `age-keygen`): every line
 * that is neither blank nor a `#` comment. {@link decryptStream} checks them.
 *
 * @example
 * ```ts
 * declare const keyFile: string // "# created: …\n# public key: age1…\nAGE-SECRET-KEY-1…\n"
 * const identities: ReadonlyArray<string> = identitiesFromKeyFile(keyFile)
 * ```
 */
export const identitiesFromKeyFile = (text: string): ReadonlyArray<string> =>
  text
    .split(/\r?\n/u)
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"))

const decryptionFailed = (kind: DecryptionFailure, message: string, offset?: number) =>
  new DecryptionFailed(offset === undefined ? { kind, message } : { kind, message, offset })

const makeDecrypter = (identities: ReadonlyArray<string>): Effect.Effect<Decrypter, DecryptionFailed> =>
  Effect.suspend(() => {
    if (identities.length === 0)
      return Effect.fail(decryptionFailed("InvalidIdentity", "no age identity is given to decrypt with"))
    const decrypter = new Decrypter()
    for (const [index, identity] of identities.entries()) {
      const which = `identity ${index + 1}`
      if (/^age1/iu.test(identity))
        return Effect.fail(
          decryptionFailed(
            "InvalidIdentity",
            `${which} is a public recipient (age1…): decrypting needs its private identity (AGE-SECRET-KEY-1…)`
          )
        )
      try {
        decrypter.addIdentity(identity)
      } catch {
        // Never echoed: it is (meant to be) a secret.
        return Effect.fail(
          decryptionFailed(
            "InvalidIdentity",
            `${which} is not a valid age identity (expected AGE-SECRET-KEY-1… or AGE-SECRET-KEY-PQ-1…)`
          )
        )
      }
    }
    return Effect.succeed(decrypter)
  })

/** The recipient types of a header's stanzas, for a readable "no identity matches" message. */
const stanzaTypes = (header: string): string =>
  header
    .split("\n")
    .filter((line) => line.startsWith("-> "))
    .map((line) => line.split(" ")[1] ?? "?")
    .join(", ")

/** Decrypts one stream run: header, then nonce, then STREAM chunks. */
class Opener {
  private readonly blocks = new Blocks()
  private readonly chunker = new Chunker(sealedChunkBytes, (chunk, out) => this.open(chunk, false, out))
  /** Bytes before the payload key is known (the header, then the nonce). */
  private pending: Buffer = Buffer.alloc(0)
  private header: { readonly bytes: number; readonly fileKey: Uint8Array } | undefined
  private key: KeyObject | undefined
  private index = 0
  private readonly decrypter: Decrypter

  constructor(decrypter: Decrypter) {
    this.decrypter = decrypter
  }

  write(inputs: ReadonlyArray<Uint8Array>): Effect.Effect<Array<Uint8Array>, DecryptionFailed> {
    return Effect.gen({ self: this }, function* () {
      const out: Array<Uint8Array> = []
      for (const input of inputs) {
        if (this.key !== undefined) {
          yield* this.sync(() => this.chunker.write(input, out))
          continue
        }
        this.pending = Buffer.concat([this.pending, input])
        if (this.header === undefined) this.header = yield* this.readHeader()
        if (this.header !== undefined && this.pending.byteLength >= nonceBytes) {
          this.key = payloadKey(this.header.fileKey, this.pending.subarray(0, nonceBytes))
          this.header.fileKey.fill(0) // only the derived key (inside OpenSSL) is needed from here on
          const rest = this.pending.subarray(nonceBytes)
          this.pending = Buffer.alloc(0)
          yield* this.sync(() => this.chunker.write(rest, out))
        }
      }
      return out
    })
  }

  end(): Effect.Effect<Array<Uint8Array>, DecryptionFailed> {
    return Effect.gen({ self: this }, function* () {
      if (this.header === undefined) {
        if (this.pending.byteLength === 0) return yield* decryptionFailed("NotAgeFile", "the backup is empty")
        if (!this.startsLikeAge()) return yield* this.notAge()
        return yield* decryptionFailed("Truncated", "the backup is truncated: it ends inside its age header")
      }
      if (this.key === undefined)
        return yield* decryptionFailed("Truncated", "the backup is truncated: it ends before its encrypted data")
      const out: Array<Uint8Array> = []
      yield* this.sync(() => {
        this.open(this.chunker.rest(), true, out)
        this.blocks.flush(out)
      })
      return out
    })
  }

  private startsLikeAge(): boolean {
    return versionLine.startsWith(this.pending.subarray(0, versionLine.length).toString("latin1"))
  }

  private notAge(): DecryptionFailed {
    return decryptionFailed(
      "NotAgeFile",
      this.pending.subarray(0, 5).toString("latin1") === "-----"
        ? "the backup is ASCII-armored age (PEM): only binary age files are read"
        : "the backup is not an age-encrypted file (it does not start with age-encryption.org/v1)"
    )
  }

  /**
   * Once what has come so far holds the whole header (up to its `--- MAC`
   * line), unwraps the file key with the identities and checks the MAC;
   * `undefined` while more is needed.
   */
  private readHeader(): Effect.Effect<
    { readonly bytes: number; readonly fileKey: Uint8Array } | undefined,
    DecryptionFailed
  > {
    return Effect.gen({ self: this }, function* () {
      if (!this.startsLikeAge()) return yield* this.notAge()
      // Stanza lines start with "-> " and their bodies are base64: the first "\n--- " starts the MAC line.
      const mac = this.pending.indexOf("\n--- ")
      const end = mac === -1 ? -1 : this.pending.indexOf("\n", mac + 1)
      if (end === -1) {
        if (this.pending.byteLength > maxHeaderBytes)
          return yield* decryptionFailed(
            "HeaderCorrupted",
            `the backup's age header is longer than ${maxHeaderBytes} bytes`
          )
        return undefined
      }
      const header = this.pending.subarray(0, end + 1)
      const decrypter = this.decrypter
      const fileKey = yield* Effect.tryPromise({
        try: () => decrypter.decryptHeader(header),
        catch: (cause) => {
          const reason = cause instanceof Error ? cause.message : String(cause)
          if (reason.includes("no identity matched"))
            return decryptionFailed(
              "NoMatchingIdentity",
              `no identity matches any recipient of this backup (its header has stanzas for: ${stanzaTypes(header.toString("latin1"))})`
            )
          if (reason.includes("HMAC"))
            return decryptionFailed(
              "HeaderCorrupted",
              "the backup's age header is corrupted or was modified (its MAC does not match)"
            )
          return decryptionFailed("HeaderCorrupted", `the backup's age header is invalid: ${reason}`)
        }
      })
      this.pending = this.pending.subarray(end + 1)
      return { bytes: end + 1, fileKey }
    })
  }

  /** Runs chunk work, which throws a DecryptionFailed for a bad chunk. */
  private sync(f: () => void): Effect.Effect<void, DecryptionFailed> {
    return Effect.try({
      try: f,
      catch: (cause) =>
        cause instanceof DecryptionFailed
          ? cause
          : decryptionFailed(
              "PayloadCorrupted",
              `age decryption failed: ${cause instanceof Error ? cause.message : String(cause)}`
            )
    })
  }

  /** The plaintext of a sealed chunk if it authenticates as chunk `index` (last or not), else undefined. */
  private tryOpen(sealed: Uint8Array, index: number, last: boolean): Buffer | undefined {
    if (sealed.byteLength < tagBytes || this.key === undefined) return undefined
    const decipher = createDecipheriv(cipherName, this.key, chunkNonce(index, last), { authTagLength: tagBytes })
    decipher.setAuthTag(sealed.subarray(sealed.byteLength - tagBytes))
    const plain = decipher.update(sealed.subarray(0, sealed.byteLength - tagBytes))
    try {
      decipher.final() // checks the tag: `plain` is only used past this line
    } catch {
      return undefined
    }
    return plain
  }

  private open(sealed: Uint8Array, last: boolean, out: Array<Uint8Array>): void {
    const start = (this.header?.bytes ?? 0) + nonceBytes + this.index * sealedChunkBytes
    const plain = this.tryOpen(sealed, this.index, last)
    if (plain === undefined) {
      const end = start + sealed.byteLength
      if (!last && this.tryOpen(sealed, this.index, true) !== undefined)
        throw decryptionFailed("TrailingData", `the backup has unexpected data after its end (at byte ${end})`, end)
      if (last && sealed.byteLength === sealedChunkBytes && this.tryOpen(sealed, this.index, false) !== undefined)
        throw decryptionFailed(
          "Truncated",
          `the backup is truncated: it ends at byte ${end}, where more data should follow`,
          end
        )
      if (last && sealed.byteLength < tagBytes)
        throw decryptionFailed(
          "Truncated",
          `the backup is truncated: it ends at byte ${end}, ${sealed.byteLength === 0 ? "where its encrypted data should start" : "inside an encrypted chunk"}`,
          end
        )
      if (last)
        throw decryptionFailed(
          "PayloadCorrupted",
          `the backup is corrupted, modified or truncated: its last encrypted chunk, at bytes ${start}-${end - 1}, fails authentication`,
          start
        )
      throw decryptionFailed(
        "PayloadCorrupted",
        `the backup is corrupted or was modified at bytes ${start}-${end - 1} (that encrypted chunk fails authentication)`,
        start
      )
    }
    if (last && plain.byteLength === 0 && this.index > 0)
      throw decryptionFailed(
        "PayloadCorrupted",
        `the backup is corrupted: it ends with an empty chunk at byte ${start}`,
        start
      )
    this.blocks.add(plain, out)
    this.index += 1
  }
}

/**
 * Decrypts an age-encrypted byte stream with `identities` (`AGE-SECRET-KEY-1…`
 * or `AGE-SECRET-KEY-PQ-1…`), as it flows, in blocks of about 1 MiB. Only
 * authenticated plaintext is ever emitted: a wrong identity fails before any
 * output, and a changed, missing or added byte fails with a
 * {@link DecryptionFailed} saying where, before the plaintext of the chunk
 * concerned. The input's failures come out unchanged.
 *
 * @example
 * ```ts
 * declare const stored: Stream.Stream<Uint8Array, Error>
 * declare const keyFile: string
 * const dump = stored.pipe(decryptStream(identitiesFromKeyFile(keyFile)))
 * const program: Effect.Effect<void, Error | DecryptionFailed> = Stream.runDrain(dump)
 * ```
 */
export const decryptStream =
  (identities: ReadonlyArray<string>) =>
  <E, R>(self: Stream.Stream<Uint8Array, E, R>): Stream.Stream<Uint8Array, E | DecryptionFailed, R> =>
    Stream.unwrap(
      Effect.map(makeDecrypter(identities), (decrypter) => {
        const opener = new Opener(decrypter)
        return self.pipe(
          Stream.mapAccumArrayEffect(
            () => undefined,
            (state, inputs) => Effect.map(opener.write(inputs), (out) => [state, out] as const)
          ),
          Stream.concat(Stream.fromIterableEffect(Effect.suspend(() => opener.end())))
        )
      })
    )
