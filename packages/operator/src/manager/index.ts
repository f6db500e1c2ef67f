export { type ManagerError, type Options, run } from "./Manager.ts"
export { runMain } from "./main.ts"
