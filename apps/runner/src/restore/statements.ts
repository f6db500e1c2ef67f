import { Stream } from "effect"

/**
 * What a restore leaves out of a plain-format dump, statement by statement.
 * pg_dump writes every ownership change, grant and schema creation as one
 * top-level statement of its own; a restore into a database where the dump's
 * roles do not exist must skip them (as `pg_restore --no-owner
 * --no-privileges` does for the custom format).
 */
export interface StatementRules {
  /** Skip `ALTER … OWNER TO …`: every object belongs to the user that restores. */
  readonly noOwner: boolean
  /** Skip `GRANT`, `REVOKE` and `ALTER DEFAULT PRIVILEGES`. */
  readonly noPrivileges: boolean
  /** Skip the dump's `CREATE SCHEMA` of this schema: the restore has created it itself. */
  readonly createdSchema?: string | undefined
  /**
   * Skip `SET` of these settings: ones the target server does not have (pg_dump 17
   * writes `SET transaction_timeout = 0;`, which a PostgreSQL 16 or older refuses).
   */
  readonly unknownSettings?: ReadonlyArray<string> | undefined
}

/** Whether any rule drops anything: without one the dump goes to psql untouched. */
export const dropsAnything = (rules: StatementRules): boolean =>
  rules.noOwner || rules.noPrivileges || rules.createdSchema !== undefined || (rules.unknownSettings ?? []).length > 0

/** The settings pg_dump writes `SET` for that came after PostgreSQL 12, with the server version that has each. */
const settingsSince: ReadonlyArray<readonly [setting: string, versionNum: number]> = [["transaction_timeout", 170000]]

/**
 * The settings a dump may `SET` that a server of `serverVersionNum` does not
 * know, for {@link StatementRules.unknownSettings}.
 *
 * @example
 * ```ts
 * unknownSettingsOf(150018) // ["transaction_timeout"]
 * unknownSettingsOf(170002) // []
 * ```
 */
export const unknownSettingsOf = (serverVersionNum: number): ReadonlyArray<string> =>
  settingsSince.filter(([, since]) => serverVersionNum < since).map(([setting]) => setting)

