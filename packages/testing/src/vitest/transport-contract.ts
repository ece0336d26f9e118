/**
 * The contract every {@link MessageTransport} keeps, as a vitest suite any transport runs with one call:
 *
 * ```ts
 * describeTransportContract('MyTransport', async () => ({
 *   connect: () => new MyTransport(options),
 *   publish: (topic, m) => producer.send(topic, m),
 *   deadLetters: (group) => broker.deadLetters(group),
 *   kill: (t) => (t as MyTransport).destroy(),
 *   redeliveryMs: 1000,
 * }));
 * ```
 *
 * It holds a transport to the settlement port (`ports/message-transport.ts`): an ack is final; a failure
 * retry comes back after its delay with the attempt counted; a wait comes back with the same attempt and
 * never reaches a dead letter, the broker's own included; a dead letter is final; a message stays
 * invisible while its handler runs; a consumer that dies loses nothing; `stop()` drains.
 */
import { randomUUID } from 'node:crypto';
import type {
  MessageTransport,
  Settlement,
  SubscriptionSpec,
  TransportMessage,
} from '@idempotent-mq/core/adapter';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

/** What the suite needs of a transport and its broker. */
export interface TransportContractHarness {
  /** A new consumer connection, as one process would bind it. */
  connect(): MessageTransport | Promise<MessageTransport>;
  /**
   * Publishes one message whose business key is `keys` and whose body decodes to `body` (JSON data). The
   * broker must keep it for the test's consumer group even before that group subscribes.
   */
  publish(
    topic: string,
    message: { readonly keys: readonly string[]; readonly body: unknown },
  ): Promise<void>;
  /** The business keys of the messages the broker holds as dead letters of `consumerGroup`. */
  deadLetters(consumerGroup: string): Promise<readonly (readonly string[])[]>;
  /**
   * The consumer dies on the spot, as a process killed with SIGKILL: it receives and settles nothing
   * more, and what it was handling must come back to another consumer of the group.
   */
  kill(transport: MessageTransport): Promise<void>;
  /**
   * How long after its consumer went silent an unsettled message is delivered again (the visibility
   * timeout, the invisible duration); the suite waits a little longer than this.
   */
  readonly redeliveryMs: number;
  /** A retry delay the broker carries out promptly. @defaultValue 50 */
  readonly retryDelayMs?: number;
  /** Called after each test, once every transport the test connected is stopped or killed. */
  cleanup?(): Promise<void>;
}

