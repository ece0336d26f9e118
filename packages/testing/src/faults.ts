/**
 * Fault injection around any real store or cache: make a chosen call fail, hang, or run something in
 * between, to test what the engine does when a part breaks. The wrapped adapter does the real work.
 */
import type {
  CachedCompletion,
  ClaimRequest,
  ClaimResult,
  CompleteRequest,
  IdempotencyCache,
  IdempotencyRecord,
  IdempotencyStore,
  PurgeOptions,
  TokenRef,
} from '@idempotent-mq/core/adapter';

/** What a faulty call does instead of (or before) the real one. */
export type Fault =
  /** Throws this error; the real call is not made. */
  | { readonly fail: unknown }
  /** Never settles. */
  | { readonly hang: true }
  /** Makes the real call, then throws (the work happened; the answer was lost). */
  | { readonly failAfter: unknown };

type StoreMethod = 'claim' | 'renew' | 'complete' | 'release' | 'get' | 'getMany' | 'transaction' | 'commit';
type CacheMethod = 'get' | 'getMany' | 'set' | 'delete';

class Faults<M extends string> {
  private readonly faults = new Map<M, { fault: Fault; times: number }>();
  readonly calls = new Map<M, number>();

  /** Injects `fault` on the next `times` calls of `method` (every call when omitted). */
  inject(method: M, fault: Fault, times = Number.POSITIVE_INFINITY): void {
    this.faults.set(method, { fault, times });
  }

  clear(method?: M): void {
    if (method) this.faults.delete(method);
    else this.faults.clear();
  }

  async run<T>(method: M, real: () => Promise<T>): Promise<T> {
    this.calls.set(method, (this.calls.get(method) ?? 0) + 1);
    const entry = this.faults.get(method);
    if (!entry || entry.times <= 0) return real();
    entry.times--;
    const { fault } = entry;
    if ('hang' in fault) return new Promise<T>(() => {});
    if ('fail' in fault) throw fault.fail;
    await real();
    throw fault.failAfter;
  }
}

/** A store that forwards to `inner`, with faults on demand. */
export class FaultyStore<Tx = unknown> implements IdempotencyStore<Tx> {
  readonly faults = new Faults<StoreMethod>();
  readonly transaction?: <T>(work: (tx: Tx) => Promise<T>) => Promise<T>;

  constructor(readonly inner: IdempotencyStore<Tx>) {
    const begin = inner.transaction?.bind(inner);
    if (begin) {
      this.transaction = <T>(work: (tx: Tx) => Promise<T>) =>
        this.faults.run('transaction', () =>
          // 'commit' faults fire after the work, inside the transaction, so it rolls back.
          begin(async (tx) => {
            const result = await work(tx);
            await this.faults.run('commit', async () => undefined);
            return result;
          }),
        );
    }
  }

  claim(request: ClaimRequest, tx?: Tx): Promise<ClaimResult> {
    return this.faults.run('claim', () => this.inner.claim(request, tx));
  }
  renew(token: TokenRef, owner: string, leaseMs: number, tx?: Tx): Promise<boolean> {
    return this.faults.run('renew', () => this.inner.renew(token, owner, leaseMs, tx));
  }
  complete(request: CompleteRequest, tx?: Tx): Promise<boolean> {
    return this.faults.run('complete', () => this.inner.complete(request, tx));
  }
  release(token: TokenRef, owner: string, tx?: Tx): Promise<boolean> {
    return this.faults.run('release', () => this.inner.release(token, owner, tx));
  }
  get(token: TokenRef, tx?: Tx): Promise<IdempotencyRecord | undefined> {
    return this.faults.run('get', () => this.inner.get(token, tx));
  }
  getMany(tokens: readonly TokenRef[]): Promise<(IdempotencyRecord | undefined)[]> {
    return this.faults.run('getMany', () => this.inner.getMany(tokens));
  }
  purgeExpired(options?: PurgeOptions): Promise<number> {
    return this.inner.purgeExpired(options);
  }

  isTransient(error: unknown): boolean {
    return this.inner.isTransient?.(error) ?? false;
  }
}

/** A cache that forwards to `inner`, with faults on demand. */
export class FaultyCache implements IdempotencyCache {
  readonly faults = new Faults<CacheMethod>();

  constructor(readonly inner: IdempotencyCache) {}

  get(token: TokenRef): Promise<CachedCompletion | undefined> {
    return this.faults.run('get', () => this.inner.get(token));
  }
  getMany(tokens: readonly TokenRef[]): Promise<(CachedCompletion | undefined)[]> {
    return this.faults.run('getMany', () => this.inner.getMany(tokens));
  }
  set(token: TokenRef, value: CachedCompletion, ttlMs: number): Promise<void> {
    return this.faults.run('set', () => this.inner.set(token, value, ttlMs));
  }
  delete(token: TokenRef): Promise<void> {
    return this.faults.run('delete', () => this.inner.delete(token));
  }
}
