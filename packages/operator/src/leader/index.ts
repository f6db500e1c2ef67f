export {
  defaultIdentity,
  LeaderElection,
  LeaderElectionConfigError,
  type LeaderElectionOptions,
  type LeaderElectionShape,
  LeadershipLost,
  masterStatus
} from "./LeaderElection.ts"
export * as LeaseLock from "./LeaseLock.ts"
