/**
 * Text as stores, headers and messages hold it: lengths in code points (as SQL `varchar(n)` counts),
 * cuts that never split a surrogate pair, and the well-formed check every store needs before a driver
 * re-encodes a lone surrogate as U+FFFD.
 */

/** Length in code points, as SQL `varchar(n)` counts. */
export function codePointLength(s: string): number {
  if (s.length <= 1) return s.length;
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/**
 * The first `max` code points of `s`. A cut never falls inside a surrogate pair, so a well-formed
 * string stays well-formed.
 */
export function firstCodePoints(s: string, max: number): string {
  // Cheap exit: UTF-16 length >= code points.
  if (s.length <= max) return s;
  let n = 0;
  let end = 0;
  for (const ch of s) {
    if (n++ >= max) break;
    end += ch.length;
  }
  return s.slice(0, end);
}

/**
 * `s` as it is when it has at most `max` code points, else its first `max` and an ellipsis. For error
 * messages, headers and previews: the cut never leaves half a surrogate pair behind.
 */
export function cutText(s: string, max: number): string {
  if (s.length <= max || codePointLength(s) <= max) return s;
  return `${firstCodePoints(s, max)}…`;
}

const LONE_SURROGATE = /\p{Cs}/u;

/**
 * Whether `s` is well-formed UTF-16 (no lone surrogate). A driver or an encoder turns a lone surrogate
 * into U+FFFD, so two different strings would meet in storage.
 */
export function isWellFormedText(s: string): boolean {
  return !LONE_SURROGATE.test(s);
}
