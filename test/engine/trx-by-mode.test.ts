/**
 * `ctx.trx` typed by mode: a lease-mode handler that declares a transaction, or a transactional one that
 * declares none, does not compile (the `@ts-expect-error` lines fail `tsc` in `pnpm test` the day the
 * check stops catching them); at run time `trx` is what the types say.
 */
import {
  type IdempotencyContext,
  Idempotent,
  MemoryIdempotencyStore,
  type MemoryTransaction,
  makeIdempotent,
} from '@idempotent-mq/core';
import { injectable } from 'inversify';
import { describe, expect, it } from 'vitest';
import { harness, type Message, msg } from '../support/engine-harness.js';

@injectable()
class ByMode {
  seen: Record<string, unknown> = {};

  @Idempotent({ key: (m: Message) => m.keys, mode: 'lease', scope: 'lease' })
  async lease(m: Message, ctx: IdempotencyContext<undefined>) {
    this.seen.lease = ctx.trx;
    return m.keys[0];
  }

  @Idempotent({ key: (m: Message) => m.keys, mode: 'transactional', scope: 'tx' })
  async transactional(_m: Message, ctx: IdempotencyContext<MemoryTransaction>) {
    this.seen.transactional = ctx.trx;
  }

  // The plain `IdempotencyContext` (trx: unknown) and no ctx at all fit every mode.
  @Idempotent({ key: (m: Message) => m.keys, mode: 'lease', scope: 'plain' })
  async plain(_m: Message, ctx: IdempotencyContext) {
    this.seen.plain = ctx.trx;
  }

  @Idempotent({ key: (m: Message) => m.keys, mode: 'transactional', scope: 'none' })
  async noContext(_m: Message) {}

  // With 'auto' (the default) the mode depends on the store bound: any context type is accepted.
  @Idempotent({ key: (m: Message) => m.keys, scope: 'auto' })
  async auto(_m: Message, ctx: IdempotencyContext<MemoryTransaction>) {
    this.seen.auto = ctx.trx;
  }
}

@injectable()
class Mistyped {
  // @ts-expect-error lease mode has no transaction: ctx.trx is undefined
  @Idempotent({ key: (m: Message) => m.keys, mode: 'lease' })
  async lease(_m: Message, _ctx: IdempotencyContext<MemoryTransaction>) {}

  // @ts-expect-error transactional mode always hands over a transaction
  @Idempotent({ key: (m: Message) => m.keys, mode: 'transactional' })
  async transactional(_m: Message, _ctx: IdempotencyContext<undefined>) {}
}

describe('ctx.trx by mode', () => {
  it('is undefined in lease mode and the store transaction in transactional mode, as typed', async () => {
    const h = harness();
    const c = h.get(ByMode);
    await c.lease(msg('A'));
    await c.transactional(msg('B'));
    await c.plain(msg('C'));
    await c.auto(msg('D'));
    expect(c.seen.lease).toBeUndefined();
    expect(c.seen.plain).toBeUndefined();
    expect(c.seen.transactional).toBeDefined();
    expect(typeof (c.seen.transactional as MemoryTransaction).onCommit).toBe('function');
    // auto over a store with transactions is transactional.
    expect(c.seen.auto).toBeDefined();
    expect(Mistyped).toBeTypeOf('function');
  });

  it('makeIdempotent types ctx.trx by mode too', async () => {
    const store = new MemoryIdempotencyStore();
    const seen: unknown[] = [];
    const lease = makeIdempotent(
      async (_p: { id: string }, ctx: IdempotencyContext<undefined>) => {
        seen.push(ctx.trx);
      },
      { key: (p) => p.id, store, mode: 'lease', scope: 'mk-lease' },
    );
    const tx = makeIdempotent(
      async (_p: { id: string }, ctx) => {
        // inferred from the store: a MemoryTransaction, never undefined
        ctx.trx.onCommit(() => seen.push('committed'));
      },
      { key: (p) => p.id, store, mode: 'transactional', scope: 'mk-tx' },
    );
    makeIdempotent(
      // @ts-expect-error lease mode: a context with a transaction does not fit
      async (_p: { id: string }, _ctx: IdempotencyContext<MemoryTransaction>) => {},
      { key: (p: { id: string }) => p.id, store, mode: 'lease', scope: 'mk-bad' },
    );
    await lease({ id: '1' });
    await tx({ id: '2' });
    expect(seen).toEqual([undefined, 'committed']);
  });
});
