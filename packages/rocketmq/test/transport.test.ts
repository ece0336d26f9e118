/** RocketMQTransport driving the real rocketmq-client-nodejs against the gRPC test broker, faults on. */
import type { TransportMessage } from '@idempotent-mq/core';
import { InvalidOptionError } from '@idempotent-mq/core';
import type { Settlement } from '@idempotent-mq/core/adapter';
import { RocketMQPublisher, RocketMQTransport, type SettledEvent } from '@idempotent-mq/rocketmq';
import { RocketMQTestBroker } from '@idempotent-mq/rocketmq-testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { eventually, fastOptions, RecordingLogger, recordingSpec, sleep, useTempHome } from './support.js';

const restoreHome = useTempHome();
let broker: RocketMQTestBroker;
let publisher: RocketMQPublisher;
const transports: RocketMQTransport[] = [];
const TOPICS = [
  'orders',
  'tagged',
  'retries',
  'dlq',
  'slow',
  'lost',
  'dup',
  'restart',
  'drain',
  'poison',
  'bounded',
  'crash',
];

beforeAll(async () => {
  broker = await RocketMQTestBroker.start();
  publisher = new RocketMQPublisher({
    endpoints: broker.endpoints,
    topics: TOPICS,
    logger: new RecordingLogger(),
  });
  await publisher.start();
});

afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.stop()));
});

afterAll(async () => {
  await publisher?.stop();
  await broker?.close();
  restoreHome();
});

function transport(settled?: SettledEvent[], extra = {}, logger = new RecordingLogger()) {
  const t = new RocketMQTransport(fastOptions(broker.endpoints, logger, settled, extra));
  transports.push(t);
  return t;
}

const send = (topic: string, key: string, body: unknown = { key }, tag?: string) =>
  publisher.send({ topic, keys: [key], body, ...(tag ? { tag } : {}) });

