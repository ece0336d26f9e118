/**
 * The business keys a publisher sends with a message, checked once for every transport's publisher:
 * consumers deduplicate on them, so a message without a usable key is refused before any I/O.
 */

/** What a transport may ask of its keys beyond being non-blank strings. */
export interface PublishedKeyRules {
  /** Refuse a key with a line break (it travels in a header that cannot hold one). @defaultValue `false` */
  readonly singleLine?: boolean;
}

/**
 * The keys of a publish request as an array: one string, or a non-empty array of non-blank strings.
 * Anything else throws what `refuse(reason)` builds, each transport's own `MissingMessageKeyError`, with
 * a reason that says which key is wrong and how (`"keys" is an empty array`, `key #1 is blank`).
 *
 * @example
 * ```ts
 * const keys = publishedKeys(request.keys, (reason) => new MissingMessageKeyError(request.topic, reason));
 * ```
 */
export function publishedKeys(
  raw: unknown,
  refuse: (reason: string) => Error,
  rules: PublishedKeyRules = {},
): string[] {
  const keys = typeof raw === 'string' ? [raw] : Array.isArray(raw) ? [...(raw as unknown[])] : undefined;
  if (keys === undefined) throw refuse(`"keys" is ${raw === undefined ? 'missing' : typeof raw}`);
  if (keys.length === 0) throw refuse('"keys" is an empty array');
  keys.forEach((key, i) => {
    if (typeof key !== 'string') throw refuse(`key #${i} is ${typeof key}, not a string`);
    if (key.trim() === '') throw refuse(`key #${i} is blank`);
    if (rules.singleLine && /[\r\n]/.test(key)) throw refuse(`key #${i} spans lines (a header cannot)`);
  });
  return keys as string[];
}
