import { Clock, Effect } from "effect"

/** `metav1.Time`: RFC 3339 in UTC, whole seconds, as the API server writes it. */
export const formatTime = (millis: number): string => new Date(millis).toISOString().replace(/\.\d{3}Z$/u, "Z")

/** `metav1.MicroTime` (Lease renewTime): exactly six fractional digits. */
export const formatMicroTime = (millis: number): string => new Date(millis).toISOString().replace(/Z$/u, "000Z")

/** The current time as a `metav1.Time` string (follows the Clock, so TestClock works). */
export const now: Effect.Effect<string> = Effect.map(Clock.currentTimeMillis, formatTime)