describe('RocketMQTransport over the real client', () => {
  it('receives a sent message with its keys, tag, properties and decoded body, and acks it', async () => {
    const t = transport();
    const spec = recordingSpec({ topic: 'orders', consumerGroup: 'g-basic' });
    await t.subscribe(spec);
    const receipt = await publisher.send({
      topic: 'orders',
      keys: ['ORDER-1'],
      tag: 'NEW',
      properties: { source: 'test' },
      body: { amount: 100 },
    });
    await eventually('the message is acked', () => broker.acked('g-basic').includes(receipt.messageId));
    expect(spec.received).toHaveLength(1);
    expect(spec.received[0]).toMatchObject({
      messageId: receipt.messageId,
      topic: 'orders',
      keys: ['ORDER-1'],
      tag: 'NEW',
      body: { amount: 100 },
      properties: { source: 'test' },
      deliveryAttempt: 1,
    });
    expect(spec.received[0]?.bornAt).toBeGreaterThan(0);
  });

  it('each consumer group gets each message, and a tag filter narrows what a group receives', async () => {
    const all = recordingSpec({ topic: 'tagged', consumerGroup: 'g-all' });
    const pay = recordingSpec({ topic: 'tagged', consumerGroup: 'g-pay', filter: 'PAY || REFUND' });
    await transport().subscribe(all);
    await transport().subscribe(pay);
    await send('tagged', 'T-1', {}, 'PAY');
    await send('tagged', 'T-2', {}, 'SHIP');
    await send('tagged', 'T-3', {}, 'REFUND');
    await eventually('g-all has all three', () => broker.acked('g-all').length === 3);
    await eventually('g-pay has two', () => broker.acked('g-pay').length === 2);
    await sleep(300);
    expect(pay.received.map((m) => m.keys[0]).sort()).toEqual(['T-1', 'T-3']);
    expect(all.received.map((m) => m.keys[0]).sort()).toEqual(['T-1', 'T-2', 'T-3']);
  });

  it('a failure retry is redelivered after the delay it asked for, with the delivery attempt counted', async () => {
    const settled: SettledEvent[] = [];
    const seenAt: number[] = [];
    const spec = recordingSpec({ topic: 'retries', consumerGroup: 'g-retry' }, (m) => {
      seenAt.push(Date.now());
      return m.deliveryAttempt === 1
        ? { action: 'retry', delayMs: 800, countsAsAttempt: true, reason: 'the handler failed' }
        : { action: 'ack' };
    });
    await transport(settled).subscribe(spec);
    const { messageId } = await send('retries', 'R-1');
    await eventually('acked on the second delivery', () => broker.acked('g-retry').includes(messageId));
    // The broker records the ack before it answers; the transport reports it once the answer arrives.
    await eventually('the ack reported', () => settled.length === 2);
    expect(spec.received.map((m) => m.deliveryAttempt)).toEqual([1, 2]);
    expect(broker.invisibleChanges('g-retry')).toEqual([
      expect.objectContaining({ messageId, durationMs: 800 }),
    ]);
    expect((seenAt[1] ?? 0) - (seenAt[0] ?? 0)).toBeGreaterThanOrEqual(750);
    expect(settled.map((e) => [e.action, e.ok])).toEqual([
      ['retry', true],
      ['ack', true],
    ]);
  });

  it('a dead letter goes through ForwardMessageToDeadLetterQueue, with the reason reported', async () => {
    const settled: SettledEvent[] = [];
    // The registry decides when a failing message has had its last attempt; the transport forwards it.
    const spec = recordingSpec({ topic: 'dlq', consumerGroup: 'g-dlq', maxAttempts: 3 }, (m) =>
      m.deliveryAttempt < 3
        ? { action: 'retry', delayMs: 50, countsAsAttempt: true, reason: 'card declined' }
        : { action: 'deadLetter', reason: 'failed 3 of 3 attempts; last: card declined' },
    );
    await transport(settled).subscribe(spec);
    const { messageId } = await send('dlq', 'D-1');
    await eventually('dead-lettered', () => broker.deadLetters('g-dlq').length === 1);
    // The broker records the dead letter before it answers; the transport reports it once the answer arrives.
    await eventually('the dead letter reported', () => settled.at(-1)?.action === 'deadLetter');
    const [dead] = broker.deadLetters('g-dlq');
    expect(dead).toMatchObject({ dlqTopic: '%DLQ%g-dlq', cause: 'forwarded', deliveryAttempt: 3 });
    expect(dead?.message.messageId).toBe(messageId);
    expect(spec.received.map((m) => m.deliveryAttempt)).toEqual([1, 2, 3]);
    expect(settled.at(-1)).toMatchObject({ action: 'deadLetter', ok: true });
    expect(settled.at(-1)?.reason).toBe('failed 3 of 3 attempts; last: card declined');
    await sleep(300);
    expect(broker.deliveries({ group: 'g-dlq', messageId })).toHaveLength(3);
  });

  it('a handler that throws gets the batch redelivered with backoff, never acked', async () => {
    const logger = new RecordingLogger();
    let calls = 0;
    await transport(undefined, {}, logger).subscribe({
      topic: 'crash',
      consumerGroup: 'g-crash',
      concurrency: 2,
      maxAttempts: 5,
      listener: {},
      async handle(messages) {
        calls++;
        if (calls === 1) throw new Error('database down');
        return messages.map(() => ({ action: 'ack' as const }));
      },
    });
    const { messageId } = await send('crash', 'C-1');
    await eventually('acked after the failure', () => broker.acked('g-crash').includes(messageId));
    expect(broker.deliveries({ group: 'g-crash', messageId }).map((d) => d.attempt)).toEqual([1, 2]);
    expect(broker.invisibleChanges('g-crash')[0]?.durationMs).toBe(100);
    expect(logger.at('warn').join('\n')).toMatch(/the handler threw: database down/);
  });

  it('keeps a long-running message invisible to the rest of its group while the handler works', async () => {
    // Both consumers of the group are slow: whichever receives the message (either may be polling when it
    // arrives) holds it for 3 s, twice its invisible time, so only renewals keep it from the other.
    const slow = async (): Promise<Settlement> => {
      await sleep(3000);
      return { action: 'ack' };
    };
    const first = recordingSpec({ topic: 'slow', consumerGroup: 'g-slow' }, slow);
    await transport(undefined, { invisibleDurationMs: 1500, renewIntervalMs: 300 }).subscribe(first);
    const second = recordingSpec({ topic: 'slow', consumerGroup: 'g-slow' }, slow);
    await transport(undefined, { invisibleDurationMs: 1500, renewIntervalMs: 300 }).subscribe(second);
    const { messageId } = await send('slow', 'S-1');
    await eventually('acked', () => broker.acked('g-slow').includes(messageId), 8000);
    expect(broker.deliveries({ group: 'g-slow', messageId })).toHaveLength(1);
    expect(first.received.length + second.received.length).toBe(1);
    expect(broker.invisibleChanges('g-slow').length).toBeGreaterThanOrEqual(5);
  });

  it('a lost ack makes the message come back: the duplicate reaches the handler again', async () => {
    const spec = recordingSpec({ topic: 'lost', consumerGroup: 'g-lost' });
    await transport().subscribe(spec);
    broker.faults.dropAcks = 1;
    const { messageId } = await send('lost', 'L-1');
    await eventually('acked for good', () => broker.acked('g-lost').includes(messageId), 8000);
    expect(spec.received.map((m) => [m.messageId, m.deliveryAttempt])).toEqual([
      [messageId, 1],
      [messageId, 2],
    ]);
    expect(broker.acks('g-lost').map((a) => a.applied)).toEqual([false, true]);
  });

  it('a lost ack response is reported, and the applied ack is not mistaken for a failure to redo', async () => {
    const settled: SettledEvent[] = [];
    const spec = recordingSpec({ topic: 'lost', consumerGroup: 'g-lost-response' });
    await transport(settled).subscribe(spec);
    // Through means settled, not only received: the fault must meet L-2's ack, not L-1's still on its way.
    await eventually(
      'the previous message is through',
      () => spec.received.length >= 1 && settled.length >= 1 && broker.acked('g-lost-response').length >= 1,
    );
    broker.faults.loseAckResponses = 1;
    const { messageId } = await send('lost', 'L-2');
    await eventually('settled', () => settled.some((e) => e.messageId === messageId));
    expect(broker.stateOf('g-lost-response', messageId)).toBe('acked');
    const event = settled.find((e) => e.messageId === messageId);
    // The retried ack finds its handle already used: INVALID_RECEIPT_HANDLE, and the transport stops there.
    expect(event).toMatchObject({ action: 'ack', ok: false });
    expect((event?.error as { code?: number } | undefined)?.code).toBe(40013);
    await sleep(2500);
    expect(spec.received.filter((m) => m.messageId === messageId)).toHaveLength(1);
  });

  it('a duplicate send delivers both copies (same key, new message id)', async () => {
    const spec = recordingSpec({ topic: 'dup', consumerGroup: 'g-dup' });
    await transport().subscribe(spec);
    broker.faults.duplicateSends = 1;
    await send('dup', 'DUP-1');
    await eventually('both copies acked', () => broker.acked('g-dup').length === 2);
    expect(spec.received.map((m) => m.keys)).toEqual([['DUP-1'], ['DUP-1']]);
    expect(new Set(spec.received.map((m) => m.messageId)).size).toBe(2);
  });

  it('recovers from a broker restart mid-stream: everything sent is handled', async () => {
    const logger = new RecordingLogger();
    const spec = recordingSpec({ topic: 'restart', consumerGroup: 'g-restart', concurrency: 2 }, async () => {
      await sleep(50);
      return { action: 'ack' };
    });
    await transport(undefined, {}, logger).subscribe(spec);
    for (let i = 0; i < 5; i++) await send('restart', `RS-${i}`);
    await broker.restart(500);
    for (let i = 5; i < 10; i++) {
      for (let tries = 0; ; tries++) {
        try {
          await send('restart', `RS-${i}`);
          break;
        } catch (error) {
          if (tries > 50) throw error;
          await sleep(100);
        }
      }
    }
    const keys = Array.from({ length: 10 }, (_, i) => `RS-${i}`);
    await eventually(
      'every key acked',
      () => keys.every((k) => broker.acks('g-restart').some((a) => a.applied && a.keys.includes(k))),
      15_000,
    );
    expect(logger.at('warn').join('\n')).toMatch(/receive failed/);
  });

  it('stop() stops receiving, waits for the handler in flight, and acks its message', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const spec = recordingSpec({ topic: 'drain', consumerGroup: 'g-drain' }, async () => {
      await gate;
      return { action: 'ack' };
    });
    const t = new RocketMQTransport(fastOptions(broker.endpoints, new RecordingLogger()));
    await t.subscribe(spec);
    const { messageId } = await send('drain', 'DR-1');
    await eventually('the handler has it', () => spec.received.length === 1);
    let stopped = false;
    const stopping = t.stop().then(() => {
      stopped = true;
    });
    await sleep(700);
    expect(stopped).toBe(false);
    release();
    await stopping;
    expect(broker.acked('g-drain')).toEqual([messageId]);
    await send('drain', 'DR-2');
    await sleep(700);
    expect(spec.received).toHaveLength(1);
    await expect(t.subscribe(spec)).rejects.toThrow(/not running/);
  });

  it('a body the codec cannot decode is dead-lettered with the reason, and the loop goes on', async () => {
    const settled: SettledEvent[] = [];
    const spec = recordingSpec({ topic: 'poison', consumerGroup: 'g-poison' });
    await transport(settled).subscribe(spec);
    const poison = broker.inject('poison', { body: '{"amount": 1', keys: ['P-1'] });
    const good = await send('poison', 'P-2');
    await eventually('the poison is dead-lettered', () => broker.deadLetters('g-poison').length === 1);
    await eventually('the good one is acked', () => broker.acked('g-poison').includes(good.messageId));
    expect(broker.deadLetters('g-poison')[0]?.message.messageId).toBe(poison.messageId);
    expect(spec.received.map((m) => m.messageId)).toEqual([good.messageId]);
    expect(settled.find((e) => e.messageId === poison.messageId)?.reason).toMatch(/not valid JSON/);
  });

  it('never runs more handlers at once than the concurrency', async () => {
    let running = 0;
    let peak = 0;
    const spec = recordingSpec({ topic: 'bounded', consumerGroup: 'g-bounded', concurrency: 2 }, async () => {
      running++;
      peak = Math.max(peak, running);
      await sleep(150);
      running--;
      return { action: 'ack' };
    });
    await transport().subscribe({
      ...spec,
      // one message per handler call, to count handlers
      handle: async (messages: readonly TransportMessage[]) =>
        Promise.all(messages.map((m) => spec.handle([m]).then((s) => s[0] ?? { action: 'ack' as const }))),
    });
    for (let i = 0; i < 6; i++) await send('bounded', `B-${i}`);
    await eventually('all acked', () => broker.acked('g-bounded').length === 6);
    expect(peak).toBeLessThanOrEqual(2);
    expect(peak).toBeGreaterThanOrEqual(1);
  });

  it('passes namespace and credentials through to the proxy', async () => {
    const t = new RocketMQTransport({
      ...fastOptions(broker.endpoints, new RecordingLogger()),
      namespace: 'ns-test',
      sessionCredentials: { accessKey: 'AK', accessSecret: 'SK' },
    });
    transports.push(t);
    await t.subscribe(recordingSpec({ topic: 'orders', consumerGroup: 'g-creds' }));
    const client = broker.clients().find((c) => c.group === 'g-creds');
    expect(client).toMatchObject({ clientType: 'SIMPLE_CONSUMER', namespace: 'ns-test', topics: ['orders'] });
    expect(client?.authorization).toMatch(
      /^MQv2-HMAC-SHA1 Credential=AK, SignedHeaders=x-mq-date-time, Signature=/,
    );
  });

  it("takes a SQL filter and a codec from the listener's RocketMQ metadata", async () => {
    const spec = recordingSpec({
      topic: 'orders',
      consumerGroup: 'g-sql',
      listener: { sqlFilter: "region = 'eu'", codec: 'utf8' },
    });
    await transport().subscribe(spec);
    expect(broker.clients().find((c) => c.group === 'g-sql')?.filters).toEqual([
      { topic: 'orders', type: 'SQL', expression: "region = 'eu'" },
    ]);
    const { messageId } = await send('orders', 'SQL-1', { text: true });
    await eventually('received', () => spec.received.some((m) => m.messageId === messageId));
    expect(spec.received.find((m) => m.messageId === messageId)?.body).toBe('{"text":true}');
    await expect(
      transport().subscribe(
        recordingSpec({ topic: 'orders', consumerGroup: 'g-sql2', listener: { codec: 'xml' } }),
      ),
    ).rejects.toThrow(/subscription\(orders\/g-sql2\)\.listener\.codec/);
  });

  it('stop() during a broker outage still closes the client (its own shutdown would throw half-way)', async () => {
    const logger = new RecordingLogger();
    const t = new RocketMQTransport(fastOptions(broker.endpoints, logger));
    await t.subscribe(recordingSpec({ topic: 'orders', consumerGroup: 'g-outage' }));
    await broker.stopServing();
    try {
      const started = Date.now();
      await t.stop();
      expect(Date.now() - started).toBeLessThan(5000);
      expect(logger.at('warn').join('\n')).toMatch(/could not notify the proxy/);
    } finally {
      await broker.resumeServing();
    }
  });

  it('validates options and subscriptions at start-up, naming the option', async () => {
    expect(() => new RocketMQTransport({ endpoints: 'localhost' })).toThrow(InvalidOptionError);
    expect(() => new RocketMQTransport({ endpoints: 'localhost' })).toThrow(/RocketMQTransport\.endpoints/);
    expect(() => new RocketMQTransport({ endpoints: broker.endpoints, requestTimeout: 10 })).toThrow(
      /RocketMQTransport\.requestTimeout.*1000/,
    );
    expect(() => new RocketMQTransport({ endpoints: broker.endpoints, codec: 'xml' as never })).toThrow(
      /RocketMQTransport\.codec/,
    );
    const t = transport();
    await expect(
      t.subscribe({ ...recordingSpec({ topic: 'orders', consumerGroup: 'g-v' }), concurrency: 0 }),
    ).rejects.toThrow(/subscription\(orders\/g-v\)\.concurrency/);
  });
});
