// A small line diff in unified format, for telling a developer how a checked-in
// generated file differs from what the generator produces now.

interface Line {
  readonly tag: " " | "-" | "+"
  readonly text: string
  readonly oldNumber: number
  readonly newNumber: number
}

/** Above this many cells the LCS table is too big; the diff then replaces the whole middle. */
const maxCells = 25_000_000

const lcsLines = (before: ReadonlyArray<string>, after: ReadonlyArray<string>): Array<Line> => {
  // Common prefix and suffix first: generated files usually change in a few places.
  let start = 0
  while (start < before.length && start < after.length && before[start] === after[start]) start++
  let endBefore = before.length
  let endAfter = after.length
  while (endBefore > start && endAfter > start && before[endBefore - 1] === after[endAfter - 1]) {
    endBefore--
    endAfter--
  }
  const a = before.slice(start, endBefore)
  const b = after.slice(start, endAfter)
  const lines: Array<Line> = []
  for (let i = 0; i < start; i++) lines.push({ tag: " ", text: before[i] ?? "", oldNumber: i + 1, newNumber: i + 1 })

  const middle: Array<{ readonly tag: " " | "-" | "+"; readonly text: string }> = []
  if (a.length * b.length <= maxCells) {
    const width = b.length + 1
    const table = new Uint32Array((a.length + 1) * width)
    for (let i = a.length - 1; i >= 0; i--) {
      for (let j = b.length - 1; j >= 0; j--) {
        table[i * width + j] =
          a[i] === b[j]
            ? (table[(i + 1) * width + j + 1] ?? 0) + 1
            : Math.max(table[(i + 1) * width + j] ?? 0, table[i * width + j + 1] ?? 0)
      }
    }
    let i = 0
    let j = 0
    while (i < a.length || j < b.length) {
      if (i < a.length && j < b.length && a[i] === b[j]) {
        middle.push({ tag: " ", text: a[i] ?? "" })
        i++
        j++
      } else if (
        i < a.length &&
        (j === b.length || (table[(i + 1) * width + j] ?? 0) >= (table[i * width + j + 1] ?? 0))
      ) {
        // Removals before additions, as diff(1) prints them.
        middle.push({ tag: "-", text: a[i] ?? "" })
        i++
      } else {
        middle.push({ tag: "+", text: b[j] ?? "" })
        j++
      }
    }
  } else {
    for (const text of a) middle.push({ tag: "-", text })
    for (const text of b) middle.push({ tag: "+", text })
  }
  let oldNumber = start
  let newNumber = start
  for (const line of middle) {
    if (line.tag !== "+") oldNumber++
    if (line.tag !== "-") newNumber++
    lines.push({ ...line, oldNumber, newNumber })
  }
  for (let i = endBefore; i < before.length; i++) {
    oldNumber++
    newNumber++
    lines.push({ tag: " ", text: before[i] ?? "", oldNumber, newNumber })
  }
  return lines
}

const split = (text: string): Array<string> => {
  if (text === "") return []
  const lines = text.split("\n")
  if (lines[lines.length - 1] === "") lines.pop()
  return lines
}

/**
 * A unified diff (`---`/`+++`, `@@` hunks, 3 lines of context) from `before` to
 * `after`; empty when they are equal.
 *
 * @example
 * ```ts
 * unified("a\nb\n", "a\nc\n", { from: "crds/x.yaml", to: "generated" })
 * // --- crds/x.yaml\n+++ generated\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n
 * ```
 */
export const unified = (
  before: string,
  after: string,
  labels: { readonly from: string; readonly to: string },
  context = 3
): string => {
  if (before === after) return ""
  const lines = lcsLines(split(before), split(after))
  const changed = lines.flatMap((line, index) => (line.tag === " " ? [] : [index]))
  // Group changes whose context windows touch into one hunk.
  const hunks: Array<{ from: number; to: number }> = []
  for (const index of changed) {
    const from = Math.max(0, index - context)
    const to = Math.min(lines.length - 1, index + context)
    const last = hunks[hunks.length - 1]
    if (last !== undefined && from <= last.to + 1) last.to = to
    else hunks.push({ from, to })
  }
  const out = [`--- ${labels.from}`, `+++ ${labels.to}`]
  for (const hunk of hunks) {
    const slice = lines.slice(hunk.from, hunk.to + 1)
    const olds = slice.filter((l) => l.tag !== "+")
    const news = slice.filter((l) => l.tag !== "-")
    const oldStart = olds[0]?.oldNumber ?? lines[hunk.from]?.oldNumber ?? 0
    const newStart = news[0]?.newNumber ?? lines[hunk.from]?.newNumber ?? 0
    out.push(`@@ -${oldStart},${olds.length} +${newStart},${news.length} @@`)
    for (const line of slice) out.push(`${line.tag}${line.text}`)
  }
  if (!before.endsWith("\n") && before !== "") out.push("\\ No newline at end of file (before)")
  return `${out.join("\n")}\n`
}
