/**
 * `dlq list` and `dlq redrive` on the in-memory broker's dead letters, with the tokens in a real store:
 * a letter whose token is completed is skipped as a duplicate, the others are re-driven and arrive again.
 */
import type { Settlement, TransportMessage } from '@idempotent-mq/core/adapter';
import { InMemoryBroker } from '@idempotent-mq/testing';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type DeadLetterSource, type IdempotentMqConfig, inMemoryDeadLetterSource } from '../src/index.js';
import { type Backend, cli, openBackend, removeScratch, sleep, uniqueScope } from './support/cli.js';

afterAll(removeScratch);

/** Publishes `keys` to `payments` and lets group `billing` dead-letter every one of them. */
async function deadLettered(broker: InMemoryBroker, keys: readonly string[]): Promise<void> {
  for (const key of keys) broker.publish('payments', { keys: [key], body: { amount: 100 }, tag: 'card' });
  const transport = broker.connect();
  await transport.subscribe({
    topic: 'payments',
    consumerGroup: 'billing',
    concurrency: 4,
    maxAttempts: 1,
    listener: {},
    handle: async (messages) =>
      messages.map((): Settlement => ({ action: 'deadLetter', reason: 'card declined' })),
  });
  while (broker.deadLetters('billing').length < keys.length) await sleep(5);
  await transport.stop();
}

/** The messages group `billing` receives until `count` have come (acked). */
async function received(broker: InMemoryBroker, count: number): Promise<TransportMessage[]> {
  const got: TransportMessage[] = [];
  const transport = broker.connect();
  await transport.subscribe({
    topic: 'payments',
    consumerGroup: 'billing',
    concurrency: 4,
    maxAttempts: 1,
    listener: {},
    handle: async (messages) => {
      got.push(...messages);
      return messages.map((): Settlement => ({ action: 'ack' }));
    },
  });
  const deadline = Date.now() + 5_000;
  while (got.length < count && Date.now() < deadline) await sleep(5);
  await sleep(20); // anything more would arrive now
  await transport.stop();
  return got;
}

