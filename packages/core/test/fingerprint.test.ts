import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson, fingerprint, NotJsonError } from '../src/fingerprint.js';

/**
 * The canonical JSON as 0.1 wrote it (a copy of its code, JSON.stringify for every key and primitive):
 * fingerprints in stores were made with it, so today's faster writer must print exactly the same.
 */
// biome-ignore format: a verbatim copy
function referenceWrite(value: unknown, path: object[]): string {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new Error(`${value} is not a JSON number`);
      return JSON.stringify(value);
    case 'undefined':
      throw new Error('undefined is not JSON');
    case 'bigint':
    case 'function':
    case 'symbol':
      throw new Error(`a ${typeof value} is not JSON`);
  }
  if (value === null) return 'null';
  const obj = value as object;
  if (path.includes(obj)) throw new Error('the value has a cycle');
  if (ArrayBuffer.isView(obj)) {
    const bytes = Buffer.from(obj.buffer, obj.byteOffset, obj.byteLength).toString('base64');
    return `{"$bytes":${JSON.stringify(bytes)}}`;
  }
  if (obj instanceof Date) return JSON.stringify(obj.toISOString());
  if (obj instanceof Map || obj instanceof Set)
    throw new Error(`a ${obj.constructor.name} is not JSON`);
  path.push(obj);
  let out: string;
  if (Array.isArray(obj)) {
    out = '[';
    for (let i = 0; i < obj.length; i++) {
      const item: unknown = obj[i];
      out += (i > 0 ? ',' : '') + (item === undefined ? 'null' : referenceWrite(item, path));
    }
    out += ']';
  } else {
    const record = obj as Record<string, unknown>;
    const keys = Object.keys(record);
    if (keys.length > 1) keys.sort();
    out = '{';
    let first = true;
    for (const k of keys) {
      const item = record[k];
      if (item === undefined) continue;
      out += `${first ? '' : ','}${JSON.stringify(k)}:${referenceWrite(item, path)}`;
      first = false;
    }
    out += '}';
  }
  path.pop();
  return out;
}

/** Any value the writer takes: JSON, undefined members, bytes, dates, odd strings and numbers. */
const payload = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.string({ unit: 'binary', maxLength: 200 }),
    fc.string({
      unit: fc.constantFrom('a', '"', '\\', '\u0000', '\u001f', '\ud800', '\udc00', 'é', '😀', '\u2028'),
    }),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.integer(),
    fc.constantFrom(-0, 0, 1e21, 1e-7, 5e-324, Number.MAX_SAFE_INTEGER),
    fc.boolean(),
    fc.constant(null),
    fc.uint8Array({ maxLength: 20 }),
    fc.date({ noInvalidDate: true }),
    fc.array(fc.oneof(tie('value'), fc.constant(undefined)), { maxLength: 5 }),
    fc.dictionary(
      fc.string({ unit: 'binary', maxLength: 8 }),
      fc.oneof(tie('value'), fc.constant(undefined)),
      {
        maxKeys: 16,
      },
    ),
  ),
})).value;

describe('canonical JSON and fingerprints', () => {
  it('prints exactly what the stored format was written with, for any payload', () => {
    fc.assert(
      fc.property(payload, (value) => {
        expect(canonicalJson(value)).toBe(referenceWrite(value, []));
      }),
      { numRuns: 3000 },
    );
  });

  it('ignores object key order at every depth and keeps array order', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, 1], c: null } })).toBe('{"a":{"c":null,"d":[2,1]},"b":1}');
    expect(fingerprint({ x: 1, y: 2 })).toBe(fingerprint({ y: 2, x: 1 }));
    expect(fingerprint([1, 2])).not.toBe(fingerprint([2, 1]));
  });

  it('tells strings, bytes and JSON apart', () => {
    expect(fingerprint('1')).not.toBe(fingerprint(1));
    expect(fingerprint(Buffer.from('abc'))).not.toBe(fingerprint('abc'));
    expect(fingerprint(Buffer.from('abc'))).toBe(fingerprint(new Uint8Array([97, 98, 99])));
  });

  it('drops undefined object members as JSON does, and rejects what JSON cannot hold', () => {
    expect(canonicalJson({ a: undefined, b: 1 })).toBe('{"b":1}');
    const cyclic: unknown[] = [];
    cyclic.push(cyclic);
    for (const bad of [cyclic, 1n, () => 1, Number.NaN, new Map(), Symbol('s')]) {
      expect(() => canonicalJson(bad)).toThrow(NotJsonError);
    }
  });

  it('keeps the stored format: fingerprints already in stores stay comparable', () => {
    // Computed by the first release; a change here turns every redelivery of an old message into a conflict.
    expect(fingerprint({ amount: 100, currency: 'EUR' })).toBe('TzaxoJbieAZJbhrOMOJhTQ3Xy8ZclGL6O4VCUs-bO8c');
    expect(fingerprint('abc')).toBe('zwu84rCDP0e0gVXFalSUWa8S8XJAiPAkbYN-wZnreHo');
    expect(fingerprint(Buffer.from('abc'))).toBe('2PTJsWdzl2Y-DvPbRU2c5IkmsSQZntwSS_LZ-nvmf-Q');
    expect(fingerprint([1, 'x', null, { b: [true], a: new Date(0) }])).toBe(
      'qgbLnNwrWOoT7QZqNPTCWj7HKxR71U5eStgi-rjvFUY',
    );
    expect(fingerprint({ nested: { bytes: new Uint8Array([1, 2, 3]) } })).toBe(
      'ci9K2EZtqG0Vu7Sgedo2W9euhWQf3vxbLHG0io8-HyA',
    );
  });

  it('a shared (non-cyclic) reference is fine', () => {
    const shared = { n: 1 };
    expect(canonicalJson({ a: shared, b: shared })).toBe('{"a":{"n":1},"b":{"n":1}}');
  });
});
