/**
 * Misspelt option names and options that are not objects fail at once, before any I/O, with
 * `InvalidOptionError` naming the option and the nearest valid name; every documented option, spelt
 * right, still passes.
 */
import 'reflect-metadata';
import { getMessageListener, InvalidOptionError } from '@idempotent-mq/core/adapter';
import { RocketMQListener, RocketMQPublisher, RocketMQTransport } from '@idempotent-mq/rocketmq';
import { describe, expect, it } from 'vitest';

const endpoints = '127.0.0.1:1'; // never dialled: every test here fails or passes before any I/O

/** The InvalidOptionError `run` throws (synchronously or not). */
async function invalid(run: () => unknown): Promise<InvalidOptionError> {
  try {
    await run();
  } catch (error) {
    if (error instanceof InvalidOptionError) return error;
    throw error;
  }
  throw new Error('expected an InvalidOptionError');
}

describe('misspelt names and options that are not objects', () => {
  it('a misspelt transport option is refused with the nearest name, its value shown as given', async () => {
    const error = await invalid(() => new RocketMQTransport({ endpoints, batchsize: 8 } as never));
    expect(error.option).toBe('RocketMQTransport.batchsize');
    expect(error.message).toBe(
      'Invalid option "RocketMQTransport.batchsize": expected no such option; did you mean "batchSize"?, got 8.',
    );
    expect(
      (await invalid(() => new RocketMQTransport({ endpoints, invisibleDurationMS: '30s' } as never)))
        .message,
    ).toMatch(/did you mean "invisibleDurationMs"\?, got "30s"/);
    expect(
      (await invalid(() => new RocketMQTransport({ endpoints, nameSpace: 'x' } as never))).message,
    ).toMatch(/did you mean "namespace"/);
  });

  it('a misspelt name inside a backoff is refused, and one inside the credentials with its value masked', async () => {
    const backoff = await invalid(
      () => new RocketMQTransport({ endpoints, receiveBackoff: { initialMS: 10, maxMs: 100 } } as never),
    );
    expect(backoff.option).toBe('RocketMQTransport.receiveBackoff.initialMS');
    expect(backoff.message).toMatch(/did you mean "initialMs"\?, got 10/);
    const credentials = await invalid(
      () =>
        new RocketMQTransport({
          endpoints,
          sessionCredentials: { accessKey: 'ak', accessSecrt: 'the-secret' },
        } as never),
    );
    expect(credentials.option).toBe('RocketMQTransport.sessionCredentials.accessSecrt');
    expect(credentials.message).toMatch(/did you mean "accessSecret"\?, got "\*\*\*"/);
    expect(credentials.message).not.toMatch(/the-secret/);
  });

  it('a misspelt publisher option or publish field is refused before any I/O', async () => {
    expect(
      (await invalid(() => new RocketMQPublisher({ endpoints, topics: ['t'], maxAttempt: 2 } as never)))
        .option,
    ).toBe('RocketMQPublisher.maxAttempt');
    const publisher = new RocketMQPublisher({ endpoints, topics: ['t'] });
    const field = await invalid(() =>
      publisher.send({ topic: 't', keys: 'K', body: {}, messagegroup: 'g' } as never),
    );
    expect(field.option).toBe('RocketMQPublisher.send().messagegroup');
    expect(field.message).toMatch(/did you mean "messageGroup"\?, got "g"/);
    expect(
      (await invalid(() => publisher.send({ topic: 't', keys: 'K', body: {}, delay: 5 } as never))).message,
    ).toMatch(/did you mean "delayMs"\?, got 5/);
  });

  it('a misspelt listener option is refused when the class is defined', async () => {
    const error = await invalid(() => {
      @RocketMQListener({ topic: 'payments', consumerGroup: 'billing', concurency: 4 } as never)
      class Misspelt {}
      return Misspelt;
    });
    expect(error.option).toBe('@RocketMQListener(Misspelt).concurency');
    expect(error.message).toMatch(/did you mean "concurrency"\?, got 4/);
    const sql = await invalid(() => {
      @RocketMQListener({ topic: 'payments', consumerGroup: 'billing', sqlfilter: "a = 'b'" } as never)
      class Lowercase {}
      return Lowercase;
    });
    expect(sql.message).toMatch(/did you mean "sqlFilter"/);
  });

  it('options that are not an object are refused, naming the client', async () => {
    for (const given of [undefined, null, endpoints, [endpoints], 8081]) {
      const transport = await invalid(() => new RocketMQTransport(given as never));
      expect(transport.option).toBe('RocketMQTransport');
      expect(transport.accepted).toBe('an options object');
      expect((await invalid(() => new RocketMQPublisher(given as never))).option).toBe('RocketMQPublisher');
    }
    expect(
      (await invalid(() => new RocketMQTransport({ endpoints, failureBackoff: [1000] } as never))).option,
    ).toBe('RocketMQTransport.failureBackoff');
    expect(
      (await invalid(() => new RocketMQTransport({ endpoints, sessionCredentials: 'ak:sk' } as never)))
        .option,
    ).toBe('RocketMQTransport.sessionCredentials');
  });

  it('every documented option, spelt right, still passes', async () => {
    const quiet = { info() {}, warn() {}, error() {}, debug() {} };
    const client = {
      endpoints,
      namespace: 'ns',
      sessionCredentials: { accessKey: 'ak', accessSecret: 'sk', securityToken: 'token' },
      sslEnabled: false,
      requestTimeout: 1000,
      logger: quiet,
      startupTimeoutMs: 1000,
    };
    expect(
      () =>
        new RocketMQTransport({
          ...client,
          codec: 'utf8',
          invisibleDurationMs: 30_000,
          renewIntervalMs: 10_000,
          awaitDurationMs: 1000,
          batchSize: 8,
          receiveBackoff: { initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0.1 },
          failureBackoff: { initialMs: 1000, maxMs: 60_000 },
          settleAttempts: 2,
          maxDeliveryAttempts: 17,
          onSettled: () => undefined,
        }),
    ).not.toThrow();
    const publisher = new RocketMQPublisher({ ...client, topics: ['t'], codec: 'buffer', maxAttempts: 2 });
    // Past every check: only the missing start() stops it.
    await expect(
      publisher.send({
        topic: 't',
        keys: ['K'],
        body: Buffer.from('x'),
        tag: 'PAY',
        properties: { region: 'eu' },
        messageGroup: 'g',
        delayMs: 1000,
      }),
    ).rejects.toThrow(/not running/);
    @RocketMQListener({
      topic: 'payments',
      consumerGroup: 'billing',
      concurrency: 2,
      maxAttempts: 5,
      method: 'onPayment',
      tag: 'PAY || REFUND',
      codec: 'json',
    })
    class Everything {}
    expect(getMessageListener(Everything)).toMatchObject({ filter: 'PAY || REFUND', concurrency: 2 });
  });
});
