import { createHash, randomBytes } from "node:crypto"
import { describe, expect, it } from "@effect/vitest"
import * as age from "age-encryption"
import { Cause, Effect, Exit, Fiber, Latch, Schema, Stream } from "effect"
import { blockBytes } from "../src/compress.ts"
import {
  DecryptionFailed,
  decryptStream,
  EncryptionMetadata,
  encryptionMetadata,
  encryptStream,
  InvalidRecipient,
  identitiesFromKeyFile,
  maxRecipients,
  parseRecipients,
  type Recipients
} from "../src/encrypt.ts"

const KiB = 1024
const MiB = 1024 * KiB
const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")
const concat = (parts: ReadonlyArray<Uint8Array>) => Buffer.concat(parts)

const marker = Buffer.from("CREATE TABLE plaintext_marker_7f3a (secret text);")

/** `n` bytes: random, with the marker written every ~100 KiB so the ciphertext can be searched for it. */
const plaintext = (n: number): Buffer => {
  const bytes = randomBytes(n)
  for (let at = 0; at + marker.byteLength <= n; at += 100 * KiB + 13) marker.copy(bytes, at)
  return bytes
}

/** Cuts `bytes` into irregular pieces (1 byte to ~300 KiB, some empty), deterministically. */
const irregular = (bytes: Uint8Array): ReadonlyArray<Uint8Array> => {
  const pieces: Array<Uint8Array> = []
  let seed = 12345
  let offset = 0
  while (offset < bytes.byteLength) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31
    const size = seed % 7 === 0 ? 0 : seed % 5 === 0 ? 1 + (seed % 17) : seed % (300 * KiB)
    pieces.push(bytes.subarray(offset, offset + size))
    offset += size
  }
  return pieces
}

/** Bytes before the payload: the header (up to its `--- MAC` line) and the 16-byte nonce. */
const payloadStart = (ciphertext: Buffer): number => ciphertext.indexOf("\n", ciphertext.indexOf("\n--- ") + 1) + 1 + 16

const newKey = Effect.promise(async () => {
  const identity = await age.generateIdentity()
  return { identity, recipient: await age.identityToRecipient(identity) }
})

const recipientsOf = (...keys: ReadonlyArray<string>): Effect.Effect<Recipients, InvalidRecipient> =>
  parseRecipients(keys.join("\n"))

// Pieces are pulled one at a time (rechunk(1)), as from a process or a download.
const encrypt = (recipients: Recipients, pieces: ReadonlyArray<Uint8Array>) =>
  Stream.fromIterable(pieces).pipe(Stream.rechunk(1), encryptStream(recipients), Stream.runCollect)

/** Decrypts, keeping what was emitted before a failure. */
const decrypt = (identities: ReadonlyArray<string>, pieces: ReadonlyArray<Uint8Array>) =>
  Effect.gen(function* () {
    const emitted: Array<Uint8Array> = []
    const exit = yield* Stream.fromIterable(pieces).pipe(
      Stream.rechunk(1),
      decryptStream(identities),
      Stream.runForEach((block) => Effect.sync(() => emitted.push(block))),
      Effect.exit
    )
    return { emitted: concat(emitted), exit }
  })

const decryptionError = (exit: Exit.Exit<unknown, unknown>): DecryptionFailed => {
  if (Exit.isSuccess(exit)) throw new Error("decryption succeeded")
  const error = Cause.squash(exit.cause)
  if (!(error instanceof DecryptionFailed)) throw new Error(`not a DecryptionFailed: ${String(error)}`)
  return error
}

/** age's reference implementation (the library's own decryption), independent of decryptStream's STREAM code. */
const referenceDecrypt = (identity: string, ciphertext: Uint8Array) =>
  Effect.promise(() => {
    const decrypter = new age.Decrypter()
    decrypter.addIdentity(identity)
    return decrypter.decrypt(ciphertext)
  })

