/**
 * Bad options fail at once with `InvalidOptionError`, naming the option and how to fix it: the
 * transport's and publisher's options, a listener's subject, durable name and filter (one set of rules
 * shared by `@NatsListener`, the profile's `checkListener` and `subscribe()`), and the profile itself.
 */
import { getMessageListener, InvalidOptionError, type SubscriptionSpec } from '@idempotent-mq/core/adapter';
import {
  MissingMessageKeyError,
  NATS_DEFAULT_MAX_ATTEMPTS,
  NatsListener,
  NatsPublisher,
  NatsTransport,
} from '@idempotent-mq/nats';
import { describe, expect, it } from 'vitest';
import { subjectWithin } from '../src/nats-profile.js';

const servers = '127.0.0.1:1'; // never dialled: every test here fails before any I/O

function invalid(fn: () => unknown, option: string, hint: RegExp): void {
  let error: unknown;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(InvalidOptionError);
  expect((error as InvalidOptionError).option).toBe(option);
  expect((error as Error).message).toMatch(hint);
}

describe('NatsTransport options', () => {
  it('a batch size out of range fails naming batchSize and its range', () => {
    invalid(() => new NatsTransport({ servers, batchSize: 0 }), 'NatsTransport.batchSize', /from 1 to 256/);
    invalid(() => new NatsTransport({ servers, batchSize: 257 }), 'NatsTransport.batchSize', /from 1 to 256/);
  });

  it('a renewal period not well under ack_wait fails naming renewIntervalMs', () => {
    invalid(
      () => new NatsTransport({ servers, ackWaitMs: 3000, renewIntervalMs: 2000 }),
      'NatsTransport.renewIntervalMs',
      /from 100 to 1500/,
    );
    invalid(() => new NatsTransport({ servers, ackWaitMs: 500 }), 'NatsTransport.ackWaitMs', /from 1000/);
  });

  it('needs servers or a connection, not both nor neither', () => {
    invalid(() => new NatsTransport({}), 'NatsTransport.servers', /either servers .* or connection/);
    invalid(
      () => new NatsTransport({ servers, connection: {} as never }),
      'NatsTransport.servers',
      /not both/,
    );
    invalid(() => new NatsTransport({ servers: ['a b'] }), 'NatsTransport.servers', /host:port/);
  });

  it('stream and dead-letter names follow JetStream rules', () => {
    invalid(
      () => new NatsTransport({ servers, stream: 'ORDERS.v1' }),
      'NatsTransport.stream',
      /replace '\.'/,
    );
    invalid(
      () => new NatsTransport({ servers, deadLetterSubjectPrefix: 'dlq.>' }),
      'NatsTransport.deadLetterSubjectPrefix',
      /no wildcard/,
    );
  });

  it('a subscription with a subject with spaces or a bad durable name is refused before any I/O', async () => {
    const t = new NatsTransport({ servers });
    const spec = (over: Partial<SubscriptionSpec>): SubscriptionSpec => ({
      topic: 'orders.created',
      consumerGroup: 'billing',
      concurrency: 1,
      maxAttempts: 3,
      listener: {},
      handle: async () => [],
      ...over,
    });
    await expect(t.subscribe(spec({ topic: 'orders created' }))).rejects.toThrow(
      /"subscription\(orders created\/billing\)\.topic".*replace spaces with '-' or '_'/,
    );
    await expect(t.subscribe(spec({ consumerGroup: 'billing.eu' }))).rejects.toThrow(
      /consumerGroup".*durable consumer name/,
    );
    await expect(t.subscribe(spec({ filter: 'payments.*' }))).rejects.toThrow(
      /within the topic "orders.created"/,
    );
    await expect(t.subscribe(spec({ concurrency: 0 }))).rejects.toBeInstanceOf(InvalidOptionError);
  });
});

