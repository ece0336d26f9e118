/**
 * checkReadiness runs the store's and cache's own checks, each bounded: a store that fails (or hangs)
 * stops consumption, a cache only degrades it; a port without check() gets one ok line; a transactional
 * handler on a store without transactions is refused; ReadinessError lists every failure with its fix.
 */
import { describe, expect, it } from 'vitest';
import { IdempotencyError, InvalidOptionError } from '../src/errors.js';
import { MemoryIdempotencyCache } from '../src/memory/memory-idempotency-cache.js';
import { MemoryIdempotencyStore } from '../src/memory/memory-idempotency-store.js';
import { NoIdempotencyCache } from '../src/memory/no-idempotency-cache.js';
import type { IdempotencyCache } from '../src/ports/idempotency-cache.js';
import type { IdempotencyStore } from '../src/ports/idempotency-store.js';
import type { ReadinessCheck } from '../src/ports/readiness.js';
import { checkReadiness, formatCheck, ReadinessError } from '../src/readiness-check.js';

/** A store or cache whose check() answers `answer` (or never, or throws); the rest of the port is unused here. */
function port<T>(check?: () => Promise<readonly ReadinessCheck[]>, withTransactions = true): T {
  class FakePort {
    readonly check = check;
    readonly transaction = withTransactions ? async () => undefined : undefined;
  }
  return new FakePort() as unknown as T;
}
const never = () => new Promise<readonly ReadinessCheck[]>(() => {});
const answering =
  (...checks: ReadinessCheck[]) =>
  async () =>
    checks;
const TABLE_MISSING: ReadinessCheck = {
  name: 'table "idempotency_tokens"',
  status: 'failed',
  detail: 'does not exist.',
  fix: "Add idempotencyMigration({ tableName: 'idempotency_tokens' }) to your migrations.",
};