describe("encryptStream / decryptStream", () => {
  it.effect.each([
    { name: "0 bytes", size: 0 },
    { name: "1 byte", size: 1 },
    { name: "exactly 64 KiB", size: 64 * KiB },
    { name: "64 KiB + 1", size: 64 * KiB + 1 },
    { name: "5 MiB in irregular pieces", size: 5 * MiB }
  ])("round trip: $name", ({ size }) =>
    Effect.gen(function* () {
      const { identity, recipient } = yield* newKey
      const input = plaintext(size)
      const blocks = yield* encrypt(yield* recipientsOf(recipient), irregular(input))
      const ciphertext = concat(blocks)

      // age's size: one 16-byte tag per 64 KiB chunk, and at least one chunk.
      const chunks = Math.max(1, Math.ceil(size / (64 * KiB)))
      expect(ciphertext.byteLength).toBe(payloadStart(ciphertext) + size + 16 * chunks)
      expect(ciphertext.subarray(0, 22).toString()).toBe("age-encryption.org/v1\n")
      if (size >= marker.byteLength) expect(input.includes(marker)).toBe(true)
      expect(ciphertext.includes(marker)).toBe(false)
      // Blocks of about 1 MiB, whatever the input's pieces: every block but the last is at least 1 MiB.
      for (const block of blocks.slice(0, -1)) expect(block.byteLength).toBeGreaterThanOrEqual(blockBytes)
      for (const block of blocks) expect(block.byteLength).toBeLessThan(blockBytes + 64 * KiB + 1024)

      const { emitted, exit } = yield* decrypt([identity], irregular(ciphertext))
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(sha256(emitted)).toBe(sha256(input))
      expect(sha256(yield* referenceDecrypt(identity, ciphertext))).toBe(sha256(input))
    })
  )

  it.effect("a file encrypted by the age library decrypts, fed byte by byte at its start", () =>
    Effect.gen(function* () {
      const { identity, recipient } = yield* newKey
      const input = plaintext(3 * 64 * KiB)
      const encrypter = new age.Encrypter()
      encrypter.addRecipient(recipient)
      const ciphertext = Buffer.from(yield* Effect.promise(() => encrypter.encrypt(input)))
      const pieces = [...Array.from({ length: 300 }, (_, i) => ciphertext.subarray(i, i + 1)), ciphertext.subarray(300)]
      const { emitted, exit } = yield* decrypt([identity], pieces)
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(emitted.equals(input)).toBe(true)
    })
  )

  it.effect("two recipients: each identity alone decrypts", () =>
    Effect.gen(function* () {
      const alice = yield* newKey
      const bob = yield* newKey
      const input = plaintext(200 * KiB)
      const ciphertext = concat(yield* encrypt(yield* recipientsOf(alice.recipient, bob.recipient), [input]))
      for (const { identity } of [alice, bob]) {
        const { emitted, exit } = yield* decrypt([identity], [ciphertext])
        expect(Exit.isSuccess(exit)).toBe(true)
        expect(emitted.equals(input)).toBe(true)
        expect(Buffer.from(yield* referenceDecrypt(identity, ciphertext)).equals(input)).toBe(true)
      }
    })
  )

  it.effect("a post-quantum hybrid recipient (age1pq1…) round-trips", () =>
    Effect.gen(function* () {
      const identity = yield* Effect.promise(() => age.generateHybridIdentity())
      const recipient = yield* Effect.promise(() => age.identityToRecipient(identity))
      expect(recipient.startsWith("age1pq1")).toBe(true)
      const input = plaintext(100 * KiB)
      const ciphertext = concat(yield* encrypt(yield* recipientsOf(recipient), [input]))
      const { emitted } = yield* decrypt([identity], [ciphertext])
      expect(emitted.equals(input)).toBe(true)
    })
  )

  it.effect("every run has its own file key: the same stream run twice gives two different ciphertexts", () =>
    Effect.gen(function* () {
      const { identity, recipient } = yield* newKey
      const input = plaintext(10 * KiB)
      const stream = Stream.make(input).pipe(encryptStream(yield* recipientsOf(recipient)))
      const first = concat(yield* Stream.runCollect(stream))
      const second = concat(yield* Stream.runCollect(stream))
      expect(first.equals(second)).toBe(false)
      expect((yield* decrypt([identity], [first])).emitted.equals(input)).toBe(true)
      expect((yield* decrypt([identity], [second])).emitted.equals(input)).toBe(true)
    })
  )

  it.effect("a wrong identity fails with NoMatchingIdentity before emitting anything", () =>
    Effect.gen(function* () {
      const owner = yield* newKey
      const stranger = yield* newKey
      const ciphertext = concat(yield* encrypt(yield* recipientsOf(owner.recipient), [plaintext(300 * KiB)]))
      const { emitted, exit } = yield* decrypt([stranger.identity], [ciphertext])
      const error = decryptionError(exit)
      expect(error.kind).toBe("NoMatchingIdentity")
      expect(error.message).toContain("no identity matches any recipient of this backup")
      expect(emitted.byteLength).toBe(0)
    })
  )

  it.effect("a flipped byte fails where it is, and the changed chunk's plaintext is never emitted", () =>
    Effect.gen(function* () {
      const { identity, recipient } = yield* newKey
      const input = plaintext(3 * MiB)
      const ciphertext = concat(yield* encrypt(yield* recipientsOf(recipient), [input]))
      const start = payloadStart(ciphertext)
      const sealed = 64 * KiB + 16
      const chunk = 20 // past the first 1 MiB output block, so some plaintext does come out before the failure
      const tampered = Buffer.from(ciphertext)
      const at = start + chunk * sealed + 1000
      tampered.writeUInt8(tampered.readUInt8(at) ^ 1, at)
      const { emitted, exit } = yield* decrypt([identity], irregular(tampered))
      const error = decryptionError(exit)
      expect(error.kind).toBe("PayloadCorrupted")
      expect(error.offset).toBe(start + chunk * sealed)
      expect(error.message).toContain(`corrupted or was modified at bytes ${start + chunk * sealed}-`)
      // What came out is authenticated plaintext from before the changed chunk, nothing of it or after it.
      expect(emitted.byteLength).toBeGreaterThan(0)
      expect(emitted.byteLength).toBeLessThanOrEqual(chunk * 64 * KiB)
      expect(emitted.equals(input.subarray(0, emitted.byteLength))).toBe(true)
    })
  )

  it.effect("a changed header fails with HeaderCorrupted before emitting anything", () =>
    Effect.gen(function* () {
      const { identity, recipient } = yield* newKey
      const ciphertext = concat(yield* encrypt(yield* recipientsOf(recipient), [plaintext(100 * KiB)]))
      const tampered = Buffer.from(ciphertext)
      // The stanza's argument line: "-> X25519 <share>"; change one base64 character of the share.
      const share = tampered.indexOf("-> X25519 ") + 12
      tampered[share] = tampered[share] === 0x41 ? 0x42 : 0x41
      const { emitted, exit } = yield* decrypt([identity], [tampered])
      expect(["HeaderCorrupted", "NoMatchingIdentity"]).toContain(decryptionError(exit).kind)
      expect(emitted.byteLength).toBe(0)
      const macChanged = Buffer.from(ciphertext)
      const mac = macChanged.indexOf("\n--- ") + 6
      macChanged[mac] = macChanged[mac] === 0x41 ? 0x42 : 0x41
      const second = yield* decrypt([identity], [macChanged])
      expect(decryptionError(second.exit).kind).toBe("HeaderCorrupted")
      expect(decryptionError(second.exit).message).toContain("MAC")
      expect(second.emitted.byteLength).toBe(0)
    })
  )

  it.effect("cut data is Truncated or a failing last chunk; data appended after the end is TrailingData", () =>
    Effect.gen(function* () {
      const { identity, recipient } = yield* newKey
      const input = plaintext(3 * 64 * KiB)
      const ciphertext = concat(yield* encrypt(yield* recipientsOf(recipient), [input]))
      const cut = ciphertext.subarray(0, payloadStart(ciphertext) + 2 * (64 * KiB + 16))
      const truncated = yield* decrypt([identity], [cut])
      expect(decryptionError(truncated.exit).kind).toBe("Truncated")
      expect(truncated.emitted.byteLength).toBeLessThanOrEqual(64 * KiB)

      const lastByteMissing = yield* decrypt([identity], [ciphertext.subarray(0, ciphertext.byteLength - 1)])
      expect(decryptionError(lastByteMissing.exit).message).toContain("its last encrypted chunk")
      expect(lastByteMissing.emitted.equals(input.subarray(0, lastByteMissing.emitted.byteLength))).toBe(true)
      expect(lastByteMissing.emitted.byteLength).toBeLessThan(input.byteLength)

      const appended = yield* decrypt([identity], [ciphertext, Uint8Array.of(0)])
      expect(decryptionError(appended.exit).kind).toBe("TrailingData")

      const headerOnly = yield* decrypt([identity], [ciphertext.subarray(0, payloadStart(ciphertext) - 16)])
      expect(decryptionError(headerOnly.exit).kind).toBe("Truncated")
    })
  )

  it.effect("data that is not age fails with NotAgeFile", () =>
    Effect.gen(function* () {
      const { identity } = yield* newKey
      const gzip = yield* decrypt([identity], [Uint8Array.of(0x1f, 0x8b, 8, 0, 0, 0)])
      expect(decryptionError(gzip.exit).kind).toBe("NotAgeFile")
      const armored = yield* decrypt([identity], [Buffer.from("-----BEGIN AGE ENCRYPTED FILE-----\n")])
      expect(decryptionError(armored.exit).message).toContain("ASCII-armored")
      const empty = yield* decrypt([identity], [])
      expect(decryptionError(empty.exit).kind).toBe("NotAgeFile")
    })
  )

  it.effect("identities are checked before reading, and never echoed", () =>
    Effect.gen(function* () {
      const { identity, recipient } = yield* newKey
      // One character changed (to another of bech32's): the checksum no longer matches.
      const mistyped = `${identity.slice(0, 20)}${identity[20] === "Q" ? "P" : "Q"}${identity.slice(21)}`
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
        [[], "no age identity"],
        [[recipient], "identity 1 is a public recipient"],
        [[identity, mistyped], "identity 2 is not a valid age identity"]
      ]
      for (const [identities, message] of cases) {
        const error = decryptionError((yield* decrypt(identities, [Uint8Array.of(1)])).exit)
        expect(error.kind).toBe("InvalidIdentity")
        expect(error.message).toContain(message)
        expect(error.message).not.toContain(identity.slice(16, 30))
      }
    })
  )

  it.effect("identitiesFromKeyFile reads age-keygen's format", () =>
    Effect.sync(() => {
      const file =
        "# created: 2025-01-01T00:00:00Z\n# public key: age1abc\nAGE-SECRET-KEY-1AAA\n\n  AGE-SECRET-KEY-1BBB  \r\n"
      expect(identitiesFromKeyFile(file)).toEqual(["AGE-SECRET-KEY-1AAA", "AGE-SECRET-KEY-1BBB"])
    })
  )

  it.effect("the input's own failure comes out unchanged, through encryption and decryption", () =>
    Effect.gen(function* () {
      class SourceBroke extends Schema.TaggedError<SourceBroke>()("SourceBroke", { message: Schema.String }) {}
      const { identity, recipient } = yield* newKey
      const failing = Stream.make(plaintext(2 * MiB)).pipe(
        Stream.concat(Stream.fail(new SourceBroke({ message: "pg_dump died" })))
      )
      const encrypted = yield* failing.pipe(encryptStream(yield* recipientsOf(recipient)), Stream.runDrain, Effect.flip)
      expect(encrypted).toBeInstanceOf(SourceBroke)
      const ciphertext = concat(yield* encrypt(yield* recipientsOf(recipient), [plaintext(2 * MiB)]))
      const decrypted = yield* Stream.make(ciphertext.subarray(0, MiB)).pipe(
        Stream.concat(Stream.fail(new SourceBroke({ message: "download broke" }))),
        decryptStream([identity]),
        Stream.runDrain,
        Effect.flip
      )
      expect(decrypted).toBeInstanceOf(SourceBroke)
    })
  )

  it.effect("reads ahead by at most a block or two, and stopping or interrupting releases the input", () =>
    Effect.gen(function* () {
      const { recipient } = yield* newKey
      const recipients = yield* recipientsOf(recipient)
      const block = randomBytes(MiB)
      let pulled = 0
      let released = 0
      const fivePulled = yield* Latch.make()
      const endless = Stream.unfold(0, (n) =>
        Effect.sync(() => {
          pulled += 1
          if (pulled === 5) fivePulled.openUnsafe()
          return [block, n + 1] as const
        })
      ).pipe(Stream.ensuring(Effect.sync(() => (released += 1))))

      // Backpressure: taking 2 output blocks pulls only about 2 input blocks, though the input never ends.
      const two = yield* endless.pipe(encryptStream(recipients), Stream.take(2), Stream.runCollect)
      expect(two.length).toBe(2)
      expect(pulled).toBeLessThanOrEqual(4)
      expect(released).toBe(1)

      // Interrupted while encrypting: the input's finalizer runs.
      pulled = 0
      const running = yield* endless.pipe(encryptStream(recipients), Stream.runDrain, Effect.forkChild)
      yield* fivePulled.await
      yield* Fiber.interrupt(running)
      expect(released).toBe(2)

      // Interrupted while waiting for input (a slow pg_dump): the same.
      const stalledAfterOne = yield* Latch.make()
      const stalled = Stream.make(block).pipe(
        Stream.concat(Stream.fromEffectDrain(stalledAfterOne.open)),
        Stream.concat(Stream.never),
        Stream.ensuring(Effect.sync(() => (released += 1)))
      )
      const waiting = yield* stalled.pipe(encryptStream(recipients), Stream.runDrain, Effect.forkChild)
      yield* stalledAfterOne.await
      yield* Fiber.interrupt(waiting)
      expect(released).toBe(3)
    })
  )
})