// Leading whitespace and comments, which belong to no statement.
const leadingTrivia = /^(?:\s+|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*/u
const identifier = `(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)`
const ownerTo = new RegExp(String.raw`^ALTER\s[\s\S]*\sOWNER\s+TO\s+${identifier}\s*;\s*$`, "iu")
const privileges = /^(?:GRANT|REVOKE|ALTER\s+DEFAULT\s+PRIVILEGES)\s/iu
const createSchema = new RegExp(String.raw`^CREATE\s+SCHEMA\s+(${identifier})\s*;\s*$`, "iu")
const setting = /^SET\s+([A-Za-z_][A-Za-z0-9_.]*)\s*(?:=|TO)\s*[^;]*;\s*$/iu
const copyFromStdin = /^COPY\s[\s\S]*\sFROM\s+stdin\s*;\s*$/iu

const unquote = (name: string): string => (name.startsWith('"') ? name.slice(1, -1).replaceAll('""', '"') : name)

/** A statement's text without the comments and whitespace before it. */
const significant = (statement: string): string => statement.replace(leadingTrivia, "")

/**
 * Whether a restore keeps one complete top-level statement (its text as the
 * dump has it, with the comments before it).
 *
 * @example
 * ```ts
 * const rules = { noOwner: true, noPrivileges: false }
 * keeps(rules, "\nALTER TABLE shop.orders OWNER TO app;") // false
 * keeps(rules, "GRANT SELECT ON TABLE shop.orders TO reporting;") // true
 * ```
 */
export const keeps = (rules: StatementRules, statement: string): boolean => {
  const text = significant(statement)
  if (rules.noOwner && ownerTo.test(text)) return false
  if (rules.noPrivileges && privileges.test(text)) return false
  const set = rules.unknownSettings === undefined ? undefined : setting.exec(text)?.[1]
  if (set !== undefined && rules.unknownSettings?.includes(set.toLowerCase())) return false
  if (rules.createdSchema !== undefined) {
    const created = createSchema.exec(text)?.[1]
    if (created !== undefined && unquote(created) === rules.createdSchema) return false
  }
  return true
}

/** Where the splitter is in the SQL text. */
const Lex = {
  /** Between tokens of a statement (or between statements). */
  Code: 0,
  /** In a `-- …` comment. */
  LineComment: 1,
  /** In a `/* … *\/` comment (they nest). */
  BlockComment: 2,
  /** In a `'…'` string. */
  Quoted: 3,
  /** In an `E'…'` string, where a backslash escapes the next byte. */
  EscapeQuoted: 4,
  /** In a `"…"` identifier. */
  QuotedIdentifier: 5,
  /** After a `$` that may open a dollar quote: reading its tag. */
  DollarOpen: 6,
  /** In a dollar-quoted string. */
  DollarQuoted: 7,
  /** After a `$` in a dollar-quoted string that may close it: reading its tag. */
  DollarClose: 8,
  /** In a psql meta-command (`\restrict …`), which ends at the end of its line. */
  MetaCommand: 9,
  /** The rest of a `COPY … FROM stdin;` line, before its data. */
  CopyLineEnd: 10,
  /** In the data of a `COPY … FROM stdin;`, which ends with a line `\.`. */
  CopyData: 11
} as const
type Lex = (typeof Lex)[keyof typeof Lex]

const NEWLINE = 0x0a
const isSpace = (byte: number) => byte === 0x20 || (byte >= 0x09 && byte <= 0x0d)
const isIdentifierStart = (byte: number) =>
  (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) || byte === 0x5f || byte >= 0x80
const isIdentifierByte = (byte: number) => isIdentifierStart(byte) || (byte >= 0x30 && byte <= 0x39) || byte === 0x24

// The end of COPY data: a line `\.`.
const copyEnd = Buffer.from("\n\\.\n")

/**
 * A statement's head is kept in memory until the statement ends, to decide on
 * it. Every statement a rule drops is short; one longer than this (a huge
 * function body, say) is kept, and the rest of it streams through.
 */
export const maxStatementHead = 1024 * 1024

/**
 * Splits a plain-format dump into top-level statements as its bytes arrive,
 * and passes on the ones {@link keeps} keeps, unchanged. It knows what can
 * hide a `;` (strings, quoted identifiers, dollar quotes, comments), psql's
 * meta-commands (`\restrict`), and COPY data, which is passed through as it
 * comes (searched only for its `\.` line).
 */
export class StatementFilter {
  private lex: Lex = Lex.Code
  private previous = 0
  private beforePrevious = 0
  private commentDepth = 0
  /** Whether the statement has anything but whitespace and comments yet. */
  private started = false
  /** {@link started} before the last `-` or `/`, which may have opened a comment. */
  private startedBeforeOpener = false
  /** Whether the string that just ended was an `E'…'` string (for `''` inside one). */
  private escapeString = false
  private tag = ""
  private closing = ""
  /** How much of {@link copyEnd} the data seen so far ends with. */
  private copyMatched = 0
  /** The current statement's bytes, while it is being decided on. */
  private head: Array<Uint8Array> = []
  private headBytes = 0
  /** Its head was too long to keep: the rest of the statement streams through. */
  private streaming = false

  private readonly rules: StatementRules

  constructor(rules: StatementRules) {
    this.rules = rules
  }

  /** Takes the next bytes of the dump; returns the bytes to pass on. */
  push(chunk: Uint8Array): Array<Uint8Array> {
    const out: Array<Uint8Array> = []
    let start = 0
    let i = 0
    const passThrough = () => this.lex === Lex.CopyLineEnd || this.lex === Lex.CopyData || this.streaming
    while (i < chunk.length) {
      if (this.lex === Lex.CopyData) {
        const end = this.findCopyEnd(chunk, i)
        if (end < 0) {
          i = chunk.length
          break
        }
        out.push(chunk.subarray(start, end))
        start = end
        i = end
        this.lex = Lex.Code
        this.previous = NEWLINE
        this.beforePrevious = 0
        continue
      }
      const byte = chunk[i] as number
      i += 1
      if (this.lex === Lex.CopyLineEnd) {
        if (byte === NEWLINE) {
          out.push(chunk.subarray(start, i))
          start = i
          this.lex = Lex.CopyData
          // The data starts on a new line: a `\.` right away ends it.
          this.copyMatched = 1
        }
        continue
      }
      if (this.step(byte)) {
        // The statement ended with this byte.
        if (this.streaming) {
          out.push(chunk.subarray(start, i))
          this.streaming = false
        } else {
          this.keepHead(chunk.subarray(start, i))
          const statement = Buffer.concat(this.head).toString("utf8")
          if (keeps(this.rules, statement)) {
            out.push(...this.head)
            if (copyFromStdin.test(significant(statement))) this.lex = Lex.CopyLineEnd
          }
        }
        this.head = []
        this.headBytes = 0
        this.started = false
        start = i
      }
    }
    if (start < chunk.length) {
      if (passThrough()) out.push(chunk.subarray(start))
      else {
        this.keepHead(chunk.subarray(start))
        if (this.headBytes > maxStatementHead) {
          out.push(...this.head)
          this.head = []
          this.headBytes = 0
          this.streaming = true
        }
      }
    }
    return out
  }

  /** The dump has ended: what is left (an unfinished statement is passed on as it is, for psql to judge). */
  end(): Array<Uint8Array> {
    const rest = this.head
    this.head = []
    this.headBytes = 0
    return rest
  }

  private keepHead(bytes: Uint8Array) {
    if (bytes.length === 0) return
    // A copy: the input's buffers are not ours to hold on to.
    this.head.push(Uint8Array.prototype.slice.call(bytes))
    this.headBytes += bytes.length
  }

  /** Where COPY data that continues in `chunk` at `from` ends (just after its `\.` line), or -1. */
  private findCopyEnd(chunk: Uint8Array, from: number): number {
    let i = from
    // An end that began in the bytes before (or, right after the COPY line, the line start itself).
    while (this.copyMatched > 0 && i < chunk.length) {
      const byte = chunk[i] as number
      i += 1
      if (byte === copyEnd[this.copyMatched]) {
        this.copyMatched += 1
        if (this.copyMatched === copyEnd.length) {
          this.copyMatched = 0
          return i
        }
      } else this.copyMatched = byte === NEWLINE ? 1 : 0
    }
    if (i >= chunk.length) return -1
    const found = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).indexOf(copyEnd, i)
    if (found >= 0) return found + copyEnd.length
    // How much of an end the chunk ends with, to go on with in the next one.
    for (let length = copyEnd.length - 1; length > 0; length--) {
      if (chunk.length - length < i) continue
      let matches = true
      for (let k = 0; k < length && matches; k++) matches = chunk[chunk.length - length + k] === copyEnd[k]
      if (matches) {
        this.copyMatched = length
        break
      }
    }
    return -1
  }

  /** Advances the lexer by one byte; true when that byte ends a top-level statement. */
  private step(byte: number): boolean {
    const previous = this.previous
    const beforePrevious = this.beforePrevious
    this.beforePrevious = previous
    this.previous = byte
    switch (this.lex) {
      case Lex.Code: {
        if (isSpace(byte)) return false
        const started = this.started
        this.started = true
        switch (byte) {
          case 0x3b: // ;
            return true
          case 0x27: // '  (right after a string's closing quote: a doubled quote, same string)
            this.lex =
              previous === 0x27
                ? this.escapeString
                  ? Lex.EscapeQuoted
                  : Lex.Quoted
                : (previous === 0x45 || previous === 0x65) && !isIdentifierByte(beforePrevious)
                  ? Lex.EscapeQuoted
                  : Lex.Quoted
            return false
          case 0x22: // "
            this.lex = Lex.QuotedIdentifier
            return false
          case 0x2d: // -
            if (previous === 0x2d) {
              this.lex = Lex.LineComment
              this.started = this.startedBeforeOpener
            } else this.startedBeforeOpener = started
            return false
          case 0x2f: // /
            this.startedBeforeOpener = started
            return false
          case 0x2a: // *
            if (previous === 0x2f) {
              this.lex = Lex.BlockComment
              this.commentDepth = 1
              this.previous = 0
              this.started = this.startedBeforeOpener
            }
            return false
          case 0x24: // $
            if (!isIdentifierByte(previous)) {
              this.lex = Lex.DollarOpen
              this.tag = ""
            }
            return false
          case 0x5c: // \ at the start of a statement: a psql meta-command
            if (started === false) this.lex = Lex.MetaCommand
            return false
          default:
            return false
        }
      }
      case Lex.LineComment:
        if (byte === NEWLINE) this.lex = Lex.Code
        return false
      case Lex.BlockComment:
        if (byte === 0x2f && previous === 0x2a) {
          this.commentDepth -= 1
          if (this.commentDepth === 0) this.lex = Lex.Code
          this.previous = 0
        } else if (byte === 0x2a && previous === 0x2f) {
          this.commentDepth += 1
          this.previous = 0
        }
        return false
      case Lex.Quoted:
        if (byte === 0x27) {
          this.lex = Lex.Code
          this.escapeString = false
        }
        return false
      case Lex.EscapeQuoted:
        if (byte === 0x5c && previous === 0x5c) this.previous = 0
        else if (byte === 0x27 && previous !== 0x5c) {
          this.lex = Lex.Code
          this.escapeString = true
        }
        return false
      case Lex.QuotedIdentifier:
        if (byte === 0x22) this.lex = Lex.Code
        return false
      case Lex.DollarOpen:
        if (byte === 0x24) this.lex = Lex.DollarQuoted
        else if (this.tag === "" ? isIdentifierStart(byte) : isIdentifierByte(byte))
          this.tag += String.fromCharCode(byte)
        else {
          // Not a dollar quote (`$1`, say): this byte is code again.
          this.lex = Lex.Code
          this.previous = previous
          this.beforePrevious = beforePrevious
          return this.step(byte)
        }
        return false
      case Lex.DollarQuoted:
        if (byte === 0x24) {
          this.lex = Lex.DollarClose
          this.closing = ""
        }
        return false
      case Lex.DollarClose:
        if (byte === 0x24) {
          if (this.closing === this.tag) this.lex = Lex.Code
          // Else this `$` may open the real closing tag.
          else this.closing = ""
        } else if (isIdentifierByte(byte) && this.tag.startsWith(this.closing + String.fromCharCode(byte))) {
          this.closing += String.fromCharCode(byte)
        } else this.lex = Lex.DollarQuoted
        return false
      case Lex.MetaCommand:
        if (byte !== NEWLINE) return false
        this.lex = Lex.Code
        return true
      default:
        return false
    }
  }
}

/**
 * {@link StatementFilter} as a stream transformation.
 *
 * @example
 * ```ts
 * declare const dump: Stream.Stream<Uint8Array>
 * const restorable = dump.pipe(filterStatements({ noOwner: true, noPrivileges: true }))
 * ```
 */
export const filterStatements =
  (rules: StatementRules) =>
  <E, R>(self: Stream.Stream<Uint8Array, E, R>): Stream.Stream<Uint8Array, E, R> =>
    self.pipe(
      Stream.mapAccumArray(
        () => new StatementFilter(rules),
        (filter, chunks) => [filter, chunks.flatMap((chunk) => filter.push(chunk))] as const,
        { onHalt: (filter) => filter.end() }
      )
    )
