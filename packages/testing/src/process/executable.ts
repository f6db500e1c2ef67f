import { constants } from "node:fs"
import { access, stat } from "node:fs/promises"
import { delimiter, join } from "node:path"
import { Effect } from "effect"

/**
 * True when `file` is a regular file we may execute.
 *
 * @example
 * ```ts
 * if (yield* isExecutable("/usr/bin/openssl")) yield* Effect.log("openssl found")
 * ```
 */
export const isExecutable = (file: string): Effect.Effect<boolean> =>
  Effect.promise(async () => {
    try {
      await access(file, constants.X_OK)
      return (await stat(file)).isFile()
    } catch {
      return false
    }
  })

/**
 * The first executable `name` in `$PATH`, then in `extraDirs`.
 *
 * @example
 * ```ts
 * const go = yield* findExecutable("go", ["/usr/local/go/bin"])
 * ```
 */
export const findExecutable = (
  name: string,
  extraDirs: ReadonlyArray<string> = []
): Effect.Effect<string | undefined> =>
  Effect.gen(function* () {
    const dirs = [...(process.env.PATH ?? "").split(delimiter).filter((d) => d !== ""), ...extraDirs]
    for (const dir of dirs) {
      const candidate = join(dir, name)
      if (yield* isExecutable(candidate)) return candidate
    }
    return undefined
  })
