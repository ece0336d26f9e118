/** Shared helpers for the tests that drive the transport against a real RabbitMQ. */
import { randomUUID } from 'node:crypto';
import type { Settlement, SubscriptionSpec, TransportMessage } from '@idempotent-mq/core/adapter';
import type { RabbitMQLogger, SettledEvent } from '@idempotent-mq/rabbitmq';
import { type ChannelModel, connect, type GetMessage } from 'amqplib';
import { keysOf } from '../src/message.js';
import { DEFAULT_RETRY_LADDER_MS, topologyOf } from '../src/topology.js';

/** The shared server of this machine (`.ci/run` makes sure it is up). */
export const RABBITMQ_URL = process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

export class RecordingLogger implements RabbitMQLogger {
  readonly lines: { level: string; text: string }[] = [];
  info(...args: unknown[]): void {
    this.lines.push({ level: 'info', text: args.map(String).join(' ') });
  }
  warn(...args: unknown[]): void {
    this.lines.push({ level: 'warn', text: args.map(String).join(' ') });
  }
  error(...args: unknown[]): void {
    this.lines.push({ level: 'error', text: args.map(String).join(' ') });
  }
  at(level: string): string[] {
    return this.lines.filter((l) => l.level === level).map((l) => l.text);
  }
}

/** A topic and group no other test uses. */
export function uniqueNames(prefix: string): { topic: string; group: string } {
  const id = randomUUID().slice(0, 8);
  return { topic: `${prefix}-${id}`, group: `${prefix}-group-${id}` };
}

/** Polls `check` until it holds, failing with `what` after `timeoutMs`. */
export async function eventually(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await sleep(20);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A raw amqplib connection for looking at queues from the outside (a channel per look: errors close one). */
export class Inspector {
  private constructor(private readonly connection: ChannelModel) {}

  static async open(url = RABBITMQ_URL): Promise<Inspector> {
    const connection = await connect(url);
    connection.on('error', () => undefined);
    return new Inspector(connection);
  }

  /** The messages waiting in `queue`, left there (got without ack, given back by closing the channel). */
  async peek(queue: string): Promise<GetMessage[]> {
    const channel = await this.connection.createChannel();
    channel.on('error', () => undefined);
    const messages: GetMessage[] = [];
    try {
      for (;;) {
        const m = await channel.get(queue, { noAck: false });
        if (m === false) break;
        messages.push(m);
      }
    } catch {
      // no such queue: nothing in it
    }
    await channel.close().catch(() => undefined);
    return messages;
  }

  /** The business keys of the messages in `queue`. */
  async keysIn(queue: string): Promise<string[][]> {
    return (await this.peek(queue)).map((m) => keysOf(m));
  }

  /** How many messages wait in `queue` (undefined if it does not exist). */
  async count(queue: string): Promise<number | undefined> {
    const channel = await this.connection.createChannel();
    channel.on('error', () => undefined);
    try {
      return (await channel.checkQueue(queue)).messageCount;
    } catch {
      return undefined;
    } finally {
      await channel.close().catch(() => undefined);
    }
  }

  /** Publishes raw bytes to the topic's exchange, as a producer that is not ours would. */
  async publishRaw(exchange: string, routingKey: string, content: Buffer, options = {}): Promise<void> {
    const channel = await this.connection.createConfirmChannel();
    await channel.assertExchange(exchange, 'topic', { durable: true });
    channel.publish(exchange, routingKey, content, { persistent: true, ...options });
    await channel.waitForConfirms();
    await channel.close();
  }

  /** Deletes everything a group may have declared: its queues (every retry step's) and the exchange. */
  async deleteTopology(topic: string, group: string, ladder = DEFAULT_RETRY_LADDER_MS): Promise<void> {
    const names = topologyOf(topic, group, ladder);
    const channel = await this.connection.createChannel();
    channel.on('error', () => undefined);
    for (const queue of [names.queue, names.deadLetterQueue, ...names.retryQueues])
      await channel.deleteQueue(queue);
    await channel.deleteExchange(names.exchange);
    await channel.close();
  }

  async close(): Promise<void> {
    await this.connection.close().catch(() => undefined);
  }
}

/** A subscription answering each message with `answer`. */
export function spec(
  topic: string,
  group: string,
  answer: (m: TransportMessage) => Settlement | Promise<Settlement>,
  extra: Partial<SubscriptionSpec> = {},
): SubscriptionSpec {
  return {
    topic,
    consumerGroup: group,
    concurrency: 4,
    maxAttempts: 17,
    listener: {},
    handle: (messages) => Promise.all(messages.map(answer)),
    ...extra,
  };
}

/** The settlements reported, for assertions. */
export function recorder(): { events: SettledEvent[]; onSettled: (e: SettledEvent) => void } {
  const events: SettledEvent[] = [];
  return { events, onSettled: (e) => events.push(e) };
}