describe("parseRecipients", () => {
  const x25519 = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p" // from age's documentation
  const second = "age1lggyhqrw2nlhcxprm67z43rta597azn8gknawjehu9d9dl0jq3yqqvfafg"
  const secret = "AGE-SECRET-KEY-1QYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGP"

  it.effect.each([
    {
      name: "one per line, comments and blank lines",
      text: `# ops\n${x25519}\n\n  # laptop\n${second}\n`,
      want: [x25519, second]
    },
    { name: "comma-separated on one line", text: `${x25519}, ${second}`, want: [x25519, second] },
    { name: "a comment after a recipient", text: `${x25519} # ops team`, want: [x25519] },
    {
      name: "duplicates removed, first kept",
      text: `${second}\n${x25519},${second}\n${x25519}`,
      want: [second, x25519]
    },
    { name: "written in capitals", text: x25519.toUpperCase(), want: [x25519] },
    { name: "Windows line ends", text: `${x25519}\r\n${second}\r\n`, want: [x25519, second] }
  ])("valid: $name", ({ text, want }) =>
    Effect.gen(function* () {
      expect([...(yield* parseRecipients(text))]).toEqual(want)
    })
  )

  it.effect("valid: a post-quantum recipient", () =>
    Effect.gen(function* () {
      const pq = yield* Effect.promise(async () => age.identityToRecipient(await age.generateHybridIdentity()))
      expect([...(yield* parseRecipients(`${x25519}\n${pq}`))]).toEqual([x25519, pq])
    })
  )

  const broken = `${x25519.slice(0, -1)}q` // one character changed: bad checksum

  it.effect.each([
    { name: "empty", text: "", message: "no age recipient is given" },
    { name: "only comments", text: "# nothing here\n\n", message: "no age recipient is given" },
    { name: "bad checksum", text: `${x25519}\n${broken}`, entry: 2, line: 2, message: "recipient 2 (line 2)" },
    { name: "not age at all", text: "ssh-ed25519", entry: 1, line: 1, message: "is not an age recipient" },
    { name: "a plugin recipient", text: "age1yubikey1qwerty", entry: 1, line: 1, message: "plugin or hardware-key" },
    { name: "a secret key", text: `# mine\n${x25519}\n${secret}`, entry: 2, line: 3, message: "private age identity" },
    { name: "a lower-case secret key", text: secret.toLowerCase(), entry: 1, line: 1, message: "private age identity" }
  ])("invalid: $name", ({ text, entry, line, message }) =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(parseRecipients(text))
      expect(error).toBeInstanceOf(InvalidRecipient)
      expect(error.message).toContain(message)
      expect(error.entry).toBe(entry)
      expect(error.line).toBe(line)
      // At most the first characters of an entry are shown, never a secret's key material.
      expect(error.message).not.toContain(broken)
      expect(error.message.toUpperCase()).not.toContain(secret.slice(15, 30))
    })
  )

  it.effect("a bad entry is shown by its first characters only", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(parseRecipients(broken))
      expect(error.message).toContain(`"${broken.slice(0, 12)}…"`)
    })
  )

  it.effect(`at most ${maxRecipients} recipients`, () =>
    Effect.gen(function* () {
      const keys = yield* Effect.forEach(Array.from({ length: maxRecipients + 1 }), () => newKey)
      const all = keys.map((key) => key.recipient)
      expect((yield* parseRecipients(all.slice(0, maxRecipients).join("\n"))).length).toBe(maxRecipients)
      const error = yield* Effect.flip(parseRecipients(all.join("\n")))
      expect(error.message).toContain(`at most ${maxRecipients}`)
    })
  )
})

describe("encryptionMetadata", () => {
  it.effect("records the format and the recipients, in a form the manifest schema reads back", () =>
    Effect.gen(function* () {
      const { recipient } = yield* newKey
      const metadata = encryptionMetadata(yield* recipientsOf(recipient))
      expect(metadata).toEqual({ format: "age", recipients: [recipient] })
      const json = JSON.parse(JSON.stringify(metadata))
      expect(yield* Schema.decodeUnknownEffect(EncryptionMetadata)(json)).toEqual(metadata)
    })
  )
})
