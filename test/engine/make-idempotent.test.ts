import {
  type IdempotencyContext,
  IdempotencyInFlightError,
  type IdempotencyOutcome,
  MemoryIdempotencyStore,
  type MemoryTransaction,
  makeIdempotent,
  type PinoLike,
  pinoLogger,
} from '@idempotent-mq/core';
import { FakeClock, flush } from '@idempotent-mq/testing';
import { describe, expect, it } from 'vitest';
import { deferred, settle } from '../support/engine-harness.js';

interface Payment {
  readonly serial: string;
  readonly amount: number;
}

describe('makeIdempotent: the engine without a container', () => {
  it('charges a payment once however often it comes, in the store transaction, and returns the stored result', async () => {
    const ledger: string[] = [];
    const outcomes: IdempotencyOutcome[] = [];
    const charge = makeIdempotent(
      async function charge(p: Payment, ctx: IdempotencyContext<MemoryTransaction>) {
        ctx.trx.onCommit(() => ledger.push(p.serial));
        return { charged: p.amount };
      },
      {
        key: (p) => p.serial,
        store: new MemoryIdempotencyStore(),
        storeResult: true,
        onOutcome: (o) => outcomes.push(o),
      },
    );
    expect(await charge({ serial: 'PAY-1', amount: 5 })).toEqual({ charged: 5 });
    expect(await charge({ serial: 'PAY-1', amount: 5 })).toEqual({ charged: 5 });
    expect(ledger).toEqual(['PAY-1']);
    expect(outcomes.map((o) => [o.kind, o.tier, o.scope])).toEqual([
      ['processed', undefined, 'v1:charge.handle'],
      ['duplicate', 'cache', 'v1:charge.handle'],
    ]);
  });

  it('a copy in flight throws IdempotencyInFlightError, so the caller retries it later', async () => {
    const gate = deferred();
    const clock = new FakeClock();
    const slow = makeIdempotent(
      async (_p: Payment) => {
        await gate.promise;
      },
      {
        key: (p) => p.serial,
        store: new MemoryIdempotencyStore({ clock }),
        clock,
        scope: 'slow',
        mode: 'lease',
      },
    );
    const first = slow({ serial: 'PAY-2', amount: 1 });
    await flush();
    const second = await settle(slow({ serial: 'PAY-2', amount: 1 }));
    expect((second as { error: unknown }).error).toBeInstanceOf(IdempotencyInFlightError);
    gate.resolve();
    await first;
  });

  it('refuses bad options at once, naming them', () => {
    const store = new MemoryIdempotencyStore();
    const key = (p: Payment) => p.serial;
    expect(() => makeIdempotent(async (_p: Payment) => {}, { key, store })).toThrow(
      '"makeIdempotent(anonymous).scope": expected a scope',
    );
    expect(() =>
      makeIdempotent(async function f(_p: Payment) {}, { key, store: 'postgres://x' as never }),
    ).toThrow('"makeIdempotent(f).store": expected an IdempotencyStore');
    expect(() => makeIdempotent(async function f(_p: Payment) {}, { key, store, ttlMz: 5 } as never)).toThrow(
      'did you mean "ttlMs"?',
    );
  });
});

describe('pinoLogger', () => {
  it("hands the engine's context to pino as its merging object, with the message", () => {
    const lines: [string, Record<string, unknown>, string | undefined][] = [];
    const record =
      (level: string) =>
      (object: Record<string, unknown>, message?: string): void => {
        lines.push([level, object, message]);
      };
    const pino: PinoLike = {
      debug: record('debug'),
      info: record('info'),
      warn: record('warn'),
      error: record('error'),
    };
    const logger = pinoLogger(pino);
    logger.warn('lease lost', { key: 'PAY-1' });
    logger.debug('cache read failed');
    expect(lines).toEqual([
      ['warn', { lib: 'idempotent-mq', key: 'PAY-1' }, 'lease lost'],
      ['debug', { lib: 'idempotent-mq' }, 'cache read failed'],
    ]);
  });
});
