/**
 * The transport against a real RocketMQ 5 proxy. Registered only when ROCKETMQ_ENDPOINTS is set (no
 * broker exists on CI machines, and a skipped test is not allowed there); see the package README.
 *
 *   ROCKETMQ_ENDPOINTS=127.0.0.1:8081 ROCKETMQ_TOPIC=idempotent-mq-test ROCKETMQ_GROUP=idempotent-mq-test \
 *     npx vitest run packages/rocketmq/test/real-proxy.test.ts
 *
 * The topic (a NORMAL one) and the group must exist, or the broker must auto-create them.
 */
import { randomUUID } from 'node:crypto';
import {
  RocketMQPublisher,
  RocketMQTransport,
  type RocketMQTransportOptions,
  type SettledEvent,
} from '@idempotent-mq/rocketmq';
import { afterAll, describe, expect, it } from 'vitest';
import {
  eventually,
  RecordingLogger,
  realProxySettings,
  recordingSpec,
  sleep,
  useTempHome,
} from './support.js';

describe('the real-proxy run', () => {
  it('is configured from ROCKETMQ_* variables, and requested only by ROCKETMQ_ENDPOINTS', () => {
    expect(realProxySettings({})).toBeUndefined();
    expect(
      realProxySettings({
        ROCKETMQ_ENDPOINTS: ' proxy:8081 ',
        ROCKETMQ_ACCESS_KEY: 'ak',
        ROCKETMQ_SECRET_KEY: 'sk',
        ROCKETMQ_SSL: 'true',
      }),
    ).toEqual({
      endpoints: 'proxy:8081',
      namespace: '',
      topic: 'idempotent-mq-test',
      group: 'idempotent-mq-test',
      sslEnabled: true,
      sessionCredentials: { accessKey: 'ak', accessSecret: 'sk' },
    });
  });
});

const real = realProxySettings(process.env);
if (real) {
  const restoreHome = useTempHome();
  const run = randomUUID().slice(0, 8);
  const transports: RocketMQTransport[] = [];
  let publisher: RocketMQPublisher | undefined;
  afterAll(async () => {
    await Promise.all(transports.map((t) => t.stop()));
    await publisher?.stop();
    restoreHome();
  });

  const options = (settled: SettledEvent[]): RocketMQTransportOptions => ({
    ...real,
    logger: new RecordingLogger(),
    // A real proxy enforces its own minimums on invisible time and long polling.
    invisibleDurationMs: 15_000,
    awaitDurationMs: 5_000,
    startupTimeoutMs: 20_000,
    onSettled: (e) => settled.push(e),
  });

  describe(`RocketMQTransport against the real proxy at ${real.endpoints}`, { timeout: 90_000 }, () => {
    it('sends, receives with keys, tag and body, retries after the delay asked, then acks', async () => {
      publisher = new RocketMQPublisher({ ...real, topics: [real.topic], logger: new RecordingLogger() });
      await publisher.start();
      const settled: SettledEvent[] = [];
      const key = `RUN-${run}-1`;
      const spec = recordingSpec({ topic: real.topic, consumerGroup: real.group, maxAttempts: 5 }, (m) =>
        m.keys.includes(key) && m.deliveryAttempt === 1
          ? {
              action: 'retry',
              delayMs: 2000,
              countsAsAttempt: true,
              reason: 'first attempt retried on purpose',
            }
          : { action: 'ack' },
      );
      const transport = new RocketMQTransport(options(settled));
      transports.push(transport);
      await transport.subscribe(spec);
      const { messageId } = await publisher.send({
        topic: real.topic,
        keys: [key],
        tag: 'IMQ',
        body: { run },
      });
      await eventually(
        'acked after one retry',
        () => settled.some((e) => e.messageId === messageId && e.action === 'ack' && e.ok),
        60_000,
      );
      const mine = spec.received.filter((m) => m.messageId === messageId);
      expect(mine.map((m) => m.deliveryAttempt)).toEqual([1, 2]);
      expect(mine[0]).toMatchObject({ keys: [key], tag: 'IMQ', body: { run } });
      // Stop it: the next test's consumer of the same group must be the only one.
      await transport.stop();
    });

    it('dead-letters when told to, and stop() drains a handler in flight', async () => {
      const settled: SettledEvent[] = [];
      const key = `RUN-${run}-2`;
      const spec = recordingSpec(
        { topic: real.topic, consumerGroup: real.group, maxAttempts: 2 },
        async (m) => {
          if (!m.keys.includes(key)) return { action: 'ack' };
          await sleep(1000);
          // As the registry answers on the last attempt: the transport forwards, it does not count.
          return m.deliveryAttempt < 2
            ? { action: 'retry', delayMs: 1000, countsAsAttempt: true, reason: 'always failing on purpose' }
            : { action: 'deadLetter', reason: 'failed 2 of 2 attempts on purpose' };
        },
      );
      const transport = new RocketMQTransport(options(settled));
      await transport.subscribe(spec);
      const sent = await publisher?.send({ topic: real.topic, keys: [key], body: { run } });
      await eventually(
        'dead-lettered',
        () => settled.some((e) => e.messageId === sent?.messageId && e.action === 'deadLetter'),
        60_000,
      );
      expect(settled.find((e) => e.messageId === sent?.messageId && e.action === 'deadLetter')?.ok).toBe(
        true,
      );
      await transport.stop();
    });
  });
}
