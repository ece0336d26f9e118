/** The cache's value format: what it writes it reads back, and its fast path reads as its parser does. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeCacheValue, encodeCacheValue } from '../src/cache-value.js';

/** The decoder before its fast path (a verbatim copy, JSON.parse for every value): the reference. */
// biome-ignore format: a verbatim copy
function referenceDecode(text: string): { value: { fingerprint?: string; result?: string } } | { invalid: string } {
  if (!text.startsWith('imq1:')) return { invalid: 'not an idempotency cache value of format version 1' };
  let body: unknown;
  try {
    body = JSON.parse(text.slice('imq1:'.length));
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

const text = fc.string({ unit: 'binary', maxLength: 60 });
const fingerprintLike = fc.oneof(
  fc.base64String({ maxLength: 44 }).map((s) => s.replace(/[+/=]/g, '-')),
  fc.string({
    unit: fc.constantFrom('a', 'Z', '0', '-', '_', '"', '\\', '}', ',', ':', '\u0000', 'é'),
    maxLength: 20,
  }),
);

describe('cache values', () => {
  it('reads back what it writes, fingerprint and result alike', () => {
    fc.assert(
      fc.property(
        fc.option(fingerprintLike, { nil: undefined }),
        fc.option(fc.json(), { nil: undefined }),
        (f, r) => {
          const value = {
            ...(f === undefined ? {} : { fingerprint: f }),
            ...(r === undefined ? {} : { result: r }),
          };
          expect(decodeCacheValue(encodeCacheValue(value))).toEqual({ value });
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('decodes any text exactly as the parser it shortcuts does', () => {
    const tails = fc.oneof(
      text,
      fingerprintLike.map((f) => `{"f":"${f}"}`),
      fc.tuple(fingerprintLike, text).map(([f, t]) => `{"f":"${f}${t}"}`),
      fc.constantFrom(
        '{}',
        '{"f":""}',
        '{"f":"a","r":"1"}',
        '{"f":"a"} ',
        '{"f":"a\\"}',
        '{"f":"a"}}',
        '{"f":"a","f":"b"}',
      ),
    );
    fc.assert(
      fc.property(tails, (tail) => {
        expect(decodeCacheValue(`imq1:${tail}`)).toEqual(referenceDecode(`imq1:${tail}`));
      }),
      { numRuns: 5000 },
    );
  });
});
