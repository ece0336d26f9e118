/**
 * How each settlement is carried out on JetStream, seen from the server's side: a failure retry is a
 * `nak` with its delay (the attempt is JetStream's delivery count), a wait never goes back to the server
 * (the count stays, max_deliver is never approached), a dead letter is published to `<prefix>.<group>`
 * with its reason before the original is terminated, and `working()` keeps a slow handler's message.
 */
import type { Settlement, SubscriptionSpec, TransportMessage } from '@idempotent-mq/core/adapter';
import {
  DLQ_ATTEMPT,
  DLQ_GROUP,
  DLQ_REASON,
  DLQ_SEQUENCE,
  DLQ_STREAM,
  DLQ_SUBJECT,
  derivedStreamName,
  KEYS_HEADER,
  NatsPublisher,
  NatsTransport,
  type SettledEvent,
} from '@idempotent-mq/nats';
import { AckPolicy, type JetStreamManager, jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  admin,
  deleteStreams,
  ensureTopicStream,
  NATS_URL,
  RecordingLogger,
  sleep,
  storedMessages,
  uniqueNames,
  until,
} from './support.js';

const ACK_WAIT_MS = 1000;

let nc: NatsConnection;
let jsm: JetStreamManager;
let publisher: NatsPublisher;
let names: ReturnType<typeof uniqueNames>;
let transports: NatsTransport[];
let events: SettledEvent[];
let logger: RecordingLogger;

beforeAll(async () => {
  ({ nc, jsm } = await admin());
  publisher = new NatsPublisher({ connection: nc });
  await publisher.start();
});
afterAll(async () => {
  await publisher?.stop();
  await nc?.close();
});
beforeEach(async () => {
  names = uniqueNames('settle');
  transports = [];
  events = [];
  logger = new RecordingLogger();
  await ensureTopicStream(jsm, names.topic);
});
afterEach(async () => {
  await Promise.allSettled(transports.map((t) => t.stop()));
  await deleteStreams(jsm, [names.topic], [names.deadLetterStream]);
});

function transport(): NatsTransport {
  const t = new NatsTransport({
    servers: NATS_URL,
    ackWaitMs: ACK_WAIT_MS,
    fetchExpiresMs: 1000,
    deadLetterSubjectPrefix: names.deadLetterSubjectPrefix,
    deadLetterStream: names.deadLetterStream,
    logger,
    onSettled: (e) => events.push(e),
  });
  transports.push(t);
  return t;
}

function subscribe(
  t: NatsTransport,
  answer: (m: TransportMessage) => Settlement | Promise<Settlement>,
  extra: Partial<SubscriptionSpec> = {},
) {
  return t.subscribe({
    topic: names.topic,
    consumerGroup: names.group,
    concurrency: 4,
    maxAttempts: t.profile.defaultMaxAttempts,
    listener: {},
    handle: (messages) => Promise.all(messages.map(answer)),
    ...extra,
  });
}

const durable = () => jsm.consumers.info(derivedStreamName(names.topic), names.group);