describe('the NATS profile', () => {
  const { profile } = new NatsTransport({ servers });

  it('says what JetStream carries out', () => {
    expect(profile).toMatchObject({
      broker: 'NATS JetStream',
      defaultMaxAttempts: NATS_DEFAULT_MAX_ATTEMPTS,
      maxAttempts: 1000,
      maxRetryDelayMs: 2 ** 31 - 1,
      redeliveryHorizonMs: 0,
    });
  });

  it('accepts subjects with dots and wildcards, and filters within the topic', () => {
    for (const listener of [
      { topic: 'orders.created', consumerGroup: 'billing' },
      { topic: 'orders.*', consumerGroup: 'billing_eu-1', filter: '*' },
      { topic: 'orders.>', consumerGroup: 'b', filter: 'orders.eu.*' },
      { topic: 'contract-1a2b', consumerGroup: 'contract-group-1a2b' },
    ]) {
      expect(() => profile.checkListener(listener, 'L')).not.toThrow();
    }
  });

  it('refuses what JetStream would, naming the option and the fix', () => {
    invalid(
      () => profile.checkListener({ topic: 'orders..created', consumerGroup: 'g' }, 'L'),
      'L.topic',
      /none empty/,
    );
    invalid(
      () => profile.checkListener({ topic: 'orders.>.eu', consumerGroup: 'g' }, 'L'),
      'L.topic',
      /'>' last/,
    );
    invalid(
      () => profile.checkListener({ topic: 'orders.cre*', consumerGroup: 'g' }, 'L'),
      'L.topic',
      /whole tokens/,
    );
    invalid(
      () => profile.checkListener({ topic: 'a', consumerGroup: 'my group' }, 'L'),
      'L.consumerGroup',
      /A-Za-z0-9_-/,
    );
    invalid(
      () => profile.checkListener({ topic: 'orders.*', consumerGroup: 'g', filter: 'orders.>' }, 'L'),
      'L.filter',
      /within the topic/,
    );
    invalid(
      () => profile.checkListener({ topic: 'a', consumerGroup: 'g', codec: 'xml' }, 'L'),
      'L.codec',
      /'json'/,
    );
  });

  it('reads subject patterns as JetStream does', () => {
    expect(subjectWithin('orders.created', 'orders.*')).toBe(true);
    expect(subjectWithin('orders.eu.created', 'orders.>')).toBe(true);
    expect(subjectWithin('orders.*', 'orders.>')).toBe(true);
    expect(subjectWithin('orders', 'orders.>')).toBe(false);
    expect(subjectWithin('orders.>', 'orders.*')).toBe(false);
    expect(subjectWithin('orders.*', 'orders.created')).toBe(false);
    expect(subjectWithin('orders.created.x', 'orders.*')).toBe(false);
  });
});

describe('@NatsListener', () => {
  it('records the listener with its NATS options for the registry', () => {
    @NatsListener({
      topic: 'orders.created',
      consumerGroup: 'billing',
      filterSubject: 'orders.created',
      codec: 'utf8',
    })
    class OrderConsumer {}
    expect(getMessageListener(OrderConsumer)).toMatchObject({
      topic: 'orders.created',
      consumerGroup: 'billing',
      filter: 'orders.created',
      codec: 'utf8',
      transport: 'nats',
    });
  });

  it('fails when the class is defined, naming the option', () => {
    invalid(
      () => {
        @NatsListener({ topic: 'orders created', consumerGroup: 'billing' })
        class Bad {}
        return Bad;
      },
      '@NatsListener(Bad).topic',
      /NATS subject/,
    );
    invalid(
      () => {
        @NatsListener({ topic: 'orders.created', consumerGroup: 'billing', deliverPolicy: 'last' as never })
        class Bad {}
        return Bad;
      },
      '@NatsListener(Bad).deliverPolicy',
      /'all'/,
    );
  });
});

describe('NatsPublisher', () => {
  it('refuses, before any I/O, a message without a business key or to a wildcard subject', async () => {
    const p = new NatsPublisher({ servers });
    await expect(p.send({ topic: 'orders.created', keys: [], body: {} })).rejects.toBeInstanceOf(
      MissingMessageKeyError,
    );
    await expect(p.send({ topic: 'orders.created', keys: ' ', body: {} })).rejects.toThrow(/blank/);
    await expect(p.send({ topic: 'orders.*', keys: 'k', body: {} })).rejects.toThrow(/no wildcard/);
    invalid(() => new NatsPublisher({ servers, timeoutMs: 0 }), 'NatsPublisher.timeoutMs', /from 100/);
  });
});

