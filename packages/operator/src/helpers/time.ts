/**
 * Kubernetes timestamps. `metav1.Time` has second precision (`2006-01-02T15:04:05Z`);
 * `metav1.MicroTime` (Event `eventTime`, Lease `renewTime`) has microseconds
 * (`2006-01-02T15:04:05.000000Z`). The API server rejects a MicroTime written as a
 * plain Time in some fields, so each field gets its own format.
 *
 * @example
 * ```ts
 * formatTime(0)      // "1970-01-01T00:00:00Z"
 * formatMicroTime(1) // "1970-01-01T00:00:00.001000Z"
 * ```
 */
export const formatTime = (millis: number): string => new Date(millis).toISOString().replace(/\.\d{3}Z$/u, "Z")

/** `metav1.MicroTime`: RFC 3339 with six fractional digits (JavaScript clocks give milliseconds). */
export const formatMicroTime = (millis: number): string =>
  new Date(millis).toISOString().replace(/\.(\d{3})Z$/u, ".$1000Z")

/** Parses a Time or MicroTime; `undefined` when absent or malformed. */
export const parseTime = (value: string | null | undefined): number | undefined => {
  if (value === null || value === undefined) return undefined
  const millis = Date.parse(value)
  return Number.isNaN(millis) ? undefined : millis
}
