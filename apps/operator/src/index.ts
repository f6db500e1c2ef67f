export { command, toConfig } from "./cli.ts"
export { type OperatorConfig, parseAddress, parseInterval, parseList } from "./OperatorConfig.ts"
export { leaseName, runOperator, watchedNamespaces } from "./operator.ts"
