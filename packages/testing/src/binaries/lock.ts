import { mkdir, readFile, rm, stat, writeFile } from "node:fs/promises"
import { hostname } from "node:os"
import { join } from "node:path"
import { Console, Duration, Effect, Schedule, type Scope } from "effect"
import { BinariesError } from "./BinariesError.ts"

interface Owner {
  readonly pid: number
  readonly host: string
  readonly since: string
}

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

// A lock is stale when its owner process is gone (same host), or when it has no owner
// file long after it was made (the owner died between mkdir and writing it).
const isStale = async (lockDir: string): Promise<boolean> => {
  try {
    const owner = JSON.parse(await readFile(join(lockDir, "owner.json"), "utf8")) as Owner
    return owner.host === hostname() && !isAlive(owner.pid)
  } catch {
    try {
      return Date.now() - (await stat(lockDir)).mtimeMs > 60_000
    } catch {
      return true
    }
  }
}

const tryAcquire = async (lockDir: string): Promise<"acquired" | "busy"> => {
  try {
    await mkdir(lockDir)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error
    if (await isStale(lockDir)) {
      await rm(lockDir, { recursive: true, force: true })
      return tryAcquire(lockDir)
    }
    return "busy"
  }
  const owner: Owner = { pid: process.pid, host: hostname(), since: new Date().toISOString() }
  await writeFile(join(lockDir, "owner.json"), JSON.stringify(owner))
  return "acquired"
}

/**
 * A cross-process lock (an atomic `mkdir` of `lockDir`), held for the scope. A
 * lock left by a dead process is taken over. While another process holds it,
 * this waits and says so on stderr every 15 seconds.
 *
 * @example
 * ```ts
 * import { join } from "node:path"
 * declare const cache: string
 * declare const build: Effect.Effect<void>
 * yield* Effect.scoped(Effect.andThen(withDirLock(join(cache, ".build.lock"), "kube-apiserver"), build))
 * ```
 */
export const withDirLock = (lockDir: string, what: string): Effect.Effect<void, BinariesError, Scope.Scope> => {
  const started = Date.now()
  let nextNotice = 0
  const attempt = Effect.tryPromise({
    try: () => tryAcquire(lockDir),
    catch: (cause) => new BinariesError({ message: `cannot create lock ${lockDir}: ${String(cause)}`, cause })
  }).pipe(
    Effect.flatMap((result) => {
      if (result === "acquired") return Effect.void
      const waited = Date.now() - started
      const notice =
        waited >= nextNotice
          ? Console.error(
              `kube-testenv: waiting for another process building ${what} (lock ${lockDir}, ${Math.round(waited / 1000)} s)`
            )
          : Effect.void
      if (waited >= nextNotice) nextNotice = waited + 15_000
      return notice.pipe(Effect.andThen(Effect.fail("busy" as const)))
    })
  )
  return Effect.acquireRelease(
    attempt.pipe(Effect.retry({ schedule: Schedule.spaced(Duration.seconds(1)), while: (e) => e === "busy" })),
    () => Effect.promise(() => rm(lockDir, { recursive: true, force: true }))
  ).pipe(
    Effect.catch((e) =>
      e === "busy" ? Effect.fail(new BinariesError({ message: `lock ${lockDir} never freed` })) : Effect.fail(e)
    )
  )
}
