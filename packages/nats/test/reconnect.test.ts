/**
 * A NATS server restarted mid-run, on a private nats-server this test starts (its own loopback port and
 * storage directory) and stops and starts again by PID: the client reconnects, the pull consumer goes
 * on fetching, nothing is lost, and a message held across an outage longer than `ack_wait` is not
 * acknowledged late (JetStream would take that ack for the delivery it has since made to another).
 */
import { NatsPublisher, NatsTransport, type SettledEvent } from '@idempotent-mq/nats';
import type { JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  admin,
  deleteStreams,
  ensureTopicStream,
  PrivateNatsServer,
  RecordingLogger,
  sleep,
  uniqueNames,
  until,
} from './support.js';

const reconnecting = { reconnectTimeWait: 100, maxReconnectAttempts: -1 };

let server: PrivateNatsServer;
let names: ReturnType<typeof uniqueNames>;
let nc: NatsConnection;
let jsm: JetStreamManager;
let stream: string;
let transport: NatsTransport | undefined;
let publisher: NatsPublisher;
let events: SettledEvent[];
let logger: RecordingLogger;

beforeAll(async () => {
  server = await PrivateNatsServer.start();
});
afterAll(async () => {
  await server?.close();
});
beforeEach(async () => {
  names = uniqueNames('reconnect');
  events = [];
  logger = new RecordingLogger();
  ({ nc, jsm } = await admin(server.url));
  stream = await ensureTopicStream(jsm, names.topic);
  publisher = new NatsPublisher({ servers: server.url, connectOptions: reconnecting, timeoutMs: 1000 });
  await publisher.start();
});
afterEach(async () => {
  await server.restart().catch(() => undefined); // running again, whatever the test left it
  await transport?.stop();
  transport = undefined;
  await publisher.stop();
  await deleteStreams(jsm, [names.topic], [names.deadLetterStream]).catch(() => undefined);
  await nc.close();
});

function connectTransport(ackWaitMs: number): NatsTransport {
  transport = new NatsTransport({
    servers: server.url,
    connectOptions: reconnecting,
    ackWaitMs,
    fetchExpiresMs: 1000,
    settleTimeoutMs: 1000,
    fetchBackoff: { initialMs: 100, maxMs: 500 },
    deadLetterSubjectPrefix: names.deadLetterSubjectPrefix,
    deadLetterStream: names.deadLetterStream,
    logger,
    onSettled: (e) => events.push(e),
  });
  return transport;
}

/** Publishes until the stream acks it: a publish during the restart fails, its resend is deduplicated. */
async function publishSurely(key: string): Promise<void> {
  for (;;) {
    try {
      await publisher.send({ topic: names.topic, keys: key, body: { key } });
      return;
    } catch {
      await sleep(100);
    }
  }
}

describe('NatsTransport across a server restart', () => {
  it('a server restarted mid-run is survived: the consumer reconnects, fetches again, and loses nothing', async () => {
    const t = connectTransport(2000);
    const handled = new Map<string, number>();
    await t.subscribe({
      topic: names.topic,
      consumerGroup: names.group,
      concurrency: 2,
      maxAttempts: 17,
      listener: {},
      handle: async (messages) => {
        await sleep(30);
        for (const m of messages) {
          const key = m.keys[0] as string;
          handled.set(key, (handled.get(key) ?? 0) + 1);
        }
        return messages.map(() => ({ action: 'ack' }) as const);
      },
    });
    const before = Array.from({ length: 10 }, (_, i) => `BEFORE-${i}`);
    for (const key of before) await publishSurely(key);
    await until(() => handled.size >= 3, 5000, 'nothing was handled before the restart');

    await server.stop();
    await sleep(500);
    await server.restart();

    // Published after the restart: a pull consumer that stopped at the reconnect would never see them.
    const after = Array.from({ length: 10 }, (_, i) => `AFTER-${i}`);
    for (const key of after) await publishSurely(key);
    await until(() => handled.size === 20, 20_000, `handled only ${handled.size} of 20`);
    expect([...handled.keys()].sort()).toEqual([...before, ...after].sort());
    await until(
      async () => {
        const info = await jsm.consumers.info(stream, names.group).catch(() => undefined);
        return info !== undefined && info.num_ack_pending === 0 && info.num_pending === 0;
      },
      10_000,
      'messages left unacknowledged',
    );
    expect(logger.has('warn', /disconnected/)).toBe(true);
    expect(logger.has('info', /reconnected/)).toBe(true);
  });

  it('a message held across an outage longer than ack_wait is not acked late: it comes back and is acked then', async () => {
    const ackWaitMs = 1500;
    const t = connectTransport(ackWaitMs);
    const attempts: number[] = [];
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    await t.subscribe({
      topic: names.topic,
      consumerGroup: names.group,
      concurrency: 1,
      maxAttempts: 17,
      listener: {},
      handle: async (messages) => {
        attempts.push(...messages.map((m) => m.deliveryAttempt));
        if (attempts.length === 1) await gate;
        return messages.map(() => ({ action: 'ack' }) as const);
      },
    });
    await publishSurely('HOLD-1');
    await until(() => attempts.length === 1, 5000, 'never delivered');

    await server.stop();
    await sleep(ackWaitMs + 1000);
    release(); // the handler finishes while the server is still down, its ack_wait long run out
    await until(() => events.length === 1, 5000, 'no settlement was reported');
    expect(events[0]).toMatchObject({ action: 'ack', ok: false, stale: true, deliveryAttempt: 1 });

    await server.restart();
    await until(() => events.some((e) => e.ok), 15_000, 'the message never came back');
    expect(attempts).toEqual([1, 2]);
    expect(events.filter((e) => e.ok)).toMatchObject([{ action: 'ack', deliveryAttempt: 2 }]);
    await until(
      async () =>
        (await jsm.consumers.info(stream, names.group).catch(() => undefined))?.num_ack_pending === 0,
      5000,
      'left unacknowledged',
    );
  });
});
