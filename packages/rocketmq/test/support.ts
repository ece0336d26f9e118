/** Shared helpers for the tests that drive the real rocketmq-client-nodejs against the test broker. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Settlement, SubscriptionSpec, TransportMessage } from '@idempotent-mq/core/adapter';
import {
  type RocketMQLogger,
  RocketMQTransport,
  type RocketMQTransportOptions,
  type SettledEvent,
} from '@idempotent-mq/rocketmq';

/**
 * The client writes its log under `$HOME/logs/rocketmq`: point HOME at a temp folder for the file's
 * tests (call at module level; returns the cleanup for afterAll).
 */
export function useTempHome(): () => void {
  const previous = process.env.HOME;
  const home = mkdtempSync(join(tmpdir(), 'imq-rocketmq-'));
  process.env.HOME = home;
  return () => {
    process.env.HOME = previous;
    rmSync(home, { recursive: true, force: true });
  };
}

export class RecordingLogger implements RocketMQLogger {
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
  debug(): void {}
  at(level: string): string[] {
    return this.lines.filter((l) => l.level === level).map((l) => l.text);
  }
}

/** Polls `check` until it returns true (or a value), failing with `what` after `timeoutMs`. */
export async function eventually(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await sleep(20);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Transport options tuned for fast tests: short long polling and invisible times. */
export function fastOptions(
  endpoints: string,
  logger: RecordingLogger,
  settled?: SettledEvent[],
  extra: Partial<RocketMQTransportOptions> = {},
): RocketMQTransportOptions {
  return {
    endpoints,
    logger,
    awaitDurationMs: 500,
    invisibleDurationMs: 2000,
    startupTimeoutMs: 5000,
    requestTimeout: 1000,
    receiveBackoff: { initialMs: 100, maxMs: 500 },
    // No jitter: the tests read the exact delays back from the broker.
    failureBackoff: { initialMs: 100, maxMs: 1000, jitter: 0 },
    ...(settled ? { onSettled: (e: SettledEvent) => settled.push(e) } : {}),
    ...extra,
  };
}

/** A subscription whose handler records each message and answers with `decide`. */
export function recordingSpec(
  base: {
    topic: string;
    consumerGroup: string;
    filter?: string;
    concurrency?: number;
    maxAttempts?: number;
    listener?: Record<string, unknown>;
  },
  decide: (m: TransportMessage) => Settlement | Promise<Settlement> = () => ({ action: 'ack' }),
): SubscriptionSpec & { received: TransportMessage[] } {
  const received: TransportMessage[] = [];
  return {
    topic: base.topic,
    consumerGroup: base.consumerGroup,
    filter: base.filter,
    concurrency: base.concurrency ?? 4,
    maxAttempts: base.maxAttempts ?? 5,
    listener: base.listener ?? {},
    received,
    async handle(messages) {
      received.push(...messages);
      return Promise.all(messages.map((m) => decide(m)));
    },
  };
}

/** Has `group` dead-letter every message of `topic` through the real transport until `count` are dead letters. */
export async function deadLetterAll(
  broker: { readonly endpoints: string; deadLetters(group: string): readonly unknown[] },
  topic: string,
  group: string,
  count: number,
  logger: RecordingLogger,
): Promise<void> {
  const transport = new RocketMQTransport(fastOptions(broker.endpoints, logger));
  await transport.subscribe(
    recordingSpec(
      { topic, consumerGroup: group, concurrency: 1 },
      (): Settlement => ({ action: 'deadLetter', reason: 'card declined' }),
    ),
  );
  await eventually('every message dead-lettered', () => broker.deadLetters(group).length === count);
  await transport.stop();
}

/** The connection settings for the real-proxy run, from the environment (undefined: not requested). */
export function realProxySettings(env: NodeJS.ProcessEnv) {
  const endpoints = env.ROCKETMQ_ENDPOINTS?.trim();
  if (!endpoints) return undefined;
  return {
    endpoints,
    namespace: env.ROCKETMQ_NAMESPACE ?? '',
    topic: env.ROCKETMQ_TOPIC ?? 'idempotent-mq-test',
    group: env.ROCKETMQ_GROUP ?? 'idempotent-mq-test',
    sslEnabled: env.ROCKETMQ_SSL === 'true',
    ...(env.ROCKETMQ_ACCESS_KEY && env.ROCKETMQ_SECRET_KEY
      ? { sessionCredentials: { accessKey: env.ROCKETMQ_ACCESS_KEY, accessSecret: env.ROCKETMQ_SECRET_KEY } }
      : {}),
  };
}
