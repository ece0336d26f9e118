/**
 * The promise, as a property: any number of copies of one token at once, with random handler failures
 * and delays, in either mode → the effect happens exactly once, and every copy is eventually settled
 * (processed or duplicate) by retrying — none is dropped.
 */
import {
  IDEMPOTENCY_CLOCK,
  type IdempotencyContext,
  IdempotencyInFlightError,
  Idempotent,
  MemoryIdempotencyStore,
  type MemoryTransaction,
  SystemClock,
} from '@idempotent-mq/core';
import fc from 'fast-check';
import { injectable } from 'inversify';
import { describe, expect, it } from 'vitest';
import { harness, type Message, msg } from '../support/engine-harness.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the promise under concurrency', () => {
  for (const mode of ['transactional', 'lease'] as const) {
    it(`${mode}: N concurrent copies with random failures and delays → exactly one effect, none dropped`, async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 2, max: 12 }),
          fc.array(fc.record({ fail: fc.boolean(), delay: fc.integer({ min: 0, max: 4 }) }), {
            minLength: 1,
            maxLength: 40,
          }),
          async (copies, failures) => {
            // A handler that fails forever is a poison message (the broker's DLQ); here each copy of the cycle ends in success.
            const script = [...failures, { fail: false, delay: 0 }];
            let step = 0;
            const effects: string[] = [];
            const committed: string[] = [];
            @injectable()
            class Consumer {
              @Idempotent({ key: (m: Message) => m.keys, mode, leaseMs: 60_000 })
              async onMessage(m: Message, ctx: IdempotencyContext<MemoryTransaction | undefined>) {
                const { fail, delay } = script[step++ % script.length] as { fail: boolean; delay: number };
                await sleep(delay);
                if (fail) throw new Error('random failure');
                effects.push(m.keys[0] as string);
                if (ctx.trx) ctx.trx.onCommit(() => committed.push(m.keys[0] as string));
                else committed.push(m.keys[0] as string);
              }
            }
            const clock = new SystemClock();
            const h = harness({ store: () => new MemoryIdempotencyStore({ clock }) });
            h.container.rebind(IDEMPOTENCY_CLOCK).toConstantValue(clock);
            const consumer = h.get(Consumer);
            let inFlightSeen = 0;
            const deliver = async (): Promise<number> => {
              // A broker redelivers until the consumer settles the copy.
              for (let attempt = 1; attempt <= 500; attempt++) {
                try {
                  await consumer.onMessage(msg('PAY-42', { amount: 1 }, attempt));
                  // Acknowledged: the effect must have committed by now (an in-flight copy is never a duplicate).
                  if (committed.length !== 1)
                    throw new Error('a copy was acknowledged before the effect committed');
                  return attempt;
                } catch (error) {
                  if ((error as Error).message.startsWith('a copy was acknowledged')) throw error;
                  if (error instanceof IdempotencyInFlightError) inFlightSeen++;
                  await sleep(1);
                }
              }
              throw new Error('a copy was never settled');
            };
            const settled = await Promise.all(Array.from({ length: copies }, deliver));
            expect(settled).toHaveLength(copies);
            expect(committed).toEqual(['PAY-42']);
            if (mode === 'lease') expect(effects).toEqual(['PAY-42']);
            const kinds = h.outcomes.map((o) => o.kind);
            expect(kinds.filter((k) => k === 'processed')).toHaveLength(1);
            expect(kinds.filter((k) => k === 'duplicate')).toHaveLength(copies - 1);
            expect(kinds.filter((k) => k === 'inFlight')).toHaveLength(inFlightSeen);
          },
        ),
        { numRuns: 40, seed: 20261126 },
      );
    });
  }
});
