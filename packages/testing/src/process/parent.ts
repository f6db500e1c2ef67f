import { Console, Effect } from "effect"

/**
 * Completes once this process's parent has exited (we were re-parented), after
 * saying so on stdout. Launched through `npm start` or `npx`, a SIGTERM from
 * `timeout`, an IDE's stop button or a CI cancel hits npm, which exits without
 * passing it on: racing the main program against this stops it as if it had
 * been signalled, so nothing it started is left running.
 *
 * @example
 * ```ts
 * declare const serveForever: Effect.Effect<never>
 * yield* Effect.raceFirst(serveForever, untilParentExits("kube-testenv"))
 * ```
 */
export const untilParentExits = (who: string): Effect.Effect<void> =>
  Effect.gen(function* () {
    const parent = process.ppid
    yield* Effect.sleep("1 second").pipe(Effect.repeat({ until: () => process.ppid !== parent }))
    yield* Console.log(`${who}: parent process exited; stopping`)
  })
