import { describe, expect, it } from 'vitest';
import { canonicalJson, fingerprint, NotJsonError } from '../src/fingerprint.js';

describe('canonical JSON and fingerprints', () => {
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
