import { Effect } from "effect"
import type { ChildProcessSpawner } from "effect/process"
import { findExecutable } from "../process/executable.ts"
import { runChecked } from "../process/run.ts"
import { BinariesError } from "./BinariesError.ts"

/**
 * The `go` command: `$PATH` first, then `/usr/local/go/bin` (where the official
 * tarball installs it), so a login shell's PATH is not required.
 *
 * @example
 * ```ts
 * const go = yield* findGo
 * ```
 */
export const findGo: Effect.Effect<string, BinariesError> = findExecutable("go", ["/usr/local/go/bin"]).pipe(
  Effect.flatMap((go) =>
    go === undefined
      ? Effect.fail(
          new BinariesError({
            message:
              "Go is needed to build the test binaries but `go` is not on PATH nor in /usr/local/go/bin (install Go 1.26+, or point KUBEBUILDER_ASSETS at prebuilt binaries)"
          })
        )
      : Effect.succeed(go)
  )
)

/**
 * The Go toolchain version that builds in `cwd`, e.g. `go1.26.8` (honours the
 * module's toolchain line, so it is the version that really compiles).
 *
 * @example
 * ```ts
 * declare const go: string // the go binary
 * declare const moduleDir: string
 * const v = yield* goVersion(go, moduleDir)
 * ```
 */
export const goVersion = (
  go: string,
  cwd?: string
): Effect.Effect<string, BinariesError, ChildProcessSpawner.ChildProcessSpawner> =>
  runChecked(go, ["env", "GOVERSION"], cwd === undefined ? {} : { cwd }).pipe(
    Effect.map((out) => out.trim()),
    Effect.mapError((cause) => new BinariesError({ message: `cannot ask Go its version: ${cause.message}`, cause }))
  )
