export { defaultHistoryLimits, expired, type HistoryLimits, jobCleanupController } from "./JobCleanupController.ts"
