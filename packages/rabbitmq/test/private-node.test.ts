/**
 * What only a broker of our own can show: a restart of RabbitMQ mid-run, and a channel closed by the
 * server's `consumer_timeout`. One private node (see `support/private-node.ts`) on a free loopback port.
 */
import type { Settlement } from '@idempotent-mq/core/adapter';
import { RabbitMQPublisher, RabbitMQTransport } from '@idempotent-mq/rabbitmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topologyOf } from '../src/topology.js';
import { PrivateRabbitMQ } from './support/private-node.js';
import { eventually, Inspector, RecordingLogger, recorder, sleep, spec, uniqueNames } from './support.js';

let node: PrivateRabbitMQ;

beforeAll(async () => {
  node = await PrivateRabbitMQ.start();
}, 90_000);

afterAll(async () => {
  await node?.remove();
}, 60_000);

/** Sends until the publisher's connection is back (a send during the outage fails: resending is safe). */
async function sendRetrying(publisher: RabbitMQPublisher, topic: string, key: string): Promise<void> {
  for (let tries = 0; ; tries++) {
    try {
      await publisher.send({ topic, keys: [key], body: { key } });
      return;
    } catch (error) {
      if (tries > 100) throw error;
      await sleep(100);
    }
  }
}

describe('RabbitMQTransport over a broker that goes away', () => {
  it('survives a broker restart: reconnects, declares and subscribes again, never acks a stale delivery tag, loses nothing', {
    timeout: 90_000,
  }, async () => {
    const { topic, group } = uniqueNames('restart');
    const logger = new RecordingLogger();
    const { events, onSettled } = recorder();
    const transport = new RabbitMQTransport({
      url: node.url,
      logger,
      onSettled,
      reconnectBackoff: { initialMs: 100, maxMs: 1000 },
    });
    const publisher = new RabbitMQPublisher({
      url: node.url,
      logger,
      declare: [{ topic, consumerGroup: group }],
      confirmTimeoutMs: 2000,
      reconnectBackoff: { initialMs: 100, maxMs: 1000 },
    });
    await publisher.start();

    const seen: { key: string; attempt: number }[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    await transport.subscribe(
      spec(topic, group, async (m): Promise<Settlement> => {
        const key = m.keys[0] as string;
        seen.push({ key, attempt: m.deliveryAttempt });
        if (key === 'HELD' && m.deliveryAttempt === 1) {
          await gate; // in a handler when the broker goes down; its ack can no longer be carried out
          return { action: 'ack' };
        }
        if (key === 'RETRY' && m.deliveryAttempt === 1) {
          // Parked in its TTL retry queue (a durable queue, a persistent copy) across the restart.
          return { action: 'retry', delayMs: 3000, countsAsAttempt: true, reason: 'test: try again later' };
        }
        return { action: 'ack' };
      }),
    );
    const before = ['B0', 'B1', 'B2', 'B3', 'RETRY', 'HELD'];
    for (const key of before) await publisher.send({ topic, keys: [key], body: { key } });
    const has = (key: string, attempt = 1) => seen.some((s) => s.key === key && s.attempt === attempt);
    await eventually('every message before the restart handled', () => before.every((k) => has(k)));
    await eventually('the retry parked', () =>
      events.some((e) => e.keys[0] === 'RETRY' && e.action === 'retry'),
    );

    await node.restart();
    release(); // HELD's handler answers now, on a channel that is gone

    const after = ['A0', 'A1', 'A2', 'A3', 'A4'];
    for (const key of after) await sendRetrying(publisher, topic, key);
    await eventually(
      'HELD redelivered, RETRY back from its retry queue, every message after the restart handled',
      () => has('HELD', 2) && has('RETRY', 2) && after.every((k) => has(k)),
      30_000,
    );
    await transport.stop();
    await publisher.stop();

    // HELD's first delivery belonged to the channel lost in the restart: its ack was dropped, not sent on the new one.
    expect(events).toContainEqual(
      expect.objectContaining({
        keys: ['HELD'],
        deliveryAttempt: 1,
        action: 'ack',
        dropped: 'channelClosed',
      }),
    );
    expect(seen.filter((s) => s.key === 'HELD').map((s) => s.attempt)).toEqual([1, 2]);
    expect(seen.filter((s) => s.key === 'RETRY').map((s) => s.attempt)).toEqual([1, 2]);
    for (const key of [...before, ...after]) expect(seen.some((s) => s.key === key)).toBe(true);
    expect(
      logger
        .at('warn')
        .some((l) => l.startsWith('RabbitMQTransport consuming connection') && l.includes('lost')),
    ).toBe(true);
    expect(logger.at('info')).toContain(`RabbitMQ ${group}@${topic}: subscribed again after 1 attempt(s)`);
    // No delivery tag of the lost channel was acked on the new one (RabbitMQ would have closed it: 406).
    expect(logger.lines.some((l) => /unknown delivery tag|PRECONDITION/i.test(l.text))).toBe(false);

    const inspector = await Inspector.open(node.url);
    const names = topologyOf(topic, group);
    expect(await inspector.count(names.queue)).toBe(0);
    expect(await inspector.count(names.deadLetterQueue)).toBe(0);
    await inspector.deleteTopology(topic, group);
    await inspector.close();
  });

  it("a channel closed by RabbitMQ's consumer_timeout is a lost lease: the message comes back counted, the late ack is dropped", {
    timeout: 60_000,
  }, async () => {
    // Channels opened from now on time out a delivery left unacknowledged for 1.5 s.
    await node.setEnv('consumer_timeout', '1500');
    const { topic, group } = uniqueNames('timeout');
    const logger = new RecordingLogger();
    const { events, onSettled } = recorder();
    // Not told the server's timeout (as a user who left the default on a server set lower): no hand-over.
    const transport = new RabbitMQTransport({
      url: node.url,
      logger,
      onSettled,
      consumerTimeoutMs: false,
      reconnectBackoff: { initialMs: 100, maxMs: 500 },
    });
    const publisher = new RabbitMQPublisher({
      url: node.url,
      logger,
      declare: [{ topic, consumerGroup: group }],
    });
    await publisher.start();
    const seen: { key: string; attempt: number }[] = [];
    try {
      await transport.subscribe(
        spec(topic, group, async (m) => {
          seen.push({ key: m.keys[0] as string, attempt: m.deliveryAttempt });
          if (m.keys[0] === 'SLOW' && m.deliveryAttempt === 1) await sleep(3000);
          return { action: 'ack' };
        }),
      );
      await publisher.send({ topic, keys: ['SLOW'], body: {} });
      await eventually(
        'SLOW back after the channel closed',
        () => seen.some((s) => s.key === 'SLOW' && s.attempt === 2),
        15_000,
      );
      await eventually('the slow handler answered', () =>
        events.some((e) => e.keys[0] === 'SLOW' && e.deliveryAttempt === 1 && e.action === 'ack'),
      );
      await publisher.send({ topic, keys: ['AFTER'], body: {} });
      await eventually('a message after it handled on the new channel', () =>
        seen.some((s) => s.key === 'AFTER'),
      );
      await sleep(300);
    } finally {
      await transport.stop();
      await publisher.stop();
      await node.setEnv('consumer_timeout', '1800000');
    }
    expect(seen).toEqual([
      { key: 'SLOW', attempt: 1 },
      { key: 'SLOW', attempt: 2 },
      { key: 'AFTER', attempt: 1 },
    ]);
    expect(events).toContainEqual(
      expect.objectContaining({
        keys: ['SLOW'],
        deliveryAttempt: 1,
        action: 'ack',
        dropped: 'channelClosed',
      }),
    );
    const closures = logger.at('warn').filter((l) => l.includes('closed the channel'));
    // One closure, by the timeout; a stale tag acked on the new channel would have closed it again (406).
    expect(closures).toHaveLength(1);
    expect(closures[0]).toContain('consumer_timeout (1500 ms)');
    expect(closures[0]).toContain('Set consumerTimeoutMs to 1500');

    const inspector = await Inspector.open(node.url);
    expect(await inspector.count(topologyOf(topic, group).queue)).toBe(0);
    await inspector.deleteTopology(topic, group);
    await inspector.close();
  });
});
