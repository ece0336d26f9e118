/** What RocketMQTransport tells the registry about RocketMQ: its limits and its rules for listeners. */
import { InvalidOptionError, MessageListener } from '@idempotent-mq/core';
import { REDELIVERY_HORIZON_MS, RocketMQListener, RocketMQTransport } from '@idempotent-mq/rocketmq';
import { describe, expect, it } from 'vitest';

// The constructor opens nothing: no broker is needed to read the profile.
const transport = (extra = {}) => new RocketMQTransport({ endpoints: '127.0.0.1:8081', ...extra });

describe('RocketMQTransport.profile', () => {
  it("carries RocketMQ's limits: 17 attempts, 12 h retry delays, its default schedule as the horizon", () => {
    const { broker, defaultMaxAttempts, maxAttempts, maxRetryDelayMs, redeliveryHorizonMs } =
      transport().profile;
    expect({ broker, defaultMaxAttempts, maxAttempts, maxRetryDelayMs, redeliveryHorizonMs }).toEqual({
      broker: 'RocketMQ',
      defaultMaxAttempts: 17,
      maxAttempts: 17,
      maxRetryDelayMs: 12 * 3_600_000,
      redeliveryHorizonMs: REDELIVERY_HORIZON_MS,
    });
    // 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h
    expect(REDELIVERY_HORIZON_MS).toBe((4 * 3600 + 45 * 60 + 40) * 1000);
  });

  it("takes the groups' limit from maxDeliveryAttempts, and the default attempts never exceed it", () => {
    expect(transport({ maxDeliveryAttempts: 3 }).profile).toMatchObject({
      defaultMaxAttempts: 3,
      maxAttempts: 3,
    });
    expect(transport({ maxDeliveryAttempts: 33 }).profile).toMatchObject({
      defaultMaxAttempts: 17,
      maxAttempts: 33,
    });
    expect(() => transport({ maxDeliveryAttempts: 0 })).toThrow(/RocketMQTransport\.maxDeliveryAttempts/);
  });

  it('checkListener rejects a topic RocketMQ cannot name, naming the option and the fix', () => {
    const { checkListener } = transport().profile;
    const check = () => checkListener({ topic: 'orders.created', consumerGroup: 'billing' }, 'Orders');
    expect(check).toThrow(InvalidOptionError);
    expect(check).toThrow(/"Orders\.topic".*\[A-Za-z0-9%_-\], 1 to 127 characters.*'-' or '_'/);
    expect(() => checkListener({ topic: 'orders', consumerGroup: 'x'.repeat(128) }, 'Orders')).toThrow(
      /"Orders\.consumerGroup"/,
    );
    expect(() =>
      checkListener({ topic: 'orders_created', consumerGroup: 'billing' }, 'Orders'),
    ).not.toThrow();
  });

  it('checkListener rejects a listener with both tag and sqlFilter, an empty sqlFilter, an unknown codec', () => {
    const { checkListener } = transport().profile;
    const base = { topic: 'orders', consumerGroup: 'billing' };
    expect(() => checkListener({ ...base, tag: 'PAY', sqlFilter: "region = 'eu'" }, 'Orders')).toThrow(
      /"Orders\.sqlFilter": expected either tag or sqlFilter, not both/,
    );
    expect(() => checkListener({ ...base, sqlFilter: ' ' }, 'Orders')).toThrow(/"Orders\.sqlFilter"/);
    expect(() => checkListener({ ...base, codec: 'xml' }, 'Orders')).toThrow(/"Orders\.codec"/);
    expect(() => checkListener({ ...base, tag: 'PAY', codec: 'utf8' }, 'Orders')).not.toThrow();
  });

  it('checkListener holds a plain @MessageListener to the same rules as @RocketMQListener', () => {
    // Core accepts any non-empty name now; RocketMQ's rules reach the registry through the profile.
    @MessageListener({ topic: 'orders.created', consumerGroup: 'billing' })
    class Plain {}
    expect(Plain).toBeDefined();
    expect(() =>
      transport().profile.checkListener({ topic: 'orders.created', consumerGroup: 'billing' }, 'Plain'),
    ).toThrow(/"Plain\.topic"/);
    expect(() => {
      @RocketMQListener({ topic: 'orders.created', consumerGroup: 'billing' })
      class Dotted {}
      return Dotted;
    }).toThrow(/@RocketMQListener\(Dotted\)\.topic/);
    expect(() => {
      @RocketMQListener({ topic: 'orders', consumerGroup: 'billing', tag: 'A', sqlFilter: 'a = 1' })
      class Both {}
      return Both;
    }).toThrow(/@RocketMQListener\(Both\)\.sqlFilter/);
  });
});