describe('checkReadiness', () => {
  it('the memory adapters are always ready', async () => {
    const readiness = await checkReadiness({
      store: new MemoryIdempotencyStore(),
      cache: new MemoryIdempotencyCache(),
      transactional: true,
    });
    expect(readiness.ready).toBe(true);
    expect(readiness.checks.map((c) => [c.name, c.status])).toEqual([
      ['store: memory store', 'ok'],
      ['cache: memory cache', 'ok'],
    ]);
    const none = await checkReadiness({
      store: new MemoryIdempotencyStore(),
      cache: new NoIdempotencyCache(),
      transactional: false,
    });
    expect(none.checks.map((c) => c.name)).toEqual(['store: memory store', 'cache: no cache']);
  });

  it('a port without check() gets one ok line, "no self-check"', async () => {
    const readiness = await checkReadiness({
      store: port<IdempotencyStore>(),
      cache: port<IdempotencyCache>(),
      transactional: false,
    });
    expect(readiness).toEqual({
      ready: true,
      checks: [
        { name: 'store', status: 'ok', detail: 'no self-check (FakePort has no check()).' },
        { name: 'cache', status: 'ok', detail: 'no self-check (FakePort has no check()).' },
      ],
    });
  });

  it('a store that hangs is failed after timeoutMs; a cache that hangs is only degraded', async () => {
    const started = performance.now();
    const readiness = await checkReadiness({
      store: port<IdempotencyStore>(never),
      cache: port<IdempotencyCache>(never),
      transactional: false,
      timeoutMs: 50,
    });
    // Both bounded at once, not one after the other.
    expect(performance.now() - started).toBeLessThan(500);
    expect(readiness.ready).toBe(false);
    expect(readiness.checks).toEqual([
      {
        name: 'store: check',
        status: 'failed',
        detail: 'FakePort.check() did not answer within 50 ms.',
        fix: expect.stringMatching(/Nothing is consumed until the store answers/),
      },
      {
        name: 'cache: check',
        status: 'degraded',
        detail: 'FakePort.check() did not answer within 50 ms.',
        fix: expect.stringMatching(/every message goes to the store/),
      },
    ]);
    const cacheOnly = await checkReadiness({
      store: new MemoryIdempotencyStore(),
      cache: port<IdempotencyCache>(never),
      transactional: false,
      timeoutMs: 50,
    });
    expect(cacheOnly.ready).toBe(true);
  });

  it("a store's failed check stops consumption; a cache's failed one is degraded, never failed", async () => {
    const readiness = await checkReadiness({
      store: port<IdempotencyStore>(
        answering({ name: 'reachable', status: 'ok', detail: 'PostgreSQL 15.' }, TABLE_MISSING),
      ),
      cache: port<IdempotencyCache>(
        answering({ name: 'reachable', status: 'failed', detail: 'ECONNREFUSED.', fix: 'Start Redis.' }),
      ),
      transactional: false,
    });
    expect(readiness.ready).toBe(false);
    expect(readiness.checks.map((c) => [c.name, c.status])).toEqual([
      ['store: reachable', 'ok'],
      ['store: table "idempotency_tokens"', 'failed'],
      ['cache: reachable', 'degraded'],
    ]);
  });

  it('a check that throws, or answers something else, is reported as a failed check of that port', async () => {
    const readiness = await checkReadiness({
      store: port<IdempotencyStore>(async () => {
        throw new Error('boom');
      }),
      cache: port<IdempotencyCache>(async () => 'fine' as unknown as ReadinessCheck[]),
      transactional: false,
    });
    expect(readiness.checks).toMatchObject([
      { name: 'store: check', status: 'failed', detail: 'FakePort.check() threw: boom.' },
      {
        name: 'cache: check',
        status: 'degraded',
        detail: 'FakePort.check() answered "fine", not a list of checks.',
      },
    ]);
  });

  it('a transactional handler on a store without transactions is refused, naming the fix', async () => {
    const readiness = await checkReadiness({
      store: port<IdempotencyStore>(undefined, false),
      transactional: true,
    });
    expect(readiness.ready).toBe(false);
    expect(readiness.checks[0]).toMatchObject({
      name: 'store: transactions',
      status: 'failed',
      detail: 'a handler runs in transactional mode, but FakePort has no transactions.',
      fix: expect.stringMatching(/mode: 'lease'/),
    });
    const lease = await checkReadiness({
      store: port<IdempotencyStore>(undefined, false),
      transactional: false,
    });
    expect(lease.ready).toBe(true);
  });

  it('the request reaches the ports as given', async () => {
    const asked: unknown[] = [];
    const store = port<IdempotencyStore>();
    (store as { check: unknown }).check = async (request: unknown) => {
      asked.push(request);
      return [];
    };
    const readiness = await checkReadiness({ store, transactional: true });
    expect(asked).toEqual([{ transactional: true }]);
    expect(readiness.checks).toEqual([{ name: 'store', status: 'ok', detail: 'FakePort reported nothing.' }]);
  });

  it('an invalid timeoutMs fails with its name and range', async () => {
    await expect(
      checkReadiness({ store: new MemoryIdempotencyStore(), transactional: false, timeoutMs: 0 }),
    ).rejects.toThrow(InvalidOptionError);
    await expect(
      checkReadiness({ store: new MemoryIdempotencyStore(), transactional: false, timeoutMs: Number.NaN }),
    ).rejects.toThrow(
      /Invalid option "checkReadiness.timeoutMs": expected an integer from 1 to 2147483647, got NaN/,
    );
  });
});

describe('ReadinessError', () => {
  it('lists every failed check with its fix, and nothing that did not fail', async () => {
    const readiness = await checkReadiness({
      store: port<IdempotencyStore>(
        answering(
          { name: 'reachable', status: 'ok', detail: 'PostgreSQL 15.' },
          TABLE_MISSING,
          {
            name: 'in-flight answer',
            status: 'failed',
            detail: 'advisory locks are stubs.',
            fix: 'Use lease mode.',
          },
          { name: 'idle transaction limit', status: 'degraded', detail: 'refused.', fix: 'Accept it.' },
        ),
        false,
      ),
      transactional: true,
    });
    const error = new ReadinessError(readiness.checks);
    expect(error).toBeInstanceOf(IdempotencyError);
    expect(error.code).toBe('NOT_READY');
    expect(error.failed.map((c) => c.name)).toEqual([
      'store: transactions',
      'store: table "idempotency_tokens"',
      'store: in-flight answer',
    ]);
    expect(error.message).toBe(
      [
        'Not ready to consume: 3 checks failed.',
        `  - ${formatCheck(readiness.checks[0] as ReadinessCheck).replace('\n', '\n    ')}`,
        '  - store: table "idempotency_tokens" (failed): does not exist.',
        "    Fix: Add idempotencyMigration({ tableName: 'idempotency_tokens' }) to your migrations.",
        '  - store: in-flight answer (failed): advisory locks are stubs.',
        '    Fix: Use lease mode.',
      ].join('\n'),
    );
    expect(error.message).not.toContain('idle transaction limit');
  });
});
