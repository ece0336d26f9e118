/**
 * Bad options fail at once, before any I/O, with `InvalidOptionError` naming the option and saying what
 * to do; the profile and `@RabbitMQListener` apply the same rules (written once).
 */
import 'reflect-metadata';
import { getMessageListener, InvalidOptionError, type SubscriptionSpec } from '@idempotent-mq/core/adapter';
import {
  MissingMessageKeyError,
  RABBITMQ_DEFAULT_MAX_ATTEMPTS,
  RABBITMQ_MAX_ATTEMPTS,
  RabbitMQListener,
  RabbitMQPublisher,
  RabbitMQTransport,
} from '@idempotent-mq/rabbitmq';
import { describe, expect, it } from 'vitest';

const url = 'amqp://guest:guest@127.0.0.1:5672';

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

function subscription(extra: Partial<SubscriptionSpec>): SubscriptionSpec {
  return {
    topic: 'payments',
    consumerGroup: 'billing',
    concurrency: 4,
    maxAttempts: 17,
    listener: {},
    handle: async (messages) => messages.map(() => ({ action: 'ack' }) as const),
    ...extra,
  };
}

describe('connection options', () => {
  it('a missing URL names `url` and shows what to pass', async () => {
    const error = await invalid(() => new RabbitMQTransport({}));
    expect(error.option).toBe('RabbitMQTransport.url');
    expect(error.message).toContain("'amqp://guest:guest@127.0.0.1:5672'");
    expect(error.message).toContain("'connection'");
  });

  it('refuses a URL that is not AMQP, masking its password', async () => {
    const error = await invalid(() => new RabbitMQTransport({ url: 'http://user:secret@host:5672' }));
    expect(error.option).toBe('RabbitMQTransport.url');
    expect(error.message).not.toContain('secret');
    expect(error.message).toContain('amqp:// or amqps://');
  });

  it('refuses both a URL and a connection, socket options with a connection, and amqplib recovery on our own connections', async () => {
    const connection = { createChannel: async () => undefined, createConfirmChannel: async () => undefined };
    expect(
      (await invalid(() => new RabbitMQTransport({ url, connection: connection as never }))).option,
    ).toBe('RabbitMQTransport.connection');
    expect(
      (await invalid(() => new RabbitMQTransport({ connection: connection as never, socketOptions: {} })))
        .option,
    ).toBe('RabbitMQTransport.socketOptions');
    expect((await invalid(() => new RabbitMQTransport({ connection: {} as never }))).option).toBe(
      'RabbitMQTransport.connection',
    );
    const recovery = await invalid(
      () => new RabbitMQTransport({ url, socketOptions: { recovery: true } as never }),
    );
    expect(recovery.option).toBe('RabbitMQTransport.socketOptions.recovery');
  });

  it('checks numbers and backoffs by name', async () => {
    expect((await invalid(() => new RabbitMQTransport({ url, batchSize: 0 }))).option).toBe(
      'RabbitMQTransport.batchSize',
    );
    expect((await invalid(() => new RabbitMQTransport({ url, settleAttempts: 11 }))).option).toBe(
      'RabbitMQTransport.settleAttempts',
    );
    expect(
      (await invalid(() => new RabbitMQTransport({ url, reconnectBackoff: { initialMs: 10, maxMs: 1 } })))
        .option,
    ).toBe('RabbitMQTransport.reconnectBackoff.maxMs');
    expect((await invalid(() => new RabbitMQTransport({ url, retryLadderMs: [100, 50] }))).option).toBe(
      'RabbitMQTransport.retryLadderMs[1]',
    );
    expect((await invalid(() => new RabbitMQTransport({ url, codec: 'xml' as never }))).option).toBe(
      'RabbitMQTransport.codec',
    );
  });
});

