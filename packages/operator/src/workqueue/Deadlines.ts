/**
 * Pending "add this key at time t" requests: at most one deadline per key, and a
 * new request for a key keeps the earlier of the two deadlines (controller-runtime's
 * delaying queue does the same). One scheduler fiber sleeps until `next()`.
 *
 * A binary min-heap with lazy deletion: moving a key's deadline earlier pushes a
 * new entry and leaves the old one in the heap; `due` skips entries that no
 * longer match the key's current deadline. Every operation is O(log n), so
 * thousands of periodically requeued keys stay cheap.
 */
export interface Deadlines {
  /** Schedules `key` at `at` (epoch millis) unless it is already scheduled earlier. Returns true if `at` was kept. */
  readonly schedule: (key: string, at: number) => boolean
  /** The earliest pending deadline, if any. */
  readonly next: () => number | undefined
  /** Removes and returns, earliest first, every key whose deadline is `<= now`. */
  readonly due: (now: number) => ReadonlyArray<string>
  /** The pending deadline of `key`. */
  readonly get: (key: string) => number | undefined
  readonly size: () => number
  readonly clear: () => void
}

interface Entry {
  readonly key: string
  readonly at: number
}

export const make = (): Deadlines => {
  const current = new Map<string, number>()
  let heap: Array<Entry> = []

  const swap = (i: number, j: number) => {
    const a = heap[i]
    const b = heap[j]
    if (a !== undefined && b !== undefined) {
      heap[i] = b
      heap[j] = a
    }
  }
  const at = (i: number): number => heap[i]?.at ?? Number.POSITIVE_INFINITY

  const push = (entry: Entry) => {
    heap.push(entry)
    let i = heap.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (at(parent) <= at(i)) break
      swap(i, parent)
      i = parent
    }
  }

  const pop = (): Entry | undefined => {
    const top = heap[0]
    const last = heap.pop()
    if (heap.length > 0 && last !== undefined) {
      heap[0] = last
      let i = 0
      for (;;) {
        const left = 2 * i + 1
        const right = left + 1
        let smallest = i
        if (at(left) < at(smallest)) smallest = left
        if (at(right) < at(smallest)) smallest = right
        if (smallest === i) break
        swap(i, smallest)
        i = smallest
      }
    }
    return top
  }

  // Drops stale heap tops so that heap[0], if any, is a live deadline.
  const settle = () => {
    for (let top = heap[0]; top !== undefined && current.get(top.key) !== top.at; top = heap[0]) pop()
  }

  return {
    schedule: (key, deadline) => {
      const existing = current.get(key)
      if (existing !== undefined && existing <= deadline) return false
      current.set(key, deadline)
      push({ key, at: deadline })
      return true
    },
    next: () => {
      settle()
      return heap[0]?.at
    },
    due: (now) => {
      const keys: Array<string> = []
      settle()
      for (let top = heap[0]; top !== undefined && top.at <= now; top = heap[0]) {
        pop()
        current.delete(top.key)
        keys.push(top.key)
        settle()
      }
      return keys
    },
    get: (key) => current.get(key),
    size: () => current.size,
    clear: () => {
      current.clear()
      heap = []
    }
  }
}
