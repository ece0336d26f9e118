/** The broker state alone, no gRPC: receipt handles, redelivery, dead letters, the state-side faults. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BrokerState, type IncomingMessage, RocketMQCode } from '../src/broker-state.js';

const message = (topic: string, extra: Partial<IncomingMessage> = {}): IncomingMessage => ({
  topic,
  body: Buffer.from('{}'),
  keys: ['K-1'],
  properties: {},
  bornAt: Date.now(),
  ...extra,
});

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
});

afterEach(() => {
  vi.useRealTimers();
});

describe('BrokerState', () => {
  it('hands a message to each group once until its invisible time ends, then again with attempt + 1', () => {
    const state = new BrokerState(17);
    const sent = state.send(message('t'));
    const [first] = state.take('g', 't', undefined, 10, 1000);
    expect(first).toMatchObject({ message: sent, attempt: 1, invisibleMs: 1000 });
    expect(state.take('g', 't', undefined, 10, 1000)).toEqual([]);
    expect(state.take('other', 't', undefined, 10, 1000)).toHaveLength(1);
    vi.advanceTimersByTime(1000);
    const [second] = state.take('g', 't', undefined, 10, 1000);
    expect(second?.attempt).toBe(2);
    expect(second?.receiptHandle).not.toBe(first?.receiptHandle);
  });

  it('acks only with the newest unexpired receipt handle; a stale one is recorded as not applied', () => {
    const state = new BrokerState(17);
    const { messageId } = state.send(message('t'));
    const [first] = state.take('g', 't', undefined, 10, 1000);
    vi.advanceTimersByTime(1000);
    expect(state.ack('g', [{ messageId, receiptHandle: first?.receiptHandle ?? '' }])).toEqual([
      RocketMQCode.INVALID_RECEIPT_HANDLE,
    ]);
    const [second] = state.take('g', 't', undefined, 10, 1000);
    expect(state.ack('g', [{ messageId, receiptHandle: second?.receiptHandle ?? '' }])).toEqual([
      RocketMQCode.OK,
    ]);
    expect(state.acks('g').map((a) => [a.applied, a.code])).toEqual([
      [false, RocketMQCode.INVALID_RECEIPT_HANDLE],
      [true, RocketMQCode.OK],
    ]);
    expect(state.acked('g')).toEqual([messageId]);
    expect(state.stateOf('g', messageId)).toBe('acked');
  });

  it('a change of invisible time replaces the receipt handle', () => {
    const state = new BrokerState(17);
    const { messageId } = state.send(message('t'));
    const [delivery] = state.take('g', 't', undefined, 10, 1000);
    const old = delivery?.receiptHandle ?? '';
    const renewed = state.changeInvisibleDuration('g', messageId, old, 5000);
    expect(renewed).toBeDefined();
    expect(state.changeInvisibleDuration('g', messageId, old, 5000)).toBeUndefined();
    vi.advanceTimersByTime(4000);
    expect(state.take('g', 't', undefined, 10, 1000)).toEqual([]); // still invisible: 5 s from the change
    expect(state.invisibleChanges('g').map((c) => c.code)).toEqual([
      RocketMQCode.OK,
      RocketMQCode.INVALID_RECEIPT_HANDLE,
    ]);
  });

  it('dead-letters past maxDeliveryAttempts by itself, and on the client word', () => {
    const state = new BrokerState(2);
    const tired = state.send(message('t'));
    for (let i = 0; i < 2; i++) {
      expect(state.take('g', 't', undefined, 1, 1000)).toHaveLength(1);
      vi.advanceTimersByTime(1000);
    }
    expect(state.take('g', 't', undefined, 1, 1000)).toEqual([]);
    const forwarded = state.send(message('t'));
    const [delivery] = state.take('g', 't', undefined, 1, 1000);
    expect(state.forwardToDeadLetter(delivery?.receiptHandle ?? '', 1)).toBe(true);
    expect(state.forwardToDeadLetter(delivery?.receiptHandle ?? '', 1)).toBe(false);
    expect(
      state.deadLetters('g').map((d) => [d.message.messageId, d.cause, d.deliveryAttempt, d.dlqTopic]),
    ).toEqual([
      [tired.messageId, 'maxDeliveryAttempts', 2, '%DLQ%g'],
      [forwarded.messageId, 'forwarded', 1, '%DLQ%g'],
    ]);
  });

  it('a dead letter is also a message of %DLQ%<group>: same id, body, keys, tag and user properties, its origin in system properties', () => {
    const state = new BrokerState(17);
    expect(state.topicExists('%DLQ%g')).toBe(false);
    const sent = state.send(message('t', { tag: 'PAY', properties: { tenant: 'acme' } }));
    const [delivery] = state.take('g', 't', undefined, 1, 1000);
    state.forwardToDeadLetter(delivery?.receiptHandle ?? '', 1);
    expect(state.topicExists('%DLQ%g')).toBe(true);
    expect(state.topicPerm('%DLQ%g')).toBe(6);
    const [letter] = state.messages('%DLQ%g');
    expect(letter).toMatchObject({
      topic: '%DLQ%g',
      messageId: sent.messageId,
      body: sent.body,
      keys: ['K-1'],
      tag: 'PAY',
      properties: { tenant: 'acme' },
      systemProperties: { RETRY_TOPIC: 't', ORIGIN_MESSAGE_ID: sent.messageId },
      reconsumeTimes: 1,
    });
    expect(state.deadLetters('g')[0]?.dlqMessage).toBe(letter);
    // Any group can receive it there; its count goes on from the original's.
    const [read] = state.take('reader', '%DLQ%g', undefined, 10, 1000);
    expect(read).toMatchObject({ message: letter, attempt: 2 });
    expect(
      state.changeInvisibleDuration('reader', sent.messageId, read?.receiptHandle ?? '', 0),
    ).toBeDefined();
    const [again] = state.take('reader', '%DLQ%g', undefined, 10, 1000);
    expect(again?.attempt).toBe(3);
    expect(
      state.ack('reader', [{ messageId: sent.messageId, receiptHandle: again?.receiptHandle ?? '' }]),
    ).toEqual([RocketMQCode.OK]);
    expect(state.stateOf('reader', sent.messageId, '%DLQ%g')).toBe('acked');
    // The original stays dead for its group, and unknown to the reader group on its own topic.
    expect(state.stateOf('g', sent.messageId)).toBe('dead');
    expect(state.stateOf('reader', sent.messageId, 't')).toBe('ready');
  });

  it("a dead letter past the receiving group's attempts moves on into that group's own dead-letter topic", () => {
    const state = new BrokerState(17, { groupMaxDeliveryAttempts: { patient: 1000 } });
    expect(state.maxDeliveryAttemptsOf('patient')).toBe(1000);
    expect(state.maxDeliveryAttemptsOf('reader')).toBe(17);
    const sent = state.send(message('t'));
    for (let i = 0; i < 17; i++) {
      expect(state.take('g', 't', undefined, 1, 1000)).toHaveLength(1);
      vi.advanceTimersByTime(1000);
    }
    expect(state.take('g', 't', undefined, 1, 1000)).toEqual([]);
    // The broker gave up after the 17th delivery: the letter goes on from 18, as a real send-back counts.
    expect(state.messages('%DLQ%g')[0]?.reconsumeTimes).toBe(18);
    expect(state.take('reader', '%DLQ%g', undefined, 10, 1000)).toEqual([]);
    expect(state.messages('%DLQ%reader')).toMatchObject([
      {
        messageId: sent.messageId,
        systemProperties: { RETRY_TOPIC: 't', ORIGIN_MESSAGE_ID: sent.messageId },
      },
    ]);
    // A group allowed more attempts (mqadmin updateSubGroup -r) reads it.
    expect(state.take('patient', '%DLQ%g', undefined, 10, 1000)[0]?.attempt).toBe(19);
  });

  it('a dead-letter topic takes the perm it is created with; updateTopicPerm changes it', () => {
    const state = new BrokerState(17, { deadLetterTopicPerm: 2 });
    state.send(message('t'));
    const [delivery] = state.take('g', 't', undefined, 1, 1000);
    state.forwardToDeadLetter(delivery?.receiptHandle ?? '', 1);
    expect([state.topicPerm('%DLQ%g'), state.readable('%DLQ%g')]).toEqual([2, false]);
    expect([state.topicPerm('t'), state.readable('t')]).toEqual([6, true]);
    state.updateTopicPerm('%DLQ%g', 6);
    expect(state.readable('%DLQ%g')).toBe(true);
  });

  it('faults: a refused send is counted down', () => {
    const state = new BrokerState(17);
    state.faults.failSends = 2;
    expect([state.refusesSend(), state.refusesSend(), state.refusesSend()]).toEqual([true, true, false]);
  });

  it('filters on tag expressions; no expression lets everything through', () => {
    const state = new BrokerState(17);
    state.send(message('t', { tag: 'A' }));
    state.send(message('t', { tag: 'B' }));
    state.send(message('t', { tag: 'C' }));
    state.send(message('t'));
    const tags = (group: string, expression: string | undefined) =>
      state.take(group, 't', expression, 10, 1000).map((d) => d.message.tag);
    expect(tags('g1', 'A || B')).toEqual(['A', 'B']);
    expect(tags('g2', ' * ')).toEqual(['A', 'B', 'C', undefined]);
    expect(tags('g3', undefined)).toEqual(['A', 'B', 'C', undefined]);
  });

  it('faults: a dropped ack is answered OK but not applied; a duplicate send stores a copy with a new id', () => {
    const state = new BrokerState(17);
    state.faults.duplicateSends = 1;
    const sent = state.send(message('t', { messageId: 'M-1' }));
    expect(sent.messageId).toBe('M-1');
    expect(state.messages('t').map((m) => [m.keys, m.duplicateOf])).toEqual([
      [['K-1'], undefined],
      [['K-1'], 'M-1'],
    ]);
    state.faults.dropAcks = 1;
    const [delivery] = state.take('g', 't', undefined, 1, 1000);
    expect(state.ack('g', [{ messageId: 'M-1', receiptHandle: delivery?.receiptHandle ?? '' }])).toEqual([
      RocketMQCode.OK,
    ]);
    expect(state.acks('g')[0]?.applied).toBe(false);
    expect(state.faults.dropAcks).toBe(0);
    vi.advanceTimersByTime(1000);
    expect(state.take('g', 't', undefined, 1, 1000)[0]?.attempt).toBe(2);
  });

  it('remembers a client over its calls: what a call leaves out stays as it was', () => {
    const state = new BrokerState(17);
    state.sawClient({ clientId: 'c1', namespace: 'ns' });
    state.sawClient({ clientId: 'c1', clientType: 'PRODUCER', topics: ['t'] });
    expect(state.clients()).toEqual([
      { clientId: 'c1', clientType: 'PRODUCER', namespace: 'ns', topics: ['t'], filters: [] },
    ]);
  });
});
