import type { DecodeError } from "../errors.ts"

/**
 * One event of a watch. `Bookmark` carries only a resourceVersion to resume from.
 * `Malformed` is an object the server sent that does not match the kind's Schema:
 * it is reported (with the object and field named), never a crash, and its
 * resourceVersion still advances the watch.
 */
export type WatchEvent<A> =
  | { readonly type: "ADDED" | "MODIFIED" | "DELETED"; readonly object: A }
  | { readonly type: "BOOKMARK"; readonly resourceVersion: string }
  | { readonly type: "MALFORMED"; readonly error: DecodeError; readonly resourceVersion: string | undefined }
