/**
 * Preloaded into the operator by the load profile's `--cpu-prof DIR`
 * (`NODE_OPTIONS=--import=...`; Node refuses `--cpu-prof` itself in
 * NODE_OPTIONS, and the operator's command line is not ours to change). It
 * profiles a window of the run with the in-process inspector and writes
 * `operator-<pid>.cpuprofile` (Chrome DevTools / speedscope format) to
 * LOAD_CPU_PROFILE_DIR. Plain Node rather than Effect: it runs before, and
 * beside, the program it measures, and must not load anything of it.
 *
 * Environment: LOAD_CPU_PROFILE_DIR, LOAD_CPU_PROFILE_DELAY_SECONDS (default 0),
 * LOAD_CPU_PROFILE_SECONDS (default 120).
 */

import { writeFile } from "node:fs/promises"
import { Session } from "node:inspector/promises"

const dir = process.env.LOAD_CPU_PROFILE_DIR
if (dir !== undefined) {
  const delay = Number(process.env.LOAD_CPU_PROFILE_DELAY_SECONDS ?? 0) * 1000
  const length = Number(process.env.LOAD_CPU_PROFILE_SECONDS ?? 120) * 1000
  const session = new Session()
  session.connect()
  const profile = async () => {
    await session.post("Profiler.enable")
    await session.post("Profiler.start")
    await new Promise((resolve) => setTimeout(resolve, length).unref())
    const { profile } = await session.post("Profiler.stop")
    await writeFile(`${dir}/operator-${process.pid}.cpuprofile`, JSON.stringify(profile))
    console.error(`cpu profile written to ${dir}/operator-${process.pid}.cpuprofile`)
  }
  // Unref'd timers: the profile never keeps the operator alive.
  setTimeout(
    () => void profile().catch((error) => console.error(`cpu profile failed: ${String(error)}`)),
    delay
  ).unref()
}
