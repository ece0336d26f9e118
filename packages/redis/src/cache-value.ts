/**
 * What the cache writes under a token: `imq1:` and a JSON object `{ "f"?: fingerprint, "r"?: result }`.
 * The version prefix lets a later format be read side by side; anything else under our key — another
 * program's value, a truncated write, a future version — decodes to nothing, never to "processed".
 */
import type { CachedCompletion } from '@idempotent-mq/core/adapter';

const MARK = 'imq1:';
/** The characters of a fingerprint as the engine makes them (SHA-256, base64url). */
const BASE64URL = /^[A-Za-z0-9_-]*$/;

export function encodeCacheValue(value: CachedCompletion): string {
  const body: { f?: string; r?: string } = {};
  if (value.fingerprint !== undefined) body.f = value.fingerprint;
  if (value.result !== undefined) body.r = value.result;
  return MARK + JSON.stringify(body);
}

/** What a duplicate's cache hit nearly always holds: a fingerprint alone, `imq1:{"f":"…"}`. */
const FINGERPRINT_ONLY = `${MARK}{"f":"`;

/** The completion, or the reason the text is not one of ours. */
export function decodeCacheValue(text: string): { value: CachedCompletion } | { invalid: string } {
  if (!text.startsWith(MARK)) return { invalid: 'not an idempotency cache value of format version 1' };
  // The common value without JSON.parse: what encodeCacheValue writes for a fingerprint and no result
  // (a fingerprint is base64url, so the first quote after it closes it); anything else is parsed.
  if (text.startsWith(FINGERPRINT_ONLY) && text.endsWith('"}')) {
    const f = text.slice(FINGERPRINT_ONLY.length, -2);
    if (BASE64URL.test(f)) return { value: { fingerprint: f } };
  }
  if (text === `${MARK}{}`) return { value: {} };
  let body: unknown;
  try {
    body = JSON.parse(text.slice(MARK.length));
  } catch {
    return { invalid: 'not valid JSON after the version mark' };
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { invalid: 'not a JSON object after the version mark' };
  }
  const { f, r } = body as { f?: unknown; r?: unknown };
  if (f !== undefined && typeof f !== 'string') return { invalid: 'a fingerprint that is not a string' };
  if (r !== undefined && typeof r !== 'string') return { invalid: 'a result that is not a string' };
  // The engine parses the result of a duplicate; a broken one must not throw there.
  if (r !== undefined && !isJson(r)) return { invalid: 'a result that is not JSON text' };
  const value: { fingerprint?: string; result?: string } = {};
  if (f !== undefined) value.fingerprint = f;
  if (r !== undefined) value.result = r;
  return { value };
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}
