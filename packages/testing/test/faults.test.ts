import { MemoryIdempotencyStore } from '@idempotent-mq/core';
import { describe, expect, it } from 'vitest';
import { FaultyStore } from '../src/index.js';

const token = { scope: 's', key: 'k' };

describe('FaultyStore', () => {
  it('forwards to the real store until a fault is injected, for as many calls as asked', async () => {
    const store = new FaultyStore(new MemoryIdempotencyStore());
    const boom = new Error('boom');
    store.faults.inject('get', { fail: boom }, 1);
    await expect(store.get(token)).rejects.toBe(boom);
    await expect(store.get(token)).resolves.toBeUndefined();
    expect(store.faults.calls.get('get')).toBe(2);
  });

  it('failAfter makes the real call, then loses its answer', async () => {
    const inner = new MemoryIdempotencyStore();
    const store = new FaultyStore(inner);
    store.faults.inject('claim', { failAfter: new Error('ack lost') }, 1);
    await expect(store.claim({ token, owner: 'o', leaseMs: 1000 })).rejects.toThrow('ack lost');
    expect(await inner.get(token)).toMatchObject({ owner: 'o' });
  });

  it('a commit fault rolls the transaction back', async () => {
    const inner = new MemoryIdempotencyStore();
    const store = new FaultyStore(inner);
    store.faults.inject('commit', { fail: new Error('commit failed') });
    await expect(
      store.transaction?.(async (tx) => {
        await store.claim({ token, owner: 'o', leaseMs: 1000 }, tx);
      }),
    ).rejects.toThrow('commit failed');
    expect(await inner.get(token)).toBeUndefined();
  });
});
