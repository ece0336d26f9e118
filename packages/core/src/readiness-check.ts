/**
 * Start-up readiness: the bound store's and cache's own checks, each bounded in time, and whether
 * anything may be consumed. A store that fails its check (or does not answer) stops consumption; a
 * cache only degrades it, since the engine works without a cache.
 */
import { IdempotencyError } from './errors.js';
import { integerOption, MAX_TIMER_MS } from './option-checks.js';
import type { IdempotencyCache } from './ports/idempotency-cache.js';
import type { IdempotencyStore } from './ports/idempotency-store.js';
import type { CheckedPort, ReadinessCheck } from './ports/readiness.js';
import { withTimeout } from './timeout.js';

export interface ReadinessOptions {
  /** The store the engine uses. */
  readonly store: IdempotencyStore;
  /** The cache in front of it, if any. */
  readonly cache?: IdempotencyCache;
  /** Some handler runs in transactional mode: the store must have transactions, and its primitives hold. */
  readonly transactional: boolean;
  /**
   * How long each port's check may take. A store that does not answer in time fails; a cache degrades.
   * @defaultValue 10 000
   */
  readonly timeoutMs?: number;
}

export interface Readiness {
  /** No check failed: messages may be consumed (degraded checks allow it). */
  readonly ready: boolean;
  /** Every check, the store's first, each name prefixed with its port (`store: reachable`). */
  readonly checks: readonly ReadinessCheck[];
}

const DEFAULT_TIMEOUT_MS = 10_000;

/** Runs the store's and the cache's checks at once; never throws for a failed check. */
export async function checkReadiness(options: ReadinessOptions): Promise<Readiness> {
  const timeoutMs = integerOption('checkReadiness', 'timeoutMs', options.timeoutMs, {
    min: 1,
    max: MAX_TIMER_MS,
    fallback: DEFAULT_TIMEOUT_MS,
  });
  const { store, cache, transactional } = options;
  const request = { transactional };
  const [storeChecks, cacheChecks] = await Promise.all([
    portChecks('store', store, request, timeoutMs),
    cache ? portChecks('cache', cache, request, timeoutMs) : Promise.resolve([]),
  ]);
  const checks = [...modeChecks(store, transactional), ...storeChecks, ...cacheChecks];
  return { ready: checks.every((check) => check.status !== 'failed'), checks };
}

/** A handler in transactional mode needs a store that lends it a transaction. */
function modeChecks(store: IdempotencyStore, transactional: boolean): ReadinessCheck[] {
  if (!transactional || typeof store.transaction === 'function') return [];
  return [
    {
      name: 'store: transactions',
      status: 'failed',
      detail: `a handler runs in transactional mode, but ${nameOf(store)} has no transactions.`,
      fix:
        "Give that handler mode: 'lease' (its effects then commit on their own, after the claim), or bind a " +
        'store with transactions (KnexIdempotencyStore, MemoryIdempotencyStore).',
    },
  ];
}

async function portChecks(
  port: 'store' | 'cache',
  adapter: CheckedPort,
  request: { readonly transactional: boolean },
  timeoutMs: number,
): Promise<ReadinessCheck[]> {
  // The engine works without a cache: nothing a cache reports stops consumption.
  const worst = port === 'store' ? 'failed' : 'degraded';
  const named = (check: ReadinessCheck): ReadinessCheck => ({
    ...check,
    name: `${port}: ${check.name}`,
    status: check.status === 'failed' ? worst : check.status,
  });
  if (typeof adapter.check !== 'function') {
    return [{ name: port, status: 'ok', detail: `no self-check (${nameOf(adapter)} has no check()).` }];
  }
  const fix =
    port === 'store'
      ? "Is the store's server reachable from here? Nothing is consumed until the store answers its check."
      : 'Is the cache reachable from here? Meanwhile every message goes to the store.';
  let answer: unknown;
  try {
    answer = await withTimeout(Promise.resolve(adapter.check(request)), timeoutMs, {
      error: () => new CheckTimedOut(),
    });
  } catch (error) {
    const detail =
      error instanceof CheckTimedOut
        ? `${nameOf(adapter)}.check() did not answer within ${timeoutMs} ms.`
        : `${nameOf(adapter)}.check() threw: ${describe(error)}.`;
    return [{ name: `${port}: check`, status: worst, detail, fix }];
  }
  if (!Array.isArray(answer)) {
    return [
      {
        name: `${port}: check`,
        status: worst,
        detail: `${nameOf(adapter)}.check() answered ${describe(answer)}, not a list of checks.`,
        fix: 'Fix the adapter: check() resolves to ReadinessCheck[].',
      },
    ];
  }
  if (answer.length === 0)
    return [{ name: port, status: 'ok', detail: `${nameOf(adapter)} reported nothing.` }];
  return (answer as ReadinessCheck[]).map(named);
}

/**
 * Nothing may be consumed: one or more checks failed. The message lists every failed check with its fix;
 * `checks` holds all of them, degraded and ok ones included.
 */
export class ReadinessError extends IdempotencyError {
  override readonly name = 'ReadinessError';
  constructor(readonly checks: readonly ReadinessCheck[]) {
    const failed = checks.filter((check) => check.status === 'failed');
    super(
      'NOT_READY',
      `Not ready to consume: ${failed.length} check${failed.length === 1 ? '' : 's'} failed.\n` +
        failed.map((check) => `  - ${formatCheck(check).replace(/\n/g, '\n    ')}`).join('\n'),
    );
  }

  /** The checks that failed. */
  get failed(): readonly ReadinessCheck[] {
    return this.checks.filter((check) => check.status === 'failed');
  }
}

/** One check as a log line: `store: reachable (failed): <detail>` and, when it has one, its fix. */
export function formatCheck(check: ReadinessCheck): string {
  const fix = check.fix ? `\nFix: ${check.fix}` : '';
  return `${check.name} (${check.status}): ${check.detail}${fix}`;
}

class CheckTimedOut extends Error {}

function nameOf(adapter: object): string {
  const name = (adapter as { constructor?: { name?: unknown } }).constructor?.name;
  return typeof name === 'string' && name !== '' && name !== 'Object' ? name : 'the adapter';
}

function describe(value: unknown): string {
  if (value instanceof Error) return value.message || value.name;
  if (value === undefined) return 'undefined';
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
