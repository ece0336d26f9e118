/**
 * An in-process store with the same contract as the SQL store: atomic claims, leases, fencing, and
 * transactions whose claim, business writes and completion commit or roll back together.
 */
import { BaseIdempotencyStore, type BaseIdempotencyStoreOptions } from '../base-idempotency-store.js';
import { SystemClock } from '../defaults/system-clock.js';
import { InvalidOptionError, LeaseLostError } from '../errors.js';
import { tokenId } from '../idempotency-key.js';
import type { Clock } from '../ports/clock.js';
import type {
  ClaimRequest,
  CompleteRequest,
  ForgetOptions,
  ForgetResult,
  IdempotencyRecord,
  PurgeOptions,
  RecordInspection,
  StatsOptions,
  StoreStats,
  TokenRef,
} from '../ports/idempotency-store.js';
import type { ReadinessCheck } from '../ports/readiness.js';
import { PurgePacer, purgePauseOption } from '../purge-pacing.js';

/**
 * The transaction a memory store hands to handlers as `ctx.trx`. Register your own in-memory effects'
 * commit and undo steps on it, so they commit or roll back with the token.
 */
export class MemoryTransaction {
  // Made on first use: most transactions stage one completion and register nothing else.
  private undo: (() => void)[] | undefined;
  private staged: (() => void)[] | undefined;
  private commitHooks: (() => void)[] | undefined;
  private rollbackHooks: (() => void)[] | undefined;
  private state: 'open' | 'committed' | 'rolledBack' = 'open';

  /** Runs `fn` when the transaction commits. */
  onCommit(fn: () => void): void {
    this.assertOpen();
    this.commitHooks = appended(this.commitHooks, fn);
  }

  /** Runs `fn` when the transaction rolls back (undo your effect here). */
  onRollback(fn: () => void): void {
    this.assertOpen();
    this.rollbackHooks = appended(this.rollbackHooks, fn);
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  /** @internal */
  recordUndo(fn: () => void): void {
    this.undo = appended(this.undo, fn);
  }

  /** @internal */
  stage(fn: () => void): void {
    this.staged = appended(this.staged, fn);
  }

  /** @internal Applies the staged writes; a staged write that throws rolls everything back. */
  commit(): void {
    this.assertOpen();
    try {
      for (const apply of this.staged ?? []) apply();
    } catch (error) {
      this.rollback();
      throw error;
    }
    this.state = 'committed';
    for (const hook of this.commitHooks ?? []) hook();
  }

  /** @internal */
  rollback(): void {
    if (this.state !== 'open') return;
    this.state = 'rolledBack';
    for (const fn of (this.undo ?? []).reverse()) fn();
    for (const hook of (this.rollbackHooks ?? []).reverse()) hook();
  }

  private assertOpen(): void {
    if (this.state !== 'open') throw new Error(`the transaction is already ${this.state}`);
  }
}

/** `list` with `item` at its end; a new list when there is none yet. */
function appended<T>(list: T[] | undefined, item: T): T[] {
  if (!list) return [item];
  list.push(item);
  return list;
}

export interface MemoryIdempotencyStoreOptions extends BaseIdempotencyStoreOptions {
  /** The store's clock: leases and retention are compared against it. @defaultValue the system clock */
  clock?: Clock;
  /**
   * The most records kept. Past it the oldest completed records are forgotten (never a claim in
   * progress), so a process's memory stays bounded; a forgotten token would run again. Size it above the
   * tokens one ttl sees, or use a durable store.
   * @defaultValue 1 000 000
   */
  maxRecords?: number;
}

type MutableRecord = { -readonly [K in keyof IdempotencyRecord]: IdempotencyRecord[K] };

/**
 * The store in this process's memory, with the SQL store's contract (atomic claims, leases, fencing,
 * transactions whose claim and completion commit or roll back together): for tests, the demo and
 * single-process tools. Its records die with the process, and no other process sees them; bounded by
 * `maxRecords` (the oldest completed records are forgotten first, never a claim).
 */
export class MemoryIdempotencyStore extends BaseIdempotencyStore<MemoryTransaction> {
  private readonly records = new Map<string, MutableRecord>();
  /**
   * Ids in the order their records completed, oldest first from `evictFrom`: eviction takes from the
   * front in O(1). Scanning `records` from its start instead costs O(n) per eviction once deletions have
   * left holes at the front of the Map.
   */
  private completedOrder: string[] = [];
  private evictFrom = 0;
  private readonly clock: Clock;
  private readonly maxRecords: number;

