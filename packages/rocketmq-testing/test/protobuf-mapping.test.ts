/** The protobuf mapping: the codes the state records are RocketMQ's, and a message survives the trip. */
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { RocketMQCode } from '../src/broker-state.js';
import { pbDefinition as d } from '../src/proto.js';
import { deliveredMessage, incomingMessage, tagExpression } from '../src/protobuf-mapping.js';

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
});
