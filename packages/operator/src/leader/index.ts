export {
  LeaderElection,
  LeaderElectionConfigError,
  type LeaderElectionOptions,
  type LeaderElectionShape,
  LeadershipLost
} from "./LeaderElection.ts"
export * as LeaseLock from "./LeaseLock.ts"
