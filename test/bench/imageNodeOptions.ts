import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { instructions } from "../../docker/build/dockerfile.ts"

/**
 * The NODE_OPTIONS an image sets (the last `ENV NODE_OPTIONS=` of the final
 * stage of `docker/<image>/Dockerfile`): a benchmark runs our process with the
 * V8 settings it ships with.
 */
export const imageNodeOptions = (image: "operator" | "runner"): string => {
  const dockerfile = fileURLToPath(new URL(`../../docker/${image}/Dockerfile`, import.meta.url))
  let value = ""
  for (const { keyword, args } of instructions(readFileSync(dockerfile, "utf8"))) {
    if (keyword === "FROM") value = ""
    const match = keyword === "ENV" ? /(?:^|\s)NODE_OPTIONS=(?:"([^"]*)"|(\S*))/u.exec(args) : null
    if (match !== null) value = match[1] ?? match[2] ?? ""
  }
  return value
}
