import { Effect } from "effect"

/**
 * A condition variable for fibers that share plain mutable state.
 *
 * `await(ready)` checks `ready()` and, if false, registers in the same
 * synchronous step, so a `notify()` can never slip in between the check and the
 * registration (no lost wake-ups). `notify()` resumes every waiter whose
 * predicate now holds; a resumed waiter re-checks its state itself, because
 * another fiber may have consumed it first.
 */
export interface Condition {
  readonly await: (ready: () => boolean) => Effect.Effect<void>
  readonly notify: () => void
}

export const make = (): Condition => {
  const waiters = new Set<{ readonly ready: () => boolean; readonly resume: () => void }>()
  return {
    await: (ready) =>
      Effect.callback<void>((resume) => {
        if (ready()) {
          resume(Effect.void)
          return
        }
        const waiter = { ready, resume: () => resume(Effect.void) }
        waiters.add(waiter)
        // Runs on interruption, so an abandoned wait does not leak.
        return Effect.sync(() => {
          waiters.delete(waiter)
        })
      }),
    notify: () => {
      // A snapshot: a resumed fiber may register again while we iterate.
      for (const waiter of [...waiters]) {
        if (waiter.ready()) {
          waiters.delete(waiter)
          waiter.resume()
        }
      }
    }
  }
}
