/**
 * How RocketMQTransport carries out each settlement, as given: over a broker that allows only 3
 * deliveries, a wait never spends one, a failure retry is never turned into a dead letter by the
 * transport, and a message waiting in place at `stop()` is handed back, not lost.
 */
import type { Settlement } from '@idempotent-mq/core/adapter';
import { RocketMQPublisher, RocketMQTransport, type SettledEvent } from '@idempotent-mq/rocketmq';
import { RocketMQTestBroker } from '@idempotent-mq/rocketmq-testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { eventually, fastOptions, RecordingLogger, recordingSpec, sleep, useTempHome } from './support.js';

const restoreHome = useTempHome();
let broker: RocketMQTestBroker;
let publisher: RocketMQPublisher;
const transports: RocketMQTransport[] = [];
const TOPICS = ['waits', 'slot', 'last-attempt', 'stop-wait', 'long-retry', 'throws', 'orders'];

beforeAll(async () => {
  broker = await RocketMQTestBroker.start({ maxDeliveryAttempts: 3 });
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
  const t = new RocketMQTransport(
    fastOptions(broker.endpoints, logger, settled, { maxDeliveryAttempts: 3, ...extra }),
  );
  transports.push(t);
  return t;
}

const send = (topic: string, key: string) => publisher.send({ topic, keys: [key], body: { key } });

const wait = (delayMs: number): Settlement => ({
  action: 'retry',
  delayMs,
  countsAsAttempt: false,
  reason: 'another copy holds the claim',
});

describe('RocketMQTransport carries out each settlement as given', () => {
  it('a wait answered 30 times never spends a delivery: same attempt each time, no dead letter, acked at the end', async () => {
    let calls = 0;
    const spec = recordingSpec({ topic: 'waits', consumerGroup: 'g-waits', maxAttempts: 3 }, () =>
      ++calls <= 30 ? wait(50) : { action: 'ack' },
    );
    // 30 waits of 50 ms outlast the invisible time several times over: the lease must keep renewing it.
    await transport(undefined, { invisibleDurationMs: 1000, renewIntervalMs: 200 }).subscribe(spec);
    const { messageId } = await send('waits', 'W-1');
    await eventually(
      'acked or dead-lettered',
      () => broker.acked('g-waits').includes(messageId) || broker.deadLetters('g-waits').length > 0,
      15_000,
    );
    expect(broker.deadLetters('g-waits')).toEqual([]);
    expect(spec.received.map((m) => m.deliveryAttempt)).toEqual(Array(31).fill(1));
    expect(broker.deliveries({ group: 'g-waits', messageId })).toHaveLength(1);
    expect(broker.acked('g-waits')).toEqual([messageId]);
  });

  it('a message waiting in place holds its concurrency slot until its final settlement', async () => {
    const first = await send('slot', 'SL-1');
    const handled: string[] = [];
    const spec = recordingSpec({ topic: 'slot', consumerGroup: 'g-slot', concurrency: 1 }, (m) => {
      handled.push(m.keys[0] as string);
      return m.keys[0] === 'SL-1' && handled.length <= 10 ? wait(100) : { action: 'ack' };
    });
    await transport().subscribe(spec);
    await eventually('SL-1 is waiting', () => handled.length === 1);
    await send('slot', 'SL-2');
    await eventually('both acked', () => broker.acked('g-slot').length === 2);
    // SL-2 got the slot only once SL-1 was done waiting and acked.
    expect(handled).toEqual([...Array(11).fill('SL-1'), 'SL-2']);
    expect(broker.acked('g-slot')[0]).toBe(first.messageId);
  });

  it('a failure retry at the last attempt is carried out as a retry: the broker, not the transport, dead-letters it', async () => {
    const settled: SettledEvent[] = [];
    const spec = recordingSpec({ topic: 'last-attempt', consumerGroup: 'g-last', maxAttempts: 3 }, () => ({
      action: 'retry',
      delayMs: 50,
      countsAsAttempt: true,
      reason: 'the handler failed: card declined',
    }));
    await transport(settled).subscribe(spec);
    const { messageId } = await send('last-attempt', 'LA-1');
    await eventually('dead-lettered', () => broker.deadLetters('g-last').length === 1);
    expect(spec.received.map((m) => m.deliveryAttempt)).toEqual([1, 2, 3]);
    expect(settled.map((e) => [e.action, e.deliveryAttempt, e.countsAsAttempt])).toEqual([
      ['retry', 1, true],
      ['retry', 2, true],
      ['retry', 3, true],
    ]);
    expect(broker.deadLetters('g-last')[0]).toMatchObject({
      cause: 'maxDeliveryAttempts',
      message: expect.objectContaining({ messageId }),
    });
    expect(broker.invisibleChanges('g-last').map((c) => c.durationMs)).toEqual([50, 50, 50]);
  });

  it('a message waiting in place at stop() goes back to the broker for the rest of its wait, and the next consumer gets it', async () => {
    const settled: SettledEvent[] = [];
    const first = recordingSpec({ topic: 'stop-wait', consumerGroup: 'g-stop-wait' }, () => wait(1500));
    const t = new RocketMQTransport(fastOptions(broker.endpoints, new RecordingLogger(), settled));
    await t.subscribe(first);
    const { messageId } = await send('stop-wait', 'SW-1');
    await eventually('the first consumer has it', () => first.received.length === 1);
    await sleep(200);
    const started = Date.now();
    await t.stop();
    // The wait is cut short, not sat out.
    expect(Date.now() - started).toBeLessThan(1000);
    const [change] = broker.invisibleChanges('g-stop-wait').slice(-1);
    expect(change?.durationMs).toBeGreaterThan(0);
    expect(change?.durationMs).toBeLessThanOrEqual(1500);
    expect(settled.at(-1)).toMatchObject({
      action: 'retry',
      countsAsAttempt: false,
      inPlace: false,
      ok: true,
    });

    const second = recordingSpec({ topic: 'stop-wait', consumerGroup: 'g-stop-wait' });
    await transport().subscribe(second);
    await eventually('the next consumer acks it', () => broker.acked('g-stop-wait').includes(messageId));
    // Back at the broker, it counts as a delivery, as after a crash: attempt 2 of the broker's 3.
    expect(second.received.map((m) => [m.messageId, m.deliveryAttempt])).toEqual([[messageId, 2]]);
    expect(broker.deadLetters('g-stop-wait')).toEqual([]);
  });

  it('cuts a failure retry to the longest invisible time the proxy accepts (12 h)', async () => {
    const t = transport();
    expect(t.profile.maxRetryDelayMs).toBe(12 * 3_600_000);
    const spec = recordingSpec({ topic: 'long-retry', consumerGroup: 'g-long' }, () => ({
      action: 'retry',
      delayMs: 13 * 3_600_000,
      countsAsAttempt: true,
      reason: 'come back tomorrow',
    }));
    await t.subscribe(spec);
    const { messageId } = await send('long-retry', 'LR-1');
    await eventually('the retry is carried out', () => broker.invisibleChanges('g-long').length === 1);
    expect(broker.invisibleChanges('g-long')[0]).toMatchObject({ messageId, durationMs: 12 * 3_600_000 });
  });

  it('a handler that throws, or answers a retry without countsAsAttempt, is a failure retry with failureBackoff', async () => {
    const settled: SettledEvent[] = [];
    const logger = new RecordingLogger();
    let calls = 0;
    await transport(settled, {}, logger).subscribe({
      ...recordingSpec({ topic: 'throws', consumerGroup: 'g-throws' }),
      async handle(messages) {
        calls++;
        if (calls === 1) throw new Error('database down');
        // Neither a failure nor a wait: the transport cannot tell, so it spends the attempt.
        if (calls === 2) return messages.map(() => ({ action: 'retry', delayMs: 10, reason: '?' }) as never);
        return messages.map(() => ({ action: 'ack' as const }));
      },
    });
    const { messageId } = await send('throws', 'TH-1');
    await eventually('acked on the third delivery', () => broker.acked('g-throws').includes(messageId));
    expect(broker.deliveries({ group: 'g-throws', messageId }).map((d) => d.attempt)).toEqual([1, 2, 3]);
    expect(settled.slice(0, 2).map((e) => [e.action, e.countsAsAttempt, e.delayMs])).toEqual([
      ['retry', true, 100],
      ['retry', true, 200],
    ]);
    expect(logger.at('warn').join('\n')).toMatch(/the handler threw: database down/);
    expect(logger.at('warn').join('\n')).toMatch(/the handler answered 1 settlement\(s\) \(some malformed\)/);
  });

  it("warns at start-up when the proxy says the group dead-letters before the listener's last attempt", async () => {
    const logger = new RecordingLogger();
    // The transport believes 17 (the default); the proxy's settings say this broker's groups allow 3.
    await transport(undefined, { maxDeliveryAttempts: 17 }, logger).subscribe(
      recordingSpec({ topic: 'orders', consumerGroup: 'g-few', maxAttempts: 5 }),
    );
    expect(logger.at('warn').join('\n')).toMatch(
      /group "g-few" dead-letters after 3 deliveries, fewer than the listener's maxAttempts \(5\).*retryMaxTimes to 4.*maxDeliveryAttempts to 3/,
    );
    const quiet = new RecordingLogger();
    await transport(undefined, {}, quiet).subscribe(
      recordingSpec({ topic: 'orders', consumerGroup: 'g-enough', maxAttempts: 3 }),
    );
    expect(quiet.at('warn')).toEqual([]);
  });
});