  constructor(options: MemoryIdempotencyStoreOptions = {}) {
    super(options);
    this.clock = options.clock ?? new SystemClock();
    const max = options.maxRecords ?? 1_000_000;
    if (!Number.isInteger(max) || max < 1)
      throw new InvalidOptionError('maxRecords', 'a positive integer', max);
    this.maxRecords = max;
  }

  /** How many records are held (completed and in progress, expired ones not yet purged included). */
  get size(): number {
    return this.records.size;
  }

  /** In-process: nothing to reach, no schema to migrate, transactions of its own. Always ready. */
  async check(): Promise<readonly ReadinessCheck[]> {
    return [
      {
        name: 'memory store',
        status: 'ok',
        detail:
          'in-process: nothing to reach or migrate; its records live as long as this process, and no other ' +
          'process sees them.',
      },
    ];
  }

  async transaction<T>(work: (tx: MemoryTransaction) => Promise<T>): Promise<T> {
    const tx = new MemoryTransaction();
    let result: T;
    try {
      result = await work(tx);
    } catch (error) {
      tx.rollback();
      throw error;
    }
    tx.commit();
    return result;
  }

  protected async insertIfAbsent(
    request: ClaimRequest,
    tx?: MemoryTransaction,
  ): Promise<IdempotencyRecord | undefined> {
    const id = tokenId(request.token);
    if (this.records.has(id)) return undefined;
    const record = this.newClaim(request, 1);
    this.records.set(id, record);
    if (this.records.size > this.maxRecords) this.evictOldestCompleted();
    tx?.recordUndo(() => {
      if (this.records.get(id) === record) this.records.delete(id);
    });
    return { ...record };
  }

  protected async takeOverIfExpired(
    request: ClaimRequest,
    tx?: MemoryTransaction,
  ): Promise<{ record: IdempotencyRecord; takeover: boolean } | undefined> {
    const id = tokenId(request.token);
    const previous = this.records.get(id);
    if (!previous || !this.isExpired(previous)) return undefined;
    const record = this.newClaim(request, previous.status === 'inProgress' ? previous.fence + 1 : 1);
    this.records.set(id, record);
    tx?.recordUndo(() => {
      if (this.records.get(id) === record) this.records.set(id, previous);
    });
    return { record: { ...record }, takeover: previous.status === 'inProgress' };
  }

  protected async find(token: TokenRef): Promise<IdempotencyRecord | undefined> {
    const record = this.records.get(tokenId(token));
    return record ? { ...record } : undefined;
  }

  async renew(token: TokenRef, owner: string, leaseMs: number): Promise<boolean> {
    const record = this.held(token, owner);
    if (!record) return false;
    record.leaseExpiresAt = this.clock.now() + leaseMs;
    return true;
  }

  async complete(request: CompleteRequest, tx?: MemoryTransaction): Promise<boolean> {
    const id = tokenId(request.token);
    if (!this.heldById(id, request.owner)) return false;
    // Others keep seeing the claim in progress until the transaction commits.
    if (tx) tx.stage(() => this.applyCompletion(id, request));
    else this.applyCompletion(id, request);
    return true;
  }

  private applyCompletion(id: string, request: CompleteRequest): void {
    const record = this.heldById(id, request.owner);
    if (!record) throw new LeaseLostError(request.token, request.owner);
    const now = this.clock.now();
    record.status = 'completed';
    record.leaseExpiresAt = undefined;
    record.result = request.result;
    record.completedAt = now;
    record.expiresAt = now + request.ttlMs;
    this.noteCompleted(id);
  }

  async release(token: TokenRef, owner: string): Promise<boolean> {
    if (!this.held(token, owner)) return false;
    this.records.delete(tokenId(token));
    return true;
  }

  async get(token: TokenRef): Promise<IdempotencyRecord | undefined> {
    const record = this.records.get(tokenId(token));
    return record && !(record.status === 'completed' && this.isExpired(record)) ? { ...record } : undefined;
  }

  async getMany(tokens: readonly TokenRef[]): Promise<(IdempotencyRecord | undefined)[]> {
    return Promise.all(tokens.map((token) => this.get(token)));
  }

  async purgeExpired(options: PurgeOptions = {}): Promise<number> {
    const batchSize = options.batchSize ?? 1000;
    const pacer = new PurgePacer(purgePauseOption('pause', options.pause ?? 0));
    let purged = 0;
    let batch: string[];
    do {
      await pacer.next();
      batch = [];
      for (const [id, record] of this.records) {
        if (record.status === 'completed' && this.isExpired(record)) batch.push(id);
        if (batch.length >= batchSize) break;
      }
      for (const id of batch) this.records.delete(id);
      purged += batch.length;
      // Yield between batches, as a SQL store releases its locks between them.
      await Promise.resolve();
    } while (batch.length === batchSize);
    return purged;
  }

