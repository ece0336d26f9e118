import {
  getHandlerMethod,
  IDEMPOTENCY_ENGINE,
  Idempotent,
  MemoryIdempotencyCache,
} from '@idempotent-mq/core/adapter';
import { type FakeClock, FaultyCache } from '@idempotent-mq/testing';
import { injectable } from 'inversify';
import { describe, expect, it } from 'vitest';
import { harness, type Message, msg } from '../support/engine-harness.js';

let keyCalls = 0;

@injectable()
class Batched {
  runs: string[] = [];
  @Idempotent({
    key: (m: Message) => {
      keyCalls++;
      return m.keys;
    },
  })
  async onMessage(m: Message) {
    this.runs.push(m.keys[0] as string);
    if (m.keys[0] === 'FAIL') throw new Error('this one fails');
  }
}

function setup() {
  const h = harness({ cache: (clock: FakeClock) => new FaultyCache(new MemoryIdempotencyCache({ clock })) });
  const consumer = h.get(Batched);
  const engine = h.container.get(IDEMPOTENCY_ENGINE);
  const target = getHandlerMethod(Batched, 'onMessage');
  if (!target) throw new Error('no handler method recorded');
  const batch = (keys: string[]) =>
    engine.executeBatch(
      target,
      consumer,
      keys.map((k) => msg(k)),
    );
  return { h, consumer, batch };
}

describe('the batch path', () => {
  it('answers a batch of duplicates with one cache round trip and no handler call', async () => {
    const { h, consumer, batch } = setup();
    const keys = Array.from({ length: 32 }, (_, i) => `K${i}`);
    await batch(keys);
    h.cache.faults.calls.clear();
    const outcomes = await batch(keys);
    expect(outcomes.map((o) => o.kind)).toEqual(keys.map(() => 'duplicate'));
    expect(outcomes.every((o) => o.tier === 'cache')).toBe(true);
    expect(h.cache.faults.calls.get('getMany')).toBe(1);
    expect(h.cache.faults.calls.get('get')).toBeUndefined();
    expect(consumer.runs).toHaveLength(32);
  });

  it('the same key twice in one batch runs once; a failing entry fails alone; outcomes stay aligned', async () => {
    const { consumer, batch } = setup();
    keyCalls = 0;
    const outcomes = await batch(['A', 'B', 'A', 'FAIL', 'C', 'B']);
    expect(keyCalls).toBe(6); // the key function runs once per message
    expect(outcomes.map((o) => o.kind)).toEqual([
      'processed',
      'processed',
      'duplicate',
      'failed',
      'processed',
      'duplicate',
    ]);
    expect(outcomes.map((o) => o.token?.key)).toEqual(['A', 'B', 'A', 'FAIL', 'C', 'B']);
    expect(consumer.runs.sort()).toEqual(['A', 'B', 'C', 'FAIL']);
  });

  it('a cache that fails the batch read is bypassed; the store still catches the duplicates', async () => {
    const { h, consumer, batch } = setup();
    await batch(['X', 'Y']);
    h.cache.faults.inject('getMany', { fail: new Error('ECONNRESET') });
    const outcomes = await batch(['X', 'Y', 'Z']);
    expect(outcomes.map((o) => [o.kind, o.tier, o.cacheBypassed])).toEqual([
      ['duplicate', 'store', true],
      ['duplicate', 'store', true],
      ['processed', undefined, true],
    ]);
    expect(consumer.runs).toEqual(['X', 'Y', 'Z']);
  });

  it('copies the cache knows are decided per copy: duplicates, a changed payload, an unserialisable one', async () => {
    const { h, consumer } = setup();
    const engine = h.container.get(IDEMPOTENCY_ENGINE);
    const target = getHandlerMethod(Batched, 'onMessage');
    if (!target) throw new Error('no handler method recorded');
    await engine.executeBatch(target, consumer, [msg('P', { amount: 1 }), msg('Q', { amount: 2 })]);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    h.cache.faults.calls.clear();
    const outcomes = await engine.executeBatch(target, consumer, [
      msg('P', { amount: 1 }),
      msg('P', { amount: 999 }), // same key, another payload
      msg('Q', cyclic),
      msg('Q', { amount: 2 }),
      msg('P', { amount: 1 }),
    ]);
    expect(outcomes.map((o) => [o.kind, o.tier])).toEqual([
      ['duplicate', 'cache'],
      ['conflict', undefined],
      ['failed', undefined],
      ['duplicate', 'cache'],
      ['duplicate', 'cache'],
    ]);
    expect(outcomes[2]?.error).toMatchObject({ code: 'PAYLOAD_NOT_SERIALIZABLE' });
    // Each copy reported once (in the order they were decided).
    expect(
      h.outcomes
        .slice(-5)
        .map((o) => o.kind)
        .sort(),
    ).toEqual(outcomes.map((o) => o.kind).sort());
    expect(h.cache.faults.calls.get('getMany')).toBe(1);
    expect(consumer.runs.sort()).toEqual(['P', 'Q']);
  });
});