describe('misspelt names and options that are not objects', () => {
  /** The error `run` throws, with its option and message. */
  function refusal(run: () => unknown): InvalidOptionError {
    try {
      run();
    } catch (error) {
      if (error instanceof InvalidOptionError) return error;
      throw error;
    }
    throw new Error('expected an InvalidOptionError');
  }

  it('a misspelt transport option is refused with the nearest name, its value shown as given', () => {
    const batch = refusal(() => new NatsTransport({ servers, batchsize: 8 } as never));
    expect(batch.option).toBe('NatsTransport.batchsize');
    expect(batch.message).toBe(
      'Invalid option "NatsTransport.batchsize": expected no such option; did you mean "batchSize"?, got 8.',
    );
    expect(refusal(() => new NatsTransport({ servers, ackWaitMS: '30s' } as never)).message).toMatch(
      /"NatsTransport\.ackWaitMS": expected no such option; did you mean "ackWaitMs"\?, got "30s"/,
    );
    expect(refusal(() => new NatsTransport({ servers, startupTimeout: 5000 } as never)).message).toMatch(
      /did you mean "startupTimeoutMs"/,
    );
  });

  it('a misspelt name inside a backoff is refused too', () => {
    const error = refusal(
      () => new NatsTransport({ servers, fetchBackoff: { initialMS: 10, maxMs: 100 } } as never),
    );
    expect(error.option).toBe('NatsTransport.fetchBackoff.initialMS');
    expect(error.message).toMatch(/did you mean "initialMs"\?, got 10/);
  });

  it('a misspelt publisher option or publish field is refused before any I/O', async () => {
    expect(refusal(() => new NatsPublisher({ servers, timeoutMS: 100 } as never)).option).toBe(
      'NatsPublisher.timeoutMS',
    );
    const publisher = new NatsPublisher({ servers });
    await expect(
      publisher.send({ topic: 'orders.created', keys: 'k', body: {}, header: { a: 'b' } } as never),
    ).rejects.toThrow(/"NatsPublisher\.send\.header": expected no such option; did you mean "headers"/);
  });

  it('a misspelt listener option is refused when the class is defined', () => {
    const error = refusal(() => {
      @NatsListener({ topic: 'orders.created', consumerGroup: 'billing', concurency: 4 } as never)
      class Misspelt {}
      return Misspelt;
    });
    expect(error.option).toBe('@NatsListener(Misspelt).concurency');
    expect(error.message).toMatch(/did you mean "concurrency"\?, got 4/);
  });

  it('options that are not an object are refused, naming the client', () => {
    for (const given of [undefined, null, 'nats://127.0.0.1:4222', ['127.0.0.1:4222'], 4222]) {
      const transport = refusal(() => new NatsTransport(given as never));
      expect(transport.option).toBe('NatsTransport');
      expect(transport.accepted).toBe('an options object');
      expect(refusal(() => new NatsPublisher(given as never)).option).toBe('NatsPublisher');
    }
    expect(refusal(() => new NatsTransport({ servers, failureBackoff: [1000] } as never)).option).toBe(
      'NatsTransport.failureBackoff',
    );
  });

  it('every documented option, spelt right, still passes', async () => {
    const quiet = { info() {}, warn() {}, error() {} };
    expect(
      () =>
        new NatsTransport({
          servers: ['127.0.0.1:1'],
          connectOptions: { name: 'billing' },
          startupTimeoutMs: 1000,
          logger: quiet,
          stream: 'ORDERS',
          codec: 'utf8',
          ackWaitMs: 30_000,
          renewIntervalMs: 10_000,
          batchSize: 8,
          fetchExpiresMs: 2000,
          maxAckPending: 100,
          deadLetterSubjectPrefix: 'dlq',
          deadLetterStream: 'DLQ',
          fetchBackoff: { initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0.1 },
          failureBackoff: { initialMs: 1000, maxMs: 60_000 },
          settleTimeoutMs: 1000,
          settleAttempts: 2,
          onSettled: () => undefined,
        }),
    ).not.toThrow();
    const publisher = new NatsPublisher({
      servers,
      codec: 'buffer',
      timeoutMs: 1000,
      retries: 2,
      logger: quiet,
    });
    // Past every check: only the missing start() stops it.
    await expect(
      publisher.send({ topic: 'orders.created', keys: ['k'], body: Buffer.from('x'), headers: { a: 'b' } }),
    ).rejects.toThrow(/not running/);
    @NatsListener({
      topic: 'orders.>',
      consumerGroup: 'billing',
      concurrency: 2,
      maxAttempts: 5,
      method: 'onOrder',
      filterSubject: 'orders.eu.*',
      stream: 'ORDERS',
      codec: 'json',
      deliverPolicy: 'new',
    })
    class Everything {}
    expect(getMessageListener(Everything)).toMatchObject({ filter: 'orders.eu.*', concurrency: 2 });
  });
});