/** Registers the transport contract suite under `name`; `setup` runs before each test. */
export function describeTransportContract(
  name: string,
  setup: () => Promise<TransportContractHarness>,
): void {
  describe(`${name} keeps the transport contract`, () => {
    let h: TransportContractHarness;
    let topic: string;
    let group: string;
    let open: MessageTransport[];
    let retryDelay: number;
    const slack = () => h.redeliveryMs + 1500;

    const connect = async () => {
      const transport = await h.connect();
      open.push(transport);
      return transport;
    };
    /** Subscribes `transport` to the test's topic and group, each message answered by `answer`. */
    const subscribe = (
      transport: MessageTransport,
      answer: (m: TransportMessage) => Settlement | Promise<Settlement>,
      extra: Partial<SubscriptionSpec> = {},
    ) =>
      transport.subscribe({
        topic,
        consumerGroup: group,
        concurrency: 4,
        maxAttempts: transport.profile.defaultMaxAttempts,
        listener: {},
        handle: (messages) => Promise.all(messages.map(answer)),
        ...extra,
      });
    const retry = (countsAsAttempt: boolean): Settlement => ({
      action: 'retry',
      delayMs: retryDelay,
      countsAsAttempt,
      reason: countsAsAttempt ? 'contract: a failure' : 'contract: a wait',
    });

    beforeEach(async () => {
      h = await setup();
      const id = randomUUID().slice(0, 8);
      topic = `contract-${id}`;
      group = `contract-group-${id}`;
      open = [];
      retryDelay = h.retryDelayMs ?? 50;
    });
    afterEach(async () => {
      await Promise.allSettled(open.map((t) => t.stop()));
      await h.cleanup?.();
    });

    it('its profile is usable by the settlement policy', async () => {
      const { profile } = await connect();
      expect(profile.broker).toEqual(expect.any(String));
      expect(profile.defaultMaxAttempts).toBeGreaterThanOrEqual(1);
      expect(profile.maxAttempts).toBeGreaterThanOrEqual(profile.defaultMaxAttempts);
      expect(profile.maxRetryDelayMs).toBeGreaterThan(0);
      expect(profile.redeliveryHorizonMs).toBeGreaterThanOrEqual(0);
      expect(() => profile.checkListener({ topic, consumerGroup: group }, 'Contract')).not.toThrow();
    });

    it('an acked message is never delivered again', async () => {
      const t = await connect();
      const seen: number[] = [];
      await subscribe(t, (m) => {
        seen.push(m.deliveryAttempt);
        return { action: 'ack' };
      });
      await h.publish(topic, { keys: ['ACK-1'], body: { n: 1 } });
      await until(() => seen.length === 1, slack(), 'the message was never delivered');
      await sleep(h.redeliveryMs + 300);
      expect(seen).toEqual([1]);
      expect(await h.deadLetters(group)).toEqual([]);
    });

    it('a failure retry comes back after its delay, with the attempt counted', async () => {
      const t = await connect();
      const seen: { attempt: number; at: number; keys: readonly string[]; body: unknown }[] = [];
      await subscribe(t, (m) => {
        seen.push({ attempt: m.deliveryAttempt, at: Date.now(), keys: m.keys, body: m.body });
        return m.deliveryAttempt === 1 ? retry(true) : { action: 'ack' };
      });
      await h.publish(topic, { keys: ['FAIL-1'], body: { n: 2 } });
      await until(() => seen.length === 2, slack(), 'the retry never came back');
      const [first, second] = seen as [(typeof seen)[0], (typeof seen)[0]];
      expect([first.attempt, second.attempt]).toEqual([1, 2]);
      expect(second.at - first.at).toBeGreaterThanOrEqual(retryDelay * 0.8);
      expect(second).toMatchObject({ keys: ['FAIL-1'], body: { n: 2 } });
    });

    it("a wait comes back with the same attempt, and never reaches a dead letter, not even past the broker's own limit", async () => {
      const t = await connect();
      const waits = Math.min(t.profile.maxAttempts + 2, 30);
      const attempts: number[] = [];
      await subscribe(
        t,
        (m) => {
          attempts.push(m.deliveryAttempt);
          return attempts.length <= waits ? retry(false) : { action: 'ack' };
        },
        { maxAttempts: 1 },
      );
      await h.publish(topic, { keys: ['WAIT-1'], body: { n: 3 } });
      await until(() => attempts.length === waits + 1, slack() + waits * (retryDelay + 200), 'waits stopped');
      await sleep(300);
      expect(attempts).toEqual(Array.from({ length: waits + 1 }, () => 1));
      expect(await h.deadLetters(group)).toEqual([]);
    });

    it('a dead letter goes to the dead-letter queue and is never delivered again', async () => {
      const t = await connect();
      let deliveries = 0;
      await subscribe(t, () => {
        deliveries++;
        return { action: 'deadLetter', reason: 'contract: poison' };
      });
      await h.publish(topic, { keys: ['DEAD-1'], body: { n: 4 } });
      await until(
        async () => (await h.deadLetters(group)).length === 1,
        slack(),
        'nothing was dead-lettered',
      );
      expect(await h.deadLetters(group)).toEqual([['DEAD-1']]);
      await sleep(h.redeliveryMs + 300);
      expect(deliveries).toBe(1);
    });

    it('a message stays invisible to the rest of its group while its handler runs past the visibility timeout', async () => {
      const slow = await connect();
      const other = await connect();
      const seen: string[] = [];
      const slowFor = h.redeliveryMs * 2 + 500;
      await subscribe(slow, async () => {
        seen.push('slow');
        await sleep(slowFor);
        return { action: 'ack' };
      });
      await h.publish(topic, { keys: ['SLOW-1'], body: { n: 5 } });
      await until(() => seen.length === 1, slack(), 'the message was never delivered');
      await subscribe(other, () => {
        seen.push('other');
        return { action: 'ack' };
      });
      await sleep(slowFor + h.redeliveryMs + 300);
      expect(seen).toEqual(['slow']);
    });

    it('a consumer that dies mid-handler loses nothing: another consumer of the group gets the message, attempt + 1', async () => {
      const dying = await connect();
      const survivor = await connect();
      const seen: string[] = [];
      const never = new Promise<Settlement>(() => undefined);
      await subscribe(dying, (m) => {
        seen.push(`dying:${m.deliveryAttempt}`);
        return never;
      });
      await h.publish(topic, { keys: ['DIE-1'], body: { n: 6 } });
      await until(() => seen.length === 1, slack(), 'the message was never delivered');
      await h.kill(dying);
      open.splice(open.indexOf(dying), 1);
      await subscribe(survivor, (m) => {
        seen.push(`survivor:${m.deliveryAttempt}`);
        return { action: 'ack' };
      });
      await until(() => seen.length === 2, slack() + h.redeliveryMs, 'the message never came back');
      expect(seen).toEqual(['dying:1', 'survivor:2']);
      await sleep(h.redeliveryMs + 300);
      expect(seen).toHaveLength(2);
    });

    it('stop() lets every handler in flight finish and carries out its settlement; the rest waits for the next consumer', async () => {
      const first = await connect();
      const started: string[] = [];
      const finished: string[] = [];
      await subscribe(
        first,
        async (m) => {
          started.push(m.keys[0] as string);
          await sleep(300);
          finished.push(m.keys[0] as string);
          return { action: 'ack' };
        },
        { concurrency: 2 },
      );
      const keys = Array.from({ length: 8 }, (_, i) => `STOP-${i}`);
      for (const key of keys) await h.publish(topic, { keys: [key], body: { key } });
      await until(() => started.length >= 1, slack(), 'nothing was delivered');
      await first.stop();
      open.splice(open.indexOf(first), 1);
      expect(finished.sort()).toEqual([...started].sort());

      const second = await connect();
      const rest: string[] = [];
      await subscribe(second, (m) => {
        rest.push(m.keys[0] as string);
        return { action: 'ack' };
      });
      await until(
        () => started.length + rest.length >= keys.length,
        slack() * 2,
        'messages were lost at stop()',
      );
      await sleep(h.redeliveryMs + 300);
      expect([...started, ...rest].sort()).toEqual(keys);
    });

    it('never handles more than `concurrency` messages at once, however they arrive', async () => {
      const t = await connect();
      let running = 0;
      let most = 0;
      let done = 0;
      // Published before the subscription, so that they are all there for the first receive.
      for (let i = 0; i < 6; i++) await h.publish(topic, { keys: [`CONC-${i}`], body: { i } });
      await subscribe(
        t,
        async () => {
          most = Math.max(most, ++running);
          await sleep(60);
          running--;
          done++;
          return { action: 'ack' };
        },
        { concurrency: 2 },
      );
      await until(() => done === 6, slack() * 2, 'not every message was handled');
      expect(most).toBe(2);
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function until(done: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`${what} (after ${timeoutMs} ms)`);
    await sleep(10);
  }
}