  /** The record as stored, expired or not, with the store's clock. */
  async inspect(token: TokenRef): Promise<RecordInspection> {
    const record = this.records.get(tokenId(token));
    return { record: record && { ...record }, now: this.clock.now(), location: 'memory' };
  }

  /** Deletes the record unless it is a live claim (or `force`); see {@link IdempotencyStore.forget}. */
  async forget(token: TokenRef, options: ForgetOptions = {}): Promise<ForgetResult> {
    const id = tokenId(token);
    const record = this.records.get(id);
    if (!record) return { outcome: 'absent' };
    const snapshot = { ...record };
    if (record.status === 'inProgress' && !this.isExpired(record) && !options.force) {
      return { outcome: 'refused', reason: 'liveClaim', record: snapshot };
    }
    if (!options.dryRun) this.records.delete(id);
    return { outcome: 'forgotten', record: snapshot };
  }

  /** Counts the records (of a scope) on the store's clock; see {@link StoreStats}. */
  async stats(options: StatsOptions = {}): Promise<StoreStats> {
    const now = this.clock.now();
    const within = options.expiringWithinMs ?? 86_400_000;
    const stats = { inProgress: 0, completed: 0, lapsedClaims: 0, expired: 0, expiringSoon: 0 };
    let oldest: MutableRecord | undefined;
    let oldestInProgress: MutableRecord | undefined;
    for (const record of this.records.values()) {
      if (options.scope !== undefined && record.scope !== options.scope) continue;
      if (!oldest || record.createdAt < oldest.createdAt) oldest = record;
      if (record.status === 'inProgress') {
        stats.inProgress++;
        if (this.isExpired(record)) stats.lapsedClaims++;
        if (!oldestInProgress || record.createdAt < oldestInProgress.createdAt) oldestInProgress = record;
      } else {
        stats.completed++;
        if (this.isExpired(record)) stats.expired++;
        else if (record.expiresAt !== undefined && record.expiresAt <= now + within) stats.expiringSoon++;
      }
    }
    return {
      now,
      ...(options.scope === undefined ? {} : { scope: options.scope }),
      ...stats,
      expiringWithinMs: within,
      oldest: oldest && { ...oldest },
      oldestInProgress: oldestInProgress && { ...oldestInProgress },
    };
  }

  /**
   * Appends to `completedOrder`; rebuilds it from its live ids once it has grown past twice the records
   * (ids consumed by eviction, or stale after purges, releases and takeovers), so it stays O(records).
   */
  private noteCompleted(id: string): void {
    this.completedOrder.push(id);
    if (this.completedOrder.length <= 2 * this.records.size + 1024) return;
    const live = new Set<string>();
    for (let i = this.evictFrom; i < this.completedOrder.length; i++) {
      const candidate = this.completedOrder[i] as string;
      if (this.records.get(candidate)?.status === 'completed') live.add(candidate);
    }
    this.completedOrder = [...live];
    this.evictFrom = 0;
  }

  /**
   * Forgets the oldest completed record. An id in `completedOrder` whose record has since been released,
   * purged or taken over (no longer completed) is skipped.
   */
  private evictOldestCompleted(): void {
    const order = this.completedOrder;
    while (this.evictFrom < order.length) {
      const id = order[this.evictFrom++] as string;
      if (this.records.get(id)?.status === 'completed') {
        this.records.delete(id);
        return;
      }
    }
  }

  private newClaim(request: ClaimRequest, fence: number): MutableRecord {
    const now = this.clock.now();
    // Every field from the start, the later ones undefined: one shape for every record, whatever its state.
    return {
      scope: request.token.scope,
      key: request.token.key,
      status: 'inProgress',
      owner: request.owner,
      fence,
      leaseExpiresAt: now + request.leaseMs,
      fingerprint: request.fingerprint,
      result: undefined,
      createdAt: now,
      completedAt: undefined,
      expiresAt: undefined,
    };
  }

  /** The record, if `owner` holds a claim on it that is still in progress. */
  private held(token: TokenRef, owner: string): MutableRecord | undefined {
    return this.heldById(tokenId(token), owner);
  }

  private heldById(id: string, owner: string): MutableRecord | undefined {
    const record = this.records.get(id);
    return record && record.status === 'inProgress' && record.owner === owner ? record : undefined;
  }

  private isExpired(record: IdempotencyRecord): boolean {
    const now = this.clock.now();
    return record.status === 'inProgress'
      ? (record.leaseExpiresAt ?? 0) <= now
      : record.expiresAt !== undefined && record.expiresAt <= now;
  }
}
