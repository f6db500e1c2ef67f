import { createHash } from "node:crypto"

/** Loopback addresses a node hands out: `127.<block>.<x>.<y>`, 254 × 254 per node. */
const perBlock = 254 * 254

/** The second octet of a node's addresses: from its name, so two nodes of one cluster rarely share one. */
const blockOf = (nodeName: string): number => {
  const digest = createHash("sha256").update(nodeName).digest()
  // 1..254: never 127.0.x.x (127.0.0.1 is the host's own address, 127.0.1.1 often the hostname's).
  return 1 + ((digest[0] ?? 0) % 254)
}

const addressOf = (block: number, index: number): string =>
  `127.${block}.${1 + Math.floor(index / 254)}.${1 + (index % 254)}`

/**
 * Gives every Pod of a node its own loopback address, as a CNI plugin gives
 * each Pod its own IP: Linux routes all of 127.0.0.0/8 to `lo`, so two
 * replicas sharing the host network can each bind `$(POD_IP):8080`.
 * Addresses are handed out round-robin, so a released one is reused as late
 * as possible (a client of the old Pod never reaches its successor by accident).
 *
 * @example
 * ```ts
 * const ips = new PodIPs("process-node")
 * const ip = ips.allocate(pod.metadata.uid ?? "", pod.status?.podIP) // "127.93.1.1"
 * ips.release(pod.metadata.uid ?? "")
 * ```
 */
export class PodIPs {
  readonly #block: number
  readonly #byUid = new Map<string, string>()
  readonly #inUse = new Set<string>()
  #next = 0

  constructor(nodeName: string) {
    this.#block = blockOf(nodeName)
  }

  /**
   * The Pod's address: the one it already has (same uid), else `previous`
   * when it is one of this node's and free (a Pod that ran before this node
   * restarted keeps its address), else the next free one.
   */
  allocate(uid: string, previous?: string): string {
    const known = this.#byUid.get(uid)
    if (known !== undefined) return known
    const address =
      previous !== undefined && this.#owns(previous) && !this.#inUse.has(previous) ? previous : this.#nextFree()
    this.#byUid.set(uid, address)
    this.#inUse.add(address)
    return address
  }

  /** Frees the Pod's address (its worker ended). */
  release(uid: string): void {
    const address = this.#byUid.get(uid)
    if (address === undefined) return
    this.#byUid.delete(uid)
    this.#inUse.delete(address)
  }

  #owns(address: string): boolean {
    const octets = address.split(".").map(Number)
    return (
      octets.length === 4 &&
      octets[0] === 127 &&
      octets[1] === this.#block &&
      octets.slice(2).every((octet) => Number.isInteger(octet) && octet >= 1 && octet <= 254)
    )
  }

  #nextFree(): string {
    for (let tried = 0; tried < perBlock; tried++) {
      const address = addressOf(this.#block, this.#next)
      this.#next = (this.#next + 1) % perBlock
      if (!this.#inUse.has(address)) return address
    }
    // 64516 live Pods on one process node: not a situation tests get into.
    throw new Error(`process node: no free Pod address in 127.${this.#block}.0.0/16`)
  }
}
