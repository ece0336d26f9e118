/**
 * How each settlement is carried out on RabbitMQ's own means, seen from the queues: TTL retry queues per
 * ladder step, our attempt header, waits that keep it, the dead-letter queue with its reason, the
 * transport's own dead letters and retries, binding-key filters, the hand-over before consumer_timeout.
 */
import type { Settlement, TransportMessage } from '@idempotent-mq/core/adapter';
import { RABBITMQ_HEADERS, RabbitMQPublisher, RabbitMQTransport, topologyOf } from '@idempotent-mq/rabbitmq';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_RETRY_LADDER_MS, retryStep } from '../src/topology.js';
import {
  eventually,
  Inspector,
  RABBITMQ_URL,
  RecordingLogger,
  recorder,
  sleep,
  spec,
  uniqueNames,
} from './support.js';

let inspector: Inspector;
let publisher: RabbitMQPublisher;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  inspector = await Inspector.open();
  // mandatory: false, so that the filter test may publish what no group receives.
  publisher = new RabbitMQPublisher({ url: RABBITMQ_URL, mandatory: false });
  await publisher.start();
});
afterAll(async () => {
  await publisher?.stop();
  await inspector?.close();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A transport and a fresh group, both cleaned up after the test. */
async function setUp(
  prefix: string,
  options: Partial<ConstructorParameters<typeof RabbitMQTransport>[0]> = {},
  filter?: string,
) {
  const { topic, group } = uniqueNames(prefix);
  const logger = new RecordingLogger();
  const { events, onSettled } = recorder();
  const transport = new RabbitMQTransport({ url: RABBITMQ_URL, logger, onSettled, ...options });
  cleanups.push(() => inspector.deleteTopology(topic, group));
  cleanups.push(() => transport.stop());
  // Declared with the listener's filter: bindings are only ever added, a '*' here would bind '#' for good.
  await publisher.declare({ topic, consumerGroup: group, filter });
  return { topic, group, logger, events, transport, names: topologyOf(topic, group) };
}

const retry = (delayMs: number, countsAsAttempt: boolean, reason = 'test'): Settlement => ({
  action: 'retry',
  delayMs,
  countsAsAttempt,
  reason,
});

describe('the retry ladder', () => {
  it('rounds a delay up to the next step, so that a retry never comes back early, with a bounded number of queues', () => {
    const step = (ms: number) => retryStep(DEFAULT_RETRY_LADDER_MS, ms);
    expect([step(0), step(-5), step(1), step(50), step(51), step(1000), step(1200), step(61_000)]).toEqual([
      0, 0, 50, 50, 100, 1000, 1500, 90_000,
    ]);
    expect(step(86_400_000)).toBe(86_400_000);
    expect(step(10 ** 10)).toBe(86_400_000); // past the top: the top (the profile's maxRetryDelayMs)
    expect(DEFAULT_RETRY_LADDER_MS.length).toBe(36);
    const ratios = DEFAULT_RETRY_LADDER_MS.slice(1).map(
      (ms, i) => ms / (DEFAULT_RETRY_LADDER_MS[i] as number),
    );
    expect(Math.max(...ratios)).toBeLessThanOrEqual(2);
  });

  it('a failure retry parks a copy in the TTL queue of its step, and it comes back after it with the attempt counted in our header', async () => {
    const { topic, group, events, transport, names } = await setUp('ladder');
    const seen: { attempt: number; at: number; headers: TransportMessage['properties'] }[] = [];
    await transport.subscribe(
      spec(topic, group, (m) => {
        seen.push({ attempt: m.deliveryAttempt, at: Date.now(), headers: m.properties });
        return m.deliveryAttempt === 1
          ? retry(120, true, 'test: a failure')
          : { action: 'deadLetter', reason: 'test: look at it' };
      }),
    );
    await publisher.send({ topic, keys: ['LADDER-1'], body: { n: 1 }, routingKey: 'PAY' });
    await eventually(
      'dead-lettered on attempt 2',
      async () => (await inspector.count(names.deadLetterQueue)) === 1,
    );

    expect(seen.map((s) => s.attempt)).toEqual([1, 2]);
    expect((seen[1]?.at ?? 0) - (seen[0]?.at ?? 0)).toBeGreaterThanOrEqual(190); // 120 ms rounded up to 200
    expect(events.find((e) => e.action === 'retry')).toMatchObject({
      action: 'retry',
      delayMs: 200,
      countsAsAttempt: true,
      queue: names.retryQueue(200),
      ok: true,
    });
    const [copy] = await inspector.peek(names.deadLetterQueue);
    const headers = copy?.properties.headers ?? {};
    expect(headers[RABBITMQ_HEADERS.attempt]).toBe(2);
    expect(headers[RABBITMQ_HEADERS.retryReason]).toBe('test: a failure');
    expect(headers[RABBITMQ_HEADERS.routingKey]).toBe('PAY'); // the tag, kept across the retry queue
    // RabbitMQ's own dead-lettering headers (from the TTL queue) are not carried on: ours count.
    expect(Object.keys(headers).filter((h) => h.startsWith('x-'))).toEqual([]);
    expect(await inspector.count(names.retryQueue(200))).toBe(0);
    expect(await inspector.count(names.queue)).toBe(0);
  });

  it('a wait goes through the same queues but keeps the attempt: waits never spend the budget, failures do', async () => {
    const { topic, group, events, transport, names } = await setUp('wait');
    const attempts: number[] = [];
    await transport.subscribe(
      spec(
        topic,
        group,
        (m) => {
          attempts.push(m.deliveryAttempt);
          if (attempts.length <= 3) return retry(60, false, 'test: another copy holds the claim');
          if (attempts.length === 4) return retry(60, true, 'test: a failure');
          return { action: 'deadLetter', reason: 'test: done' };
        },
        { maxAttempts: 1 },
      ),
    );
    await publisher.send({ topic, keys: ['WAIT-1'], body: {} });
    await eventually('dead-lettered', async () => (await inspector.count(names.deadLetterQueue)) === 1);
    expect(attempts).toEqual([1, 1, 1, 1, 2]);
    expect(events.filter((e) => e.action === 'retry').map((e) => [e.countsAsAttempt, e.queue])).toEqual([
      ...Array.from({ length: 3 }, () => [false, names.retryQueue(100)]),
      [true, names.retryQueue(100)],
    ]);
    const [copy] = await inspector.peek(names.deadLetterQueue);
    expect(copy?.properties.headers?.[RABBITMQ_HEADERS.attempt]).toBe(2);
  });

  it('a retry without delay goes straight back to the group queue', async () => {
    const { topic, group, events, transport, names } = await setUp('nodelay');
    const attempts: number[] = [];
    await transport.subscribe(
      spec(topic, group, (m) => {
        attempts.push(m.deliveryAttempt);
        return attempts.length === 1 ? retry(0, true) : { action: 'ack' };
      }),
    );
    await publisher.send({ topic, keys: ['NODELAY-1'], body: {} });
    // The copy may be handled before the original's ack is reported: it is published first.
    await eventually(
      'back, and reported',
      () => attempts.length === 2 && events.some((e) => e.action === 'retry'),
    );
    expect(attempts).toEqual([1, 2]);
    expect(events.find((e) => e.action === 'retry')).toMatchObject({ delayMs: 0, queue: names.queue });
  });
});

describe('dead letters', () => {
  it('a dead letter lands in <queue>.dlq with its reason, attempt, routing key, properties and body', async () => {
    const { topic, group, transport, names } = await setUp('dead');
    let deliveries = 0;
    await transport.subscribe(
      spec(topic, group, () => {
        deliveries++;
        return {
          action: 'deadLetter',
          reason: 'PayloadConflictError: the key was used with another payload',
        };
      }),
    );
    await publisher.send({
      topic,
      keys: ['DEAD-1'],
      body: { amount: 5 },
      routingKey: 'REFUND',
      properties: { region: 'eu' },
    });
    await eventually('dead-lettered', async () => (await inspector.count(names.deadLetterQueue)) === 1);
    const [dead] = await inspector.peek(names.deadLetterQueue);
    const headers = dead?.properties.headers ?? {};
    expect(headers[RABBITMQ_HEADERS.deadLetterReason]).toBe(
      'PayloadConflictError: the key was used with another payload',
    );
    expect(headers[RABBITMQ_HEADERS.attempt]).toBe(1);
    expect(headers[RABBITMQ_HEADERS.routingKey]).toBe('REFUND');
    expect(headers[RABBITMQ_HEADERS.deadLetteredAt]).toBeGreaterThan(Date.now() - 60_000);
    expect(headers.region).toBe('eu');
    expect(dead?.properties.messageId).toBe('DEAD-1');
    expect(dead?.properties.deliveryMode).toBe(2);
    expect(JSON.parse(dead?.content.toString() ?? '')).toEqual({ amount: 5 });
    await sleep(300);
    expect(deliveries).toBe(1);
    expect(await inspector.count(names.queue)).toBe(0);
  });

  it('a body the codec cannot decode is dead-lettered with the reason; no handler sees it', async () => {
    const { topic, group, transport, names } = await setUp('poison');
    const handled: string[] = [];
    await transport.subscribe(
      spec(topic, group, (m) => {
        handled.push(m.keys[0] as string);
        return { action: 'ack' };
      }),
    );
    await inspector.publishRaw(topic, '', Buffer.from('{not json'), { messageId: 'RAW-1' });
    await publisher.send({ topic, keys: ['GOOD-1'], body: {} });
    await eventually('dead-lettered', async () => (await inspector.count(names.deadLetterQueue)) === 1);
    await eventually('the good one handled', () => handled.includes('GOOD-1'));
    const [dead] = await inspector.peek(names.deadLetterQueue);
    expect(String(dead?.properties.headers?.[RABBITMQ_HEADERS.deadLetterReason])).toContain('not valid JSON');
    expect(dead?.properties.messageId).toBe('RAW-1');
    expect(handled).toEqual(['GOOD-1']);
  });
});

describe('the transport’s own settlements', () => {
  it('a handler that throws has its batch retried with failureBackoff, spending an attempt', async () => {
    const { topic, group, logger, transport } = await setUp('throws', {
      failureBackoff: { initialMs: 50, maxMs: 50 },
    });
    const attempts: number[] = [];
    await transport.subscribe({
      ...spec(topic, group, () => ({ action: 'ack' })),
      handle: async (messages) => {
        attempts.push(...messages.map((m) => m.deliveryAttempt));
        if (attempts.length === 1) throw new Error('boom');
        return messages.map(() => ({ action: 'ack' }) as const);
      },
    });
    await publisher.send({ topic, keys: ['THROW-1'], body: {} });
    await eventually('retried', () => attempts.length === 2);
    expect(attempts).toEqual([1, 2]);
    expect(logger.at('warn').some((l) => l.includes('the handler threw: boom'))).toBe(true);
  });

  it('a binding-key filter receives only its routing keys, and the tag survives a retry', async () => {
    const { topic, group, transport } = await setUp('filter', {}, 'PAY || REFUND');
    const seen: string[] = [];
    await transport.subscribe(
      spec(
        topic,
        group,
        (m) => {
          seen.push(`${m.tag}:${m.deliveryAttempt}`);
          return m.tag === 'PAY' && m.deliveryAttempt === 1 ? retry(50, true) : { action: 'ack' };
        },
        { filter: 'PAY || REFUND' },
      ),
    );
    for (const routingKey of ['PAY', 'REFUND', 'OTHER']) {
      await publisher.send({ topic, keys: [`FILTER-${routingKey}`], body: {}, routingKey });
    }
    await eventually('PAY back from its retry', () => seen.includes('PAY:2'));
    await sleep(300);
    expect(seen.sort()).toEqual(['PAY:1', 'PAY:2', 'REFUND:1']);
  });
});

describe("RabbitMQ's consumer_timeout", () => {
  it('a handler running past handOverAfterMs has its message handed back, counted; its channel and the other deliveries are untouched', async () => {
    const { topic, group, logger, events, transport, names } = await setUp('handover', {
      // As told by an operator whose server closes channels after 10 s (the shared server here: 30 min).
      consumerTimeoutMs: 10_000,
      handOverAfterMs: 700,
      confirmTimeoutMs: 1000,
      settleAttempts: 1,
    });
    const seen: string[] = [];
    await transport.subscribe(
      spec(topic, group, async (m) => {
        seen.push(`${m.keys[0]}:${m.deliveryAttempt}`);
        if (m.keys[0] === 'SLOW' && m.deliveryAttempt === 1) await sleep(1600);
        if (m.keys[0] === 'OTHER') await sleep(300);
        return { action: 'ack' };
      }),
    );
    await publisher.send({ topic, keys: ['SLOW'], body: {} });
    await publisher.send({ topic, keys: ['OTHER'], body: {} });
    await eventually(
      'the late settlement dropped',
      () => events.some((e) => e.dropped === 'handedOver'),
      5000,
    );
    expect(seen.sort()).toEqual(['OTHER:1', 'SLOW:1', 'SLOW:2']);
    expect(events).toContainEqual(
      expect.objectContaining({
        keys: ['SLOW'],
        deliveryAttempt: 1,
        action: 'retry',
        countsAsAttempt: true,
        queue: names.queue,
        ok: true,
      }),
    );
    expect(events).toContainEqual(
      expect.objectContaining({ keys: ['SLOW'], deliveryAttempt: 1, action: 'ack', dropped: 'handedOver' }),
    );
    expect(events).toContainEqual(expect.objectContaining({ keys: ['OTHER'], action: 'ack', ok: true }));
    expect(logger.at('warn').some((l) => l.includes('handed back'))).toBe(true);
    expect(logger.at('warn').some((l) => l.includes('closed the channel'))).toBe(false);
    expect(await inspector.count(names.queue)).toBe(0);
  });
});