describe('consumer_timeout', () => {
  it('refuses a hand-over that could not be confirmed before the server closes the channel', async () => {
    const error = await invalid(
      () => new RabbitMQTransport({ url, consumerTimeoutMs: 60_000, handOverAfterMs: 50_000 }),
    );
    expect(error.option).toBe('RabbitMQTransport.handOverAfterMs');
    expect(error.message).toContain('consumer_timeout');
    expect(error.message).toContain('less than 26000 ms'); // 60 s − 3 × 10 s confirms − 2 × 2 s backoff
  });

  it('refuses a consumer timeout too short to hand anything back, unless handOverAfterMs is set', async () => {
    const error = await invalid(() => new RabbitMQTransport({ url, consumerTimeoutMs: 20_000 }));
    expect(error.option).toBe('RabbitMQTransport.consumerTimeoutMs');
    expect(error.message).toContain('set handOverAfterMs yourself');
    expect(
      () =>
        new RabbitMQTransport({
          url,
          consumerTimeoutMs: 20_000,
          confirmTimeoutMs: 1000,
          handOverAfterMs: 10_000,
        }),
    ).not.toThrow();
    expect(() => new RabbitMQTransport({ url, consumerTimeoutMs: false })).not.toThrow();
  });

  it("refuses at subscribe time a listener's hand-over past the transport's consumer timeout", async () => {
    const transport = new RabbitMQTransport({ url, consumerTimeoutMs: 60_000 });
    const error = await invalid(() =>
      transport.subscribe(subscription({ listener: { handOverAfterMs: 59_000 } })),
    );
    expect(error.option).toBe('subscription(payments/billing).listener.handOverAfterMs');
    // The registry refuses it earlier, through the profile.
    const early = await invalid(() =>
      transport.profile.checkListener(
        { topic: 'payments', consumerGroup: 'billing', handOverAfterMs: 59_000 },
        'Billing',
      ),
    );
    expect(early.option).toBe('Billing.handOverAfterMs');
    await transport.stop();
  });
});

describe('subscriptions', () => {
  const transport = () => new RabbitMQTransport({ url });

  it('a concurrency out of the prefetch range names it, before any connection', async () => {
    for (const concurrency of [0, 65_536, 1.5]) {
      const error = await invalid(() => transport().subscribe(subscription({ concurrency })));
      expect(error.option).toBe('subscription(payments/billing).concurrency');
      expect(error.message).toContain('prefetch');
    }
  });

  it("a topic starting with 'amq.' names it and suggests another name", async () => {
    const error = await invalid(() => transport().subscribe(subscription({ topic: 'amq.payments' })));
    expect(error.option).toBe('subscription(amq.payments/billing).topic');
    expect(error.message).toContain("not starting with 'amq.'");
    expect(error.message).toContain("e.g. 'payments'");
  });

  it("names with '.' (the separator of derived queues), names too long for RabbitMQ's 255 bytes, bad filters", async () => {
    const dotted = await invalid(() => transport().subscribe(subscription({ consumerGroup: 'billing.eu' })));
    expect(dotted.option).toBe('subscription(payments/billing.eu).consumerGroup');
    expect(dotted.message).toContain("use '-' or '_'");
    const long = await invalid(() => transport().subscribe(subscription({ consumerGroup: 'é'.repeat(115) })));
    expect(long.option).toMatch(/\.consumerGroup$/);
    expect(long.message).toContain('bytes of UTF-8');
    for (const filter of ['PAY ||', 'PAY REFUND', '']) {
      const error = await invalid(() => transport().subscribe(subscription({ filter })));
      expect(error.option).toBe('subscription(payments/billing).filter');
    }
    const sql = await invalid(() =>
      transport().subscribe(subscription({ listener: { sqlFilter: "a = 'b'" } })),
    );
    expect(sql.message).toContain('RabbitMQ has none');
  });
});

describe('the profile', () => {
  it('tells the registry what RabbitMQ allows', () => {
    const { profile } = new RabbitMQTransport({ url });
    expect(profile).toMatchObject({
      broker: 'RabbitMQ',
      defaultMaxAttempts: RABBITMQ_DEFAULT_MAX_ATTEMPTS,
      maxAttempts: RABBITMQ_MAX_ATTEMPTS,
      maxRetryDelayMs: 86_400_000,
      redeliveryHorizonMs: 0,
    });
    expect([RABBITMQ_DEFAULT_MAX_ATTEMPTS, RABBITMQ_MAX_ATTEMPTS]).toEqual([17, 1000]);
    expect(new RabbitMQTransport({ url, retryLadderMs: [100, 1000] }).profile.maxRetryDelayMs).toBe(1000);
    // A @MessageListener's metadata passes through the same rules.
    expect(() =>
      profile.checkListener({ topic: 'payments', consumerGroup: 'billing', filter: 'PAY || REFUND' }, 'X'),
    ).not.toThrow();
    expect(() => profile.checkListener({ topic: 'amq.x', consumerGroup: 'billing' }, 'X')).toThrow(
      InvalidOptionError,
    );
  });
});

