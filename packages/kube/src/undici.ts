// For clients that bring their own undici pool (plain http servers, tests): kept out of the
// package's main entry so that an operator that never needs undici never loads it.
export * as Dispatcher from "./client/Dispatcher.ts"
export * as UndiciTransport from "./client/UndiciTransport.ts"
