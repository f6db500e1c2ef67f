/**
 * A bounded map that forgets the least recently used entry first: memory stays
 * bounded however many objects a controller sees.
 *
 * @example
 * ```ts
 * const recent = new Lru<string, number>(2)
 * recent.set("a", 1); recent.set("b", 2); recent.get("a"); recent.set("c", 3)
 * recent.has("b") // false: "a" was used more recently
 * ```
 */
export class Lru<K, V> {
  readonly #capacity: number
  readonly #entries = new Map<K, V>()

  constructor(capacity: number) {
    this.#capacity = Math.max(1, capacity)
  }

  get size(): number {
    return this.#entries.size
  }

  has(key: K): boolean {
    return this.#entries.has(key)
  }

  /** The value of `key`, marking it as most recently used. */
  get(key: K): V | undefined {
    if (!this.#entries.has(key)) return undefined
    const value = this.#entries.get(key) as V
    this.#entries.delete(key)
    this.#entries.set(key, value)
    return value
  }

  set(key: K, value: V): void {
    this.#entries.delete(key)
    this.#entries.set(key, value)
    // A Map iterates in insertion order, so its first key is the least recently used.
    for (const oldest of this.#entries.keys()) {
      if (this.#entries.size <= this.#capacity) break
      this.#entries.delete(oldest)
    }
  }

  delete(key: K): void {
    this.#entries.delete(key)
  }
}
