/** The protobuf mapping: the codes the state records are RocketMQ's, and a message survives the trip. */
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { RocketMQCode } from '../src/broker-state.js';
import { resolveOptions } from '../src/options.js';
import { pbDefinition as d } from '../src/proto.js';
import {
  deliveredMessage,
  incomingMessage,
  permissionOf,
  settingsFor,
  tagExpression,
} from '../src/protobuf-mapping.js';

describe('protobuf mapping', () => {
  it("the state's codes are the generated Code values", () => {
    expect(RocketMQCode).toEqual({ OK: d.Code.OK, INVALID_RECEIPT_HANDLE: d.Code.INVALID_RECEIPT_HANDLE });
  });

  it('a delivered message carries what was sent, its handle, its attempt and a CRC32 digest of the body', () => {
    const body = Buffer.from('{"amount":100}');
    const delivered = deliveredMessage(
      {
        message: {
          offset: 3,
          messageId: 'M-1',
          topic: 'payments',
          body,
          tag: 'PAY',
          keys: ['PAY-1'],
          properties: { traceparent: 'tp' },
          bornAt: 1_700_000_000_000,
          storedAt: 1_700_000_000_500,
        },
        attempt: 2,
        receiptHandle: 'rh-3-x',
        invisibleMs: 1500,
      },
      { host: '127.0.0.1', port: 8081 },
    );
    const props = delivered.getSystemProperties();
    expect(props?.getReceiptHandle()).toBe('rh-3-x');
    expect(props?.getDeliveryAttempt()).toBe(2);
    expect(props?.getBodyDigest()?.getChecksum()).toBe(String(crc32(body)));
    expect(props?.getStoreHost()).toBe('127.0.0.1:8081');
    expect(props?.getInvisibleDuration()?.toObject()).toEqual({ seconds: 1, nanos: 500_000_000 });
    expect(incomingMessage(delivered)).toEqual({
      topic: 'payments',
      messageId: 'M-1',
      body,
      keys: ['PAY-1'],
      tag: 'PAY',
      properties: { traceparent: 'tp' },
      bornAt: 1_700_000_000_000,
      messageGroup: undefined,
    });
  });

  it('filters on a TAG expression only (SQL92 is not evaluated)', () => {
    expect(tagExpression(new d.FilterExpression().setType(d.FilterType.TAG).setExpression('A || B'))).toBe(
      'A || B',
    );
    expect(
      tagExpression(new d.FilterExpression().setType(d.FilterType.SQL).setExpression('a > 1')),
    ).toBeUndefined();
    expect(tagExpression(undefined)).toBeUndefined();
  });

  it('a dead letter is delivered without its system properties, as a proxy hands it to gRPC clients', () => {
    const delivered = deliveredMessage(
      {
        message: {
          offset: 0,
          messageId: 'M-1',
          topic: '%DLQ%billing',
          body: Buffer.from('{}'),
          keys: ['PAY-1'],
          properties: { tenant: 'acme' },
          systemProperties: { RETRY_TOPIC: 'payments', ORIGIN_MESSAGE_ID: 'M-1' },
          reconsumeTimes: 17,
          bornAt: 1,
          storedAt: 2,
        },
        attempt: 18,
        receiptHandle: 'rh-0-x',
        invisibleMs: 10_000,
      },
      { host: '127.0.0.1', port: 8081 },
    );
    expect(delivered.getTopic()?.getName()).toBe('%DLQ%billing');
    expect(Object.fromEntries(delivered.getUserPropertiesMap().toArray())).toEqual({ tenant: 'acme' });
    expect(delivered.getSystemProperties()?.getMessageId()).toBe('M-1');
  });

  it("maps a topic's perm to its route's permission, and tells each group its own attempts", () => {
    expect([permissionOf(2), permissionOf(4), permissionOf(6)]).toEqual([
      d.Permission.WRITE,
      d.Permission.READ,
      d.Permission.READ_WRITE,
    ]);
    const options = resolveOptions({ groupMaxDeliveryAttempts: { reader: 1000 } });
    const consumer = (group: string) =>
      new d.Settings()
        .setClientType(d.ClientType.SIMPLE_CONSUMER)
        .setSubscription(new d.Subscription().setGroup(new d.Resource().setName(group)));
    expect(settingsFor(consumer('reader'), options).getBackoffPolicy()?.getMaxAttempts()).toBe(1000);
    expect(settingsFor(consumer('billing'), options).getBackoffPolicy()?.getMaxAttempts()).toBe(17);
  });
});
