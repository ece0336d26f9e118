/**
 * NatsPublisher on the real server: the business key in `Nats-Msg-Id` (the stream's duplicate window
 * drops an exact resend), every key in our header, a JSON body by default, the stream's ack awaited.
 */
import {
  KEYS_HEADER,
  NATS_MSG_ID,
  NatsPublisher,
  NatsStartupError,
  NotStartedError,
} from '@idempotent-mq/nats';
import type { JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { admin, deleteStreams, ensureTopicStream, NATS_URL, storedMessages, uniqueNames } from './support.js';

let nc: NatsConnection;
let jsm: JetStreamManager;
let names: ReturnType<typeof uniqueNames>;
let stream: string;

beforeEach(async () => {
  ({ nc, jsm } = await admin());
  names = uniqueNames('pub');
  stream = await ensureTopicStream(jsm, names.topic);
});
afterEach(async () => {
  await deleteStreams(jsm, [names.topic]);
  await nc.close();
});

describe('NatsPublisher', () => {
  it('puts the key in Nats-Msg-Id, so that the stream drops an exact resend', async () => {
    const p = new NatsPublisher({ servers: NATS_URL });
    await p.start();
    const first = await p.send({ topic: names.topic, keys: 'PAY-1', body: { amount: 5 } });
    const resend = await p.send({ topic: names.topic, keys: 'PAY-1', body: { amount: 5 } });
    await p.stop();
    expect(first).toMatchObject({ stream, seq: 1, duplicate: false, keys: ['PAY-1'] });
    expect(resend).toMatchObject({ stream, seq: 1, duplicate: true });
    const [stored, ...more] = await storedMessages(jsm, stream, names.topic);
    expect(more).toEqual([]);
    expect(stored?.header.get(NATS_MSG_ID)).toBe('PAY-1');
    expect(stored?.header.get(KEYS_HEADER)).toBe('["PAY-1"]');
    expect(stored?.json()).toEqual({ amount: 5 });
  });

  it('sends several keys in our header, and their JSON as the message id, on a connection you own', async () => {
    const p = new NatsPublisher({ connection: nc, codec: 'utf8' });
    await p.start();
    await p.send({ topic: names.topic, keys: ['a,b'], body: 'one', headers: { 'x-tenant': 't1' } });
    await p.send({ topic: names.topic, keys: ['a', 'b'], body: 'two' });
    await p.stop();
    expect(nc.isClosed()).toBe(false); // yours: never closed for you
    const stored = await storedMessages(jsm, stream, names.topic);
    expect(stored.map((m) => [m.header.get(NATS_MSG_ID), m.header.get(KEYS_HEADER), m.string()])).toEqual([
      ['a,b', '["a,b"]', 'one'],
      ['["a","b"]', '["a","b"]', 'two'],
    ]);
    expect(stored[0]?.header.get('x-tenant')).toBe('t1');
  });

  it('says when it is not started, and when the server cannot be reached', async () => {
    const p = new NatsPublisher({ servers: NATS_URL });
    await expect(p.send({ topic: names.topic, keys: 'k', body: {} })).rejects.toBeInstanceOf(NotStartedError);
    const down = new NatsPublisher({ servers: '127.0.0.1:1', startupTimeoutMs: 500 });
    await expect(down.start()).rejects.toBeInstanceOf(NatsStartupError);
  });
});