for (const kind of ['sqlite', 'redis'] as const) {
  describe(`dlq on the in-memory broker, tokens in ${kind}`, () => {
    let b: Backend;
    let scope: string;
    let broker: InMemoryBroker;
    let config: IdempotentMqConfig;
    beforeAll(async () => {
      b = await openBackend(kind);
    });
    afterAll(async () => {
      await b.close();
    });
    beforeEach(async () => {
      scope = uniqueScope();
      broker = new InMemoryBroker();
      config = { deadLetters: [{ name: 'memory', source: inMemoryDeadLetterSource(broker), scope }] };
      await deadLettered(broker, ['PAY-1', 'PAY-2', 'PAY-3']);
      // PAY-1 was processed after all (another copy); PAY-3 is held by a live claim; PAY-2 never ran.
      await b.seed({ scope, key: 'PAY-1' }, { ttlMs: 3_600_000 });
      await b.seed({ scope, key: 'PAY-3' }, { leaseMs: 60_000 });
    });

    it('list shows each dead letter with its token state and whether redrive would send it', async () => {
      const run = await cli(['dlq', 'list', '--json'], { env: b.env, config });
      expect(run.code).toBe(0);
      const doc = run.json<{ letters: Record<string, unknown>[] }>();
      expect(doc).toMatchObject({ command: 'dlq list', sources: ['memory'] });
      expect(doc.letters.map((l) => [l.keys, l.tokenState, l.wouldRedrive])).toEqual([
        [['PAY-1'], 'completed', false],
        [['PAY-2'], 'absent', true],
        [['PAY-3'], 'inProgress', true],
      ]);
      expect(doc.letters[0]).toMatchObject({
        source: 'memory',
        topic: 'payments',
        consumerGroup: 'billing',
        reason: 'card declined',
        token: { scope, key: 'PAY-1' },
      });
      const text = await cli(['dlq', 'list'], { env: b.env, config });
      expect(text.stdout).toMatch(
        /memory {2}billing\/MSG-\d+ {2}payments {2}keys PAY-1 {2}token completed {2}dead-lettered: card declined/,
      );
    });

    it('redrive skips the completed token as a duplicate and re-drives the others, which arrive again', async () => {
      const stored = broker.stored;
      const dry = await cli(['dlq', 'redrive', '--dry-run', '--json'], { env: b.env, config });
      expect(dry.code).toBe(0);
      expect(dry.json()).toMatchObject({
        dryRun: true,
        counts: { skipped: 1, wouldRedrive: 2, redriven: 0 },
      });
      expect(broker.stored).toBe(stored);

      const run = await cli(['dlq', 'redrive', '--json'], { env: b.env, config });
      expect(run.code).toBe(0);
      const doc = run.json<{ letters: Record<string, unknown>[] }>();
      expect(doc).toMatchObject({ command: 'dlq redrive', counts: { skipped: 1, redriven: 2, failed: 0 } });
      expect(doc.letters.map((l) => [l.keys, l.action, l.why])).toEqual([
        [['PAY-1'], 'skipped', 'duplicate: token completed'],
        [['PAY-2'], 'redriven', 'token absent: it never completed (failed, or never ran)'],
        [['PAY-3'], 'redriven', expect.stringContaining('token in progress')],
      ]);
      expect(broker.stored).toBe(stored + 2);
      const again = await received(broker, 2);
      expect(again.map((m) => m.keys[0]).sort()).toEqual(['PAY-2', 'PAY-3']);
      expect(again[0]).toMatchObject({ body: { amount: 100 }, tag: 'card', topic: 'payments' });

      // Re-driven letters leave the list; the skipped one stays until --all sends it too.
      const left = (await cli(['dlq', 'list', '--json'], { env: b.env, config })).json<{
        letters: { keys: string[] }[];
      }>();
      expect(left.letters.map((l) => l.keys[0])).toEqual(['PAY-1']);
      const text = await cli(['dlq', 'redrive', '--all'], { env: b.env, config });
      expect(text.code).toBe(0);
      expect(text.stdout).toMatch(
        /^re-driven +memory {2}billing\/MSG-\d+ {2}payments {2}keys PAY-1 {2}\(token completed; --all/m,
      );
      expect(text.stdout).toContain('1 dead letter: 1 re-driven, 0 skipped, 0 failed');
    });

    it('redrive --id re-drives only the letters named; an unknown id is not found (exit 3), nothing sent', async () => {
      const list = (await cli(['dlq', 'list', '--json'], { env: b.env, config })).json<{
        letters: { id: string; keys: string[] }[];
      }>();
      const pay2 = list.letters.find((l) => l.keys[0] === 'PAY-2')?.id as string;
      const stored = broker.stored;
      const missing = await cli(['dlq', 'redrive', '--id', pay2, 'billing/NOPE'], { env: b.env, config });
      expect(missing.code).toBe(3);
      expect(missing.stderr).toContain('No dead letter with id billing/NOPE');
      expect(broker.stored).toBe(stored);
      const one = await cli(['dlq', 'redrive', '--id', pay2, '--json'], { env: b.env, config });
      expect(one.json()).toMatchObject({ counts: { redriven: 1, skipped: 0 } });
      expect(broker.stored).toBe(stored + 1);
    });

    it('without a scope from the config or --scope, redrive refuses (exit 2) and list shows tokens unknown', async () => {
      const unscoped: IdempotentMqConfig = {
        deadLetters: [{ name: 'memory', source: inMemoryDeadLetterSource(broker) }],
      };
      const list = await cli(['dlq', 'list', '--json'], { env: b.env, config: unscoped });
      expect(list.json<{ letters: { tokenState: string }[] }>().letters.map((l) => l.tokenState)).toEqual([
        'unknown',
        'unknown',
        'unknown',
      ]);
      const stored = broker.stored;
      const refused = await cli(['dlq', 'redrive'], { env: b.env, config: unscoped });
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain('Cannot tell the scope of the listener for memory: billing');
      expect(refused.stderr).toContain('Pass --scope');
      expect(broker.stored).toBe(stored);
      const scoped = await cli(['dlq', 'redrive', '--scope', scope, '--json'], {
        env: b.env,
        config: unscoped,
      });
      expect(scoped.json()).toMatchObject({ counts: { skipped: 1, redriven: 2 } });
    });

    it('a scope function and a key function of the config tell each letter its token', async () => {
      const byGroup: IdempotentMqConfig = {
        deadLetters: [
          {
            name: 'memory',
            source: inMemoryDeadLetterSource(broker),
            scope: (letter) => (letter.consumerGroup === 'billing' ? scope : undefined),
            key: (letter) => `${letter.keys[0]}`,
          },
        ],
      };
      const run = await cli(['dlq', 'list', '--group', 'billing', '--json'], { env: b.env, config: byGroup });
      expect(run.json<{ letters: { tokenState: string }[] }>().letters.map((l) => l.tokenState)).toEqual([
        'completed',
        'absent',
        'inProgress',
      ]);
      const other = await cli(['dlq', 'list', '--group', 'shipping', '--json'], {
        env: b.env,
        config: byGroup,
      });
      expect(other.json()).toMatchObject({ letters: [] });
    });

    it('a letter the source fails to re-drive is reported failed, the rest go on, and the exit is 1', async () => {
      const inner = inMemoryDeadLetterSource(broker);
      const flaky: DeadLetterSource = {
        list: () => inner.list(),
        redrive: async (letter) => {
          if (letter.keys[0] === 'PAY-2') throw new Error('broker said no');
          await inner.redrive(letter);
        },
      };
      const run = await cli(['dlq', 'redrive', '--json'], {
        env: b.env,
        config: { deadLetters: [{ name: 'flaky', source: () => flaky, scope }] },
      });
      expect(run.code).toBe(1);
      expect(run.json()).toMatchObject({ counts: { skipped: 1, redriven: 1, failed: 1 } });
      expect(run.stderr).toContain('1 dead letter could not be re-driven');
    });
  });
}

describe('dlq without sources', () => {
  it('says how to configure one (exit 2)', async () => {
    const backend = await openBackend('sqlite');
    try {
      const run = await cli(['dlq', 'list'], { env: backend.env });
      expect(run.code).toBe(2);
      expect(run.stderr).toContain('No dead-letter sources are configured');
      const unknown = await cli(['dlq', 'list', '--source', 'rabbit'], {
        env: backend.env,
        config: { deadLetters: [{ name: 'memory', source: inMemoryDeadLetterSource(new InMemoryBroker()) }] },
      });
      expect(unknown.code).toBe(2);
      expect(unknown.stderr).toContain('No dead-letter source named "rabbit". Configured: memory.');
    } finally {
      await backend.close();
    }
  });
});
