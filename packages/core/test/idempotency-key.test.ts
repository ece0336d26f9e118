import { describe, expect, it } from 'vitest';
import { buildScope, canonicalKey } from '../src/idempotency-key.js';

const key = (value: unknown, max = 250) => {
  const r = canonicalKey(value, max);
  if ('missing' in r) throw new Error(r.missing);
  return r.key;
};

describe('canonical keys', () => {
  it('a plain string is kept as is, unicode included', () => {
    expect(key('ORDERID_100')).toBe('ORDERID_100');
    expect(key('支付-😀')).toBe('支付-😀');
  });

  it('arrays join so that no two different arrays collide', () => {
    const samples = [['a,b'], ['a', 'b'], ['a\\', 'b'], ['a\\,b'], ['a', ',b'], ['a,', 'b']];
    const keys = samples.map((s) => key(s));
    expect(new Set(keys).size).toBe(samples.length);
    expect(key(['X'])).toBe(key('X'));
  });

  it('over-long keys become a bounded prefix plus a hash, distinct for distinct keys', () => {
    const long = 'é'.repeat(1000);
    const a = key(`${long}1`);
    const b = key(`${long}2`);
    expect([...a].length).toBeLessThanOrEqual(250);
    expect(a).not.toBe(b);
    expect(a).toContain('\\#');
    expect(key(`${long}1`)).toBe(a);
  });

  it('a hashed key cannot be forged by a literal short key', () => {
    const hashed = key('z'.repeat(300), 60);
    // The same characters as a literal key are escaped (the \ of the mark doubles), so they differ.
    const literal = key(hashed.split('\\#') as [string, string], 1000);
    expect(literal).not.toBe(hashed);
  });

  it('a prefix never ends in a lone backslash that could swallow the hash mark', () => {
    const bounded = key(`${'a'.repeat(10)}\\\\${'b'.repeat(300)}`, 57);
    expect(bounded).toMatch(/^a+(\\\\)*\\#/);
  });

  it('names why a key is missing', () => {
    expect(canonicalKey(undefined, 250)).toEqual({ missing: 'the key is missing' });
    expect(canonicalKey('', 250)).toEqual({ missing: 'the key is empty' });
    expect(canonicalKey('  ', 250)).toEqual({ missing: 'the key is only whitespace' });
    expect(canonicalKey(5, 250)).toEqual({ missing: 'the key is a number, not a string' });
    expect(canonicalKey([], 250)).toEqual({ missing: 'the key list is empty' });
  });

  it('scopes carry their version', () => {
    expect(buildScope('billing:Payments.onMessage', 1)).toBe('v1:billing:Payments.onMessage');
  });
});