describe('NatsTransport settlements on JetStream', () => {
  it('a failure retry is a nak with its delay, and comes back with the attempt JetStream counted', async () => {
    const t = transport();
    const seen: { attempt: number; at: number }[] = [];
    await subscribe(t, (m) => {
      seen.push({ attempt: m.deliveryAttempt, at: Date.now() });
      return m.deliveryAttempt < 3
        ? { action: 'retry', delayMs: 400, countsAsAttempt: true, reason: 'a failure' }
        : { action: 'ack' };
    });
    await publisher.send({ topic: names.topic, keys: 'NAK-1', body: { n: 1 } });
    await until(() => seen.length === 3, 10_000, 'the retries never came back');
    expect(seen.map((s) => s.attempt)).toEqual([1, 2, 3]);
    for (const i of [1, 2]) {
      const gap = (seen[i]?.at ?? 0) - (seen[i - 1]?.at ?? 0);
      expect(gap).toBeGreaterThanOrEqual(380);
      // A nak's delay, not ack_wait: the retry does not wait for JetStream's timeout.
      expect(gap).toBeLessThan(ACK_WAIT_MS);
    }
    await until(() => events.some((e) => e.action === 'ack'), 2000, 'never acked');
    const info = await durable();
    expect(info.delivered.consumer_seq).toBe(3);
    expect(info.num_ack_pending).toBe(0);
    expect(events.filter((e) => e.action === 'retry').map((e) => [e.delayMs, e.ok])).toEqual([
      [400, true],
      [400, true],
    ]);
  });

  it('a wait keeps its attempt and never goes back to JetStream, so max_deliver is never approached', async () => {
    // A durable of the group made beforehand with max_deliver 3: a transport that counted waits as
    // deliveries would have JetStream give the message up after three.
    const stream = await ensureTopicStream(jsm, names.topic);
    await jsm.consumers.add(stream, {
      durable_name: names.group,
      ack_policy: AckPolicy.Explicit,
      max_deliver: 3,
      filter_subject: names.topic,
    });
    const t = transport();
    const attempts: number[] = [];
    await subscribe(
      t,
      (m) => {
        attempts.push(m.deliveryAttempt);
        return attempts.length <= 10
          ? { action: 'retry', delayMs: 30, countsAsAttempt: false, reason: 'another copy in flight' }
          : { action: 'ack' };
      },
      { maxAttempts: 1 },
    );
    expect((await durable()).config.max_deliver).toBe(-1);
    await publisher.send({ topic: names.topic, keys: 'WAIT-1', body: {} });
    await until(() => attempts.length === 11, 10_000, 'the waits stopped');
    expect(attempts).toEqual(Array.from({ length: 11 }, () => 1));
    await until(async () => (await durable()).num_ack_pending === 0, 3000, 'never acked');
    const info = await durable();
    expect(info.delivered.consumer_seq).toBe(1); // JetStream delivered it once: the waits stayed here
    expect(info.num_redelivered).toBe(0);
    expect(events.filter((e) => e.action === 'retry').every((e) => e.inPlace === true)).toBe(true);
    expect(
      await storedMessages(jsm, names.deadLetterStream, `${names.deadLetterSubjectPrefix}.${names.group}`),
    ).toEqual([]);
  });

  it('a dead letter lands on <prefix>.<group> with its reason, then the original is terminated', async () => {
    const t = transport();
    let deliveries = 0;
    await subscribe(t, () => {
      deliveries++;
      return { action: 'deadLetter', reason: 'PayloadConflictError: the key was used\nwith another payload' };
    });
    const receipt = await publisher.send({
      topic: names.topic,
      keys: ['DEAD-1', 'DEAD-1b'],
      body: { amount: 7 },
      headers: { 'x-trace': 'abc' },
    });
    const subject = `${names.deadLetterSubjectPrefix}.${names.group}`;
    await until(
      async () => (await storedMessages(jsm, names.deadLetterStream, subject)).length === 1,
      5000,
      'nothing was dead-lettered',
    );
    const [dead] = await storedMessages(jsm, names.deadLetterStream, subject);
    const h = dead?.header;
    expect(h?.get(DLQ_REASON)).toBe('PayloadConflictError: the key was used with another payload');
    expect(h?.get(DLQ_SUBJECT)).toBe(names.topic);
    expect(h?.get(DLQ_STREAM)).toBe(receipt.stream);
    expect(h?.get(DLQ_SEQUENCE)).toBe(String(receipt.seq));
    expect(h?.get(DLQ_GROUP)).toBe(names.group);
    expect(h?.get(DLQ_ATTEMPT)).toBe('1');
    expect(JSON.parse(h?.get(KEYS_HEADER) ?? '')).toEqual(['DEAD-1', 'DEAD-1b']);
    expect(h?.get('x-trace')).toBe('abc');
    expect(dead?.json()).toEqual({ amount: 7 });
    await sleep(ACK_WAIT_MS + 500);
    expect(deliveries).toBe(1); // terminated: never delivered again
    const info = await durable();
    expect([info.num_ack_pending, info.num_pending]).toEqual([0, 0]);
  });

  it('a body that cannot be decoded is dead-lettered with the reason, never handed to the handler', async () => {
    const t = transport();
    let handled = 0;
    await subscribe(t, () => {
      handled++;
      return { action: 'ack' };
    });
    await jetstream(nc).publish(names.topic, 'not json {', { msgID: 'RAW-1' });
    const subject = `${names.deadLetterSubjectPrefix}.${names.group}`;
    await until(
      async () => (await storedMessages(jsm, names.deadLetterStream, subject)).length === 1,
      5000,
      'nothing was dead-lettered',
    );
    const [dead] = await storedMessages(jsm, names.deadLetterStream, subject);
    expect(dead?.header.get(DLQ_REASON)).toMatch(/not valid JSON/);
    // Another producer's Nats-Msg-Id is read as the key, and carried in our header to the dead letter.
    expect(JSON.parse(dead?.header.get(KEYS_HEADER) ?? '')).toEqual(['RAW-1']);
    expect(handled).toBe(0);
  });

  it("working() keeps a slow handler's message from redelivery, however far past ack_wait it runs", async () => {
    const slow = transport();
    const other = transport();
    const seen: string[] = [];
    await subscribe(slow, async (m) => {
      seen.push(`slow:${m.deliveryAttempt}`);
      await sleep(ACK_WAIT_MS * 2.5);
      return { action: 'ack' };
    });
    await publisher.send({ topic: names.topic, keys: 'SLOW-1', body: {} });
    await until(() => seen.length === 1, 5000, 'never delivered');
    await subscribe(other, (m) => {
      seen.push(`other:${m.deliveryAttempt}`);
      return { action: 'ack' };
    });
    await until(() => events.some((e) => e.action === 'ack'), ACK_WAIT_MS * 4, 'never acked');
    expect(seen).toEqual(['slow:1']);
    const info = await durable();
    expect([info.num_redelivered, info.num_ack_pending, info.delivered.consumer_seq]).toEqual([0, 0, 1]);
    expect(events.filter((e) => e.stale)).toEqual([]);
  });

  it('stop() hands a message waiting in place back to JetStream for the rest of its wait', async () => {
    const first = transport();
    await subscribe(first, () => ({
      action: 'retry',
      delayMs: 1500,
      countsAsAttempt: false,
      reason: 'another copy in flight',
    }));
    await publisher.send({ topic: names.topic, keys: 'HANDBACK-1', body: {} });
    await until(() => events.some((e) => e.inPlace === true), 5000, 'never waited');
    const stoppedAt = Date.now();
    await first.stop();
    const handedBack = events.find((e) => e.inPlace === false);
    expect(handedBack).toMatchObject({ action: 'retry', countsAsAttempt: false, ok: true });
    expect(handedBack?.delayMs).toBeGreaterThan(500);

    const second = transport();
    const seen: { attempt: number; at: number }[] = [];
    await subscribe(second, (m) => {
      seen.push({ attempt: m.deliveryAttempt, at: Date.now() });
      return { action: 'ack' };
    });
    await until(() => seen.length === 1, 5000, 'the message never came back');
    // Back after the rest of its wait; JetStream counted that one redelivery (the only way a wait does).
    expect(seen[0]?.at ?? 0).toBeGreaterThanOrEqual(stoppedAt + (handedBack?.delayMs ?? 0) - 100);
    expect(seen[0]?.attempt).toBe(2);
  });

  it('a handler that throws gets a failure retry, never an ack', async () => {
    const t = new NatsTransport({
      servers: NATS_URL,
      ackWaitMs: ACK_WAIT_MS,
      fetchExpiresMs: 1000,
      deadLetterSubjectPrefix: names.deadLetterSubjectPrefix,
      deadLetterStream: names.deadLetterStream,
      failureBackoff: { initialMs: 100, maxMs: 100 },
      logger,
      onSettled: (e) => events.push(e),
    });
    transports.push(t);
    const attempts: number[] = [];
    await t.subscribe({
      topic: names.topic,
      consumerGroup: names.group,
      concurrency: 2,
      maxAttempts: 5,
      listener: {},
      handle: async (messages) => {
        attempts.push(...messages.map((m) => m.deliveryAttempt));
        if (attempts.length === 1) throw new Error('boom');
        return messages.map(() => ({ action: 'ack' }) as const);
      },
    });
    await publisher.send({ topic: names.topic, keys: 'THROW-1', body: {} });
    await until(() => attempts.length === 2, 5000, 'never retried');
    expect(attempts).toEqual([1, 2]);
    expect(events[0]).toMatchObject({ action: 'retry', countsAsAttempt: true, ok: true });
    expect(logger.has('warn', /the handler threw: boom/)).toBe(true);
  });
});