describe('@RabbitMQListener', () => {
  it('records the listener, its binding key as the filter, and nothing else', () => {
    @RabbitMQListener({
      topic: 'payments',
      consumerGroup: 'billing',
      bindingKey: 'PAY || REFUND',
      concurrency: 2,
    })
    class Billing {}
    expect(getMessageListener(Billing)).toEqual({
      topic: 'payments',
      consumerGroup: 'billing',
      bindingKey: 'PAY || REFUND',
      concurrency: 2,
      transport: 'rabbitmq',
      filter: 'PAY || REFUND',
    });
  });

  it('refuses, when the class is defined, what the profile would refuse at start-up', async () => {
    const topic = await invalid(() => {
      @RabbitMQListener({ topic: 'amq.payments', consumerGroup: 'billing' })
      class Bad {}
      return Bad;
    });
    expect(topic.option).toBe('@RabbitMQListener(Bad).topic');
    const key = await invalid(() => {
      @RabbitMQListener({ topic: 'payments', consumerGroup: 'billing', bindingKey: 'a b' })
      class Bad {}
      return Bad;
    });
    expect(key.option).toBe('@RabbitMQListener(Bad).bindingKey');
    const concurrency = await invalid(() => {
      @RabbitMQListener({ topic: 'payments', consumerGroup: 'billing', concurrency: 0 })
      class Bad {}
      return Bad;
    });
    expect(concurrency.option).toBe('@RabbitMQListener(Bad).concurrency');
  });
});

describe('the publisher', () => {
  it('refuses a message without a business key before any I/O', async () => {
    const publisher = new RabbitMQPublisher({ url });
    await expect(publisher.send({ topic: 'payments', keys: [], body: {} })).rejects.toBeInstanceOf(
      MissingMessageKeyError,
    );
    await expect(publisher.send({ topic: 'payments', keys: ['  '], body: {} })).rejects.toThrow(
      'key #0 is blank',
    );
  });

  it('refuses our own header names and names a bad declared group', async () => {
    const publisher = new RabbitMQPublisher({ url });
    const header = await invalid(() =>
      publisher.send({
        topic: 'payments',
        keys: ['K'],
        body: {},
        properties: { 'idempotent-mq-attempt': 3 },
      }),
    );
    expect(header.option).toBe('send().properties.idempotent-mq-attempt');
    const group = await invalid(
      () => new RabbitMQPublisher({ url, declare: [{ topic: 'payments', consumerGroup: 'amq.billing' }] }),
    );
    expect(group.option).toBe('RabbitMQPublisher.declare[0].consumerGroup');
  });
});

