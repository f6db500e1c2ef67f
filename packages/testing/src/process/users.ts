import { Effect } from "effect"
import type { ChildProcessSpawner } from "effect/process"
import type { ProcessError } from "./ProcessError.ts"
import { runChecked } from "./run.ts"

/**
 * The numeric uid and gid of a local user (from `id`, so NSS sources count too).
 *
 * @example
 * ```ts
 * const { uid, gid } = yield* userIds("postgres")
 * ```
 */
export const userIds = (
  user: string
): Effect.Effect<
  { readonly uid: number; readonly gid: number },
  ProcessError,
  ChildProcessSpawner.ChildProcessSpawner
> =>
  Effect.all({
    uid: runChecked("id", ["-u", "--", user]).pipe(Effect.map((out) => Number.parseInt(out.trim(), 10))),
    gid: runChecked("id", ["-g", "--", user]).pipe(Effect.map((out) => Number.parseInt(out.trim(), 10)))
  })
