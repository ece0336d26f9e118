import type { Settlement, SubscriptionSpec, TransportMessage } from '@idempotent-mq/core/adapter';
import { describe, expect, it } from 'vitest';
import { InMemoryBroker } from '../src/index.js';

function spec(
  handle: (m: TransportMessage) => Settlement | Promise<Settlement>,
  extra: Partial<SubscriptionSpec> = {},
): SubscriptionSpec {
  return {
    topic: 'T',
    consumerGroup: 'G',
    concurrency: 4,
    maxAttempts: 5,
    listener: {},
    handle: async (ms) => Promise.all(ms.map(handle)),
    ...extra,
  };
}

/** Does `f`, then acks. */
function ack(f: () => unknown): Settlement {
  f();
  return { action: 'ack' };
}

describe('InMemoryBroker', () => {
  it('delivers each message to every group, once per group, with attempt 1', async () => {
    const broker = new InMemoryBroker();
    const seen: string[] = [];
    const a = broker.connect();
    const b = broker.connect();
    await a.subscribe(spec((m) => ack(() => seen.push(`G:${m.keys[0]}:${m.deliveryAttempt}`))));
    await b.subscribe(
      spec((m) => ack(() => seen.push(`H:${m.keys[0]}:${m.deliveryAttempt}`)), {
        consumerGroup: 'H',
      }),
    );
    broker.publish('T', { keys: ['k1'], body: 1 });
    await broker.idle(2_000);
    await Promise.all([a.stop(), b.stop()]);
    expect(seen.sort()).toEqual(['G:k1:1', 'H:k1:1']);
  });

  it('a retry comes back after its delay with the attempt counted', async () => {
    const broker = new InMemoryBroker();
    const times: number[] = [];
    const t = broker.connect();
    await t.subscribe(
      spec((m) => {
        times.push(Date.now());
        return m.deliveryAttempt < 3
          ? { action: 'retry', delayMs: 30, countsAsAttempt: true, reason: 'later' }
          : { action: 'ack' };
      }),
    );
    broker.publish('T', { keys: ['k'], body: 1 });
    await broker.idle(2_000);
    await t.stop();
    expect(times).toHaveLength(3);
    expect((times[1] as number) - (times[0] as number)).toBeGreaterThanOrEqual(25);
    expect(broker.deliveries).toMatchObject({ first: 1, retry: 2 });
  });

  it('filters by tag expression', async () => {
    const broker = new InMemoryBroker();
    const seen: string[] = [];
    const t = broker.connect();
    await t.subscribe(spec((m) => ack(() => seen.push(m.tag ?? '')), { filter: 'PAY || REFUND' }));
    for (const tag of ['PAY', 'OTHER', 'REFUND', undefined])
      broker.publish('T', { keys: ['k'], body: 1, tag });
    await broker.idle(2_000);
    await t.stop();
    expect(seen.sort()).toEqual(['PAY', 'REFUND']);
  });

  it('each fault produces its kind of duplicate, reproducibly for a seed', async () => {
    const run = async () => {
      const broker = new InMemoryBroker({
        seed: 7,
        visibilityTimeoutMs: 10,
        faults: { producerResend: 0.3, lostAck: 0.2, rebalance: 0.2, crash: 0.1 },
      });
      const t = broker.connect();
      await t.subscribe(spec(() => ({ action: 'ack' }), { maxAttempts: 50 }));
      for (let i = 0; i < 200; i++) broker.publish('T', { keys: [`k${i}`], body: i });
      await broker.idle(10_000);
      await t.stop();
      return { deliveries: { ...broker.deliveries }, stored: broker.stored };
    };
    const one = await run();
    expect(one.stored).toBeGreaterThan(200);
    for (const cause of ['first', 'resend', 'lostAck', 'rebalance', 'crash'] as const) {
      expect(one.deliveries[cause], cause).toBeGreaterThan(0);
    }
    expect(one.deliveries.first + one.deliveries.resend).toBe(one.stored);
    const two = await run();
    expect(two.stored).toBe(one.stored);
    expect(two.deliveries.resend).toBe(one.deliveries.resend);
  });

  it('a consumer that keeps crashing has its message dead-lettered by the broker after maxDeliveries', async () => {
    const broker = new InMemoryBroker({ visibilityTimeoutMs: 5, maxDeliveries: 3, faults: { crash: 1 } });
    const t = broker.connect();
    let calls = 0;
    await t.subscribe(spec(() => ack(() => calls++)));
    broker.publish('T', { keys: ['k'], body: 1 });
    await broker.idle(2_000);
    await t.stop();
    expect(calls).toBe(3);
    expect(broker.deadLetters('G')[0]?.reason).toContain('gave up after 3 deliveries');
  });

  it('stop() lets a handler in flight finish and settle', async () => {
    const broker = new InMemoryBroker();
    const t = broker.connect();
    let finished = false;
    await t.subscribe(
      spec(async () => {
        await new Promise((r) => setTimeout(r, 50));
        finished = true;
        return { action: 'ack' };
      }),
    );
    broker.publish('T', { keys: ['k'], body: 1 });
    await new Promise((r) => setTimeout(r, 10));
    await t.stop();
    expect(finished).toBe(true);
    expect(broker.pending()).toBe(0);
  });

  it('rejects a fault probability outside 0..1 by name', () => {
    expect(() => new InMemoryBroker({ faults: { lostAck: 2 } })).toThrow('"faults.lostAck"');
  });
});
