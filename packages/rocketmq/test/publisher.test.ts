import { getMessageListener, InvalidOptionError } from '@idempotent-mq/core/adapter';
import {
  BodyEncodingError,
  MissingMessageKeyError,
  RocketMQListener,
  RocketMQPublisher,
  RocketMQTransport,
} from '@idempotent-mq/rocketmq';
import { RocketMQTestBroker } from '@idempotent-mq/rocketmq-testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, fastOptions, RecordingLogger, recordingSpec, useTempHome } from './support.js';

const restoreHome = useTempHome();
let broker: RocketMQTestBroker;
let publisher: RocketMQPublisher;

beforeAll(async () => {
  broker = await RocketMQTestBroker.start();
  publisher = new RocketMQPublisher({
    endpoints: broker.endpoints,
    topics: ['pub', 'text'],
    logger: new RecordingLogger(),
  });
  await publisher.start();
});

afterAll(async () => {
  await publisher?.stop();
  await broker?.close();
  restoreHome();
});

describe('RocketMQPublisher', () => {
  it('refuses to send without a business key, before anything reaches the broker', async () => {
    const before = broker.messages().length;
    for (const keys of [undefined, [], [''], '   ', ['A', ' '], [42]]) {
      await expect(
        publisher.send({ topic: 'pub', keys: keys as never, body: { amount: 1 } }),
      ).rejects.toBeInstanceOf(MissingMessageKeyError);
    }
    await expect(publisher.send({ topic: 'pub', keys: [], body: {} })).rejects.toThrow(
      /Refusing to send to topic "pub" without a business key: "keys" is an empty array/,
    );
    expect(broker.messages().length).toBe(before);
  });

  it('sends the keys, tag and properties, and the body encoded by its codec', async () => {
    const receipt = await publisher.send({
      topic: 'pub',
      keys: 'PAY-1',
      tag: 'PAY',
      properties: { region: 'eu' },
      body: { amount: 100 },
    });
    const stored = broker.messages('pub').find((m) => m.messageId === receipt.messageId);
    expect(stored).toMatchObject({ keys: ['PAY-1'], tag: 'PAY', properties: { region: 'eu' } });
    expect(stored?.body.toString()).toBe('{"amount":100}');
    expect(receipt.keys).toEqual(['PAY-1']);

    const text = new RocketMQPublisher({
      endpoints: broker.endpoints,
      topics: ['text'],
      codec: 'utf8',
      logger: new RecordingLogger(),
    });
    await text.start();
    try {
      const r = await text.send({ topic: 'text', keys: ['T-1'], body: 'héllo' });
      expect(
        broker
          .messages('text')
          .find((m) => m.messageId === r.messageId)
          ?.body.toString('utf8'),
      ).toBe('héllo');
      await expect(text.send({ topic: 'text', keys: ['T-2'], body: 42 })).rejects.toBeInstanceOf(
        BodyEncodingError,
      );
    } finally {
      await text.stop();
    }
  });

  it('a lost send response makes the client resend: two stored copies with the same message id', async () => {
    broker.faults.loseSendResponses = 1;
    const receipt = await publisher.send({ topic: 'pub', keys: ['RESEND-1'], body: {} });
    const copies = broker.messages('pub').filter((m) => m.keys.includes('RESEND-1'));
    expect(copies).toHaveLength(2);
    expect(copies.map((c) => c.messageId)).toEqual([receipt.messageId, receipt.messageId]);
  });

  it('the transport decodes utf8 and buffer bodies', async () => {
    const transport = new RocketMQTransport(
      fastOptions(broker.endpoints, new RecordingLogger(), undefined, { codec: 'buffer' }),
    );
    try {
      const spec = recordingSpec({ topic: 'text', consumerGroup: 'g-buffer' });
      await transport.subscribe(spec);
      const m = broker.inject('text', { body: Buffer.from([0xff, 0x00, 0x01]), keys: ['BIN-1'] });
      await eventually('received', () => spec.received.some((r) => r.messageId === m.messageId));
      expect(spec.received.find((r) => r.messageId === m.messageId)?.body).toEqual(
        Buffer.from([0xff, 0x00, 0x01]),
      );
    } finally {
      await transport.stop();
    }
  });

  it('validates its options', () => {
    expect(() => new RocketMQPublisher({ endpoints: broker.endpoints, topics: [] })).toThrow(
      /RocketMQPublisher\.topics/,
    );
    expect(() => new RocketMQPublisher({ endpoints: 'nope', topics: ['t'] })).toThrow(
      /RocketMQPublisher\.endpoints/,
    );
  });
});

describe('@RocketMQListener', () => {
  it('records the listener metadata where the registry reads it', () => {
    @RocketMQListener({
      topic: 'payments',
      consumerGroup: 'billing',
      tag: 'PAY || REFUND',
      concurrency: 8,
      maxAttempts: 5,
    })
    class PaymentListener {}
    expect(getMessageListener(PaymentListener)).toEqual({
      topic: 'payments',
      consumerGroup: 'billing',
      tag: 'PAY || REFUND',
      concurrency: 8,
      maxAttempts: 5,
      transport: 'rocketmq',
      filter: 'PAY || REFUND',
    });

    @RocketMQListener({ topic: 'payments', consumerGroup: 'audit', sqlFilter: "region = 'eu'" })
    class AuditListener {}
    expect(getMessageListener(AuditListener)).toMatchObject({ sqlFilter: "region = 'eu'", filter: '*' });
  });

  it('refuses bad options when the class is declared', () => {
    expect(() => {
      @RocketMQListener({ topic: 'payments', consumerGroup: '' })
      class NoGroup {}
      return NoGroup;
    }).toThrow(/@RocketMQListener\(NoGroup\)\.consumerGroup/);
    expect(() => {
      @RocketMQListener({ topic: 't', consumerGroup: 'g', tag: 'A', sqlFilter: 'a = 1' })
      class Both {}
      return Both;
    }).toThrow(InvalidOptionError);
  });
});