describe('misspelt names and options that are not objects', () => {
  it('a misspelt transport option is refused with the nearest name, its value shown as given', async () => {
    const error = await invalid(() => new RabbitMQTransport({ url, batchsize: 8 } as never));
    expect(error.option).toBe('RabbitMQTransport.batchsize');
    expect(error.message).toBe(
      'Invalid option "RabbitMQTransport.batchsize": expected no such option; did you mean "batchSize"?, got 8.',
    );
    expect(
      (await invalid(() => new RabbitMQTransport({ url, consumerTimeout: false } as never))).message,
    ).toMatch(/did you mean "consumerTimeoutMs"\?, got false/);
    expect((await invalid(() => new RabbitMQTransport({ url, loger: console } as never))).option).toBe(
      'RabbitMQTransport.loger',
    );
  });

  it('a misspelt name inside a backoff or a declared group is refused too', async () => {
    const backoff = await invalid(
      () => new RabbitMQTransport({ url, reconnectBackoff: { initialMs: 100, maxMS: 1000 } } as never),
    );
    expect(backoff.option).toBe('RabbitMQTransport.reconnectBackoff.maxMS');
    expect(backoff.message).toMatch(/did you mean "maxMs"\?, got 1000/);
    const group = await invalid(
      () =>
        new RabbitMQPublisher({ url, declare: [{ topic: 'payments', consumerGruop: 'billing' }] } as never),
    );
    expect(group.option).toBe('RabbitMQPublisher.declare[0].consumerGruop');
    expect(group.message).toMatch(/did you mean "consumerGroup"\?, got "billing"/);
  });

  it('a misspelt publisher option or publish field is refused before any I/O', async () => {
    expect((await invalid(() => new RabbitMQPublisher({ url, confirmTimeoutMS: 100 } as never))).option).toBe(
      'RabbitMQPublisher.confirmTimeoutMS',
    );
    const publisher = new RabbitMQPublisher({ url });
    const field = await invalid(() =>
      publisher.send({ topic: 'payments', keys: 'K', body: {}, routingkey: 'PAY' } as never),
    );
    expect(field.option).toBe('send().routingkey');
    expect(field.message).toMatch(/did you mean "routingKey"\?, got "PAY"/);
  });

  it('a misspelt listener option is refused when the class is defined', async () => {
    const error = await invalid(() => {
      @RabbitMQListener({ topic: 'payments', consumerGroup: 'billing', concurency: 4 } as never)
      class Misspelt {}
      return Misspelt;
    });
    expect(error.option).toBe('@RabbitMQListener(Misspelt).concurency');
    expect(error.message).toMatch(/did you mean "concurrency"\?, got 4/);
  });

  it('options that are not an object are refused, naming the client', async () => {
    for (const given of [undefined, null, url, [url], 5672]) {
      const transport = await invalid(() => new RabbitMQTransport(given as never));
      expect(transport.option).toBe('RabbitMQTransport');
      expect(transport.accepted).toBe('an options object');
      expect((await invalid(() => new RabbitMQPublisher(given as never))).option).toBe('RabbitMQPublisher');
    }
    expect(
      (await invalid(() => new RabbitMQTransport({ url, failureBackoff: [1000] } as never))).option,
    ).toBe('RabbitMQTransport.failureBackoff');
  });

  it('every documented option, spelt right, still passes', async () => {
    const quiet = { info() {}, warn() {}, error() {} };
    expect(
      () =>
        new RabbitMQTransport({
          url,
          socketOptions: { clientProperties: { connection_name: 'billing' } },
          connectTimeoutMs: 1000,
          reconnectBackoff: { initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0.1 },
          logger: quiet,
          codec: 'utf8',
          batchSize: 8,
          consumerTimeoutMs: 1_800_000,
          handOverAfterMs: 60_000,
          confirmTimeoutMs: 1000,
          settleAttempts: 2,
          failureBackoff: { initialMs: 1000, maxMs: 60_000 },
          retryLadderMs: [100, 1000, 10_000],
          onSettled: () => undefined,
        }),
    ).not.toThrow();
    expect(() => new RabbitMQTransport({ url, consumerTimeoutMs: false })).not.toThrow();
    const publisher = new RabbitMQPublisher({
      url,
      codec: 'buffer',
      confirmTimeoutMs: 1000,
      mandatory: false,
      declare: [{ topic: 'payments', consumerGroup: 'billing', filter: 'PAY' }],
      logger: quiet,
    });
    // Past every check: only the missing start() stops it.
    await expect(
      publisher.send({
        topic: 'payments',
        keys: ['K'],
        body: Buffer.from('x'),
        routingKey: 'PAY',
        properties: { region: 'eu' },
        persistent: false,
      }),
    ).rejects.toThrow(/not running/);
    @RabbitMQListener({
      topic: 'payments',
      consumerGroup: 'billing',
      concurrency: 2,
      maxAttempts: 5,
      method: 'onPayment',
      bindingKey: 'PAY || REFUND',
      codec: 'json',
      handOverAfterMs: 60_000,
    })
    class Everything {}
    expect(getMessageListener(Everything)).toMatchObject({ filter: 'PAY || REFUND', concurrency: 2 });
  });
});
