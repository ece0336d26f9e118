/**
 * The claim lifecycle written once, over three small primitives that an adapter implements with its
 * own atomic operations (an insert-if-absent, a conditional update, a read).
 */
import { InconsistentStateError, InvalidOptionError } from './errors.js';
import type {
  ClaimRequest,
  ClaimResult,
  CompleteRequest,
  IdempotencyRecord,
  IdempotencyStore,
  TokenRef,
} from './ports/idempotency-store.js';

export interface BaseIdempotencyStoreOptions {
  /**
   * How many times a claim that loses the insert, then finds the row gone (released meanwhile), tries
   * again before giving up with {@link InconsistentStateError}.
   * @defaultValue 3
   */
  maxClaimAttempts?: number;
}

export abstract class BaseIdempotencyStore<Tx = unknown> implements IdempotencyStore<Tx> {
  protected readonly maxClaimAttempts: number;

  constructor(options: BaseIdempotencyStoreOptions = {}) {
    const attempts = options.maxClaimAttempts ?? 3;
    if (!Number.isInteger(attempts) || attempts < 1 || attempts > 100) {
      throw new InvalidOptionError('maxClaimAttempts', 'an integer from 1 to 100', attempts);
    }
    this.maxClaimAttempts = attempts;
  }

  /** Inserts a new in-progress record unless any row holds the token; the inserted record, or undefined. */
  protected abstract insertIfAbsent(request: ClaimRequest, tx?: Tx): Promise<IdempotencyRecord | undefined>;

  /**
   * Replaces the row if, on the store's own clock, it is an in-progress claim whose lease has expired or a
   * completed record past its retention. Returns the new record and whether a claim was taken over.
   */
  protected abstract takeOverIfExpired(
    request: ClaimRequest,
    tx?: Tx,
  ): Promise<{ record: IdempotencyRecord; takeover: boolean } | undefined>;

  /** The row as stored, expired or not. */
  protected abstract find(token: TokenRef, tx?: Tx): Promise<IdempotencyRecord | undefined>;

  async claim(request: ClaimRequest, tx?: Tx): Promise<ClaimResult> {
    for (let attempt = 1; attempt <= this.maxClaimAttempts; attempt++) {
      const inserted = await this.insertIfAbsent(request, tx);
      if (inserted) return { status: 'claimed', record: inserted, takeover: false };
      const taken = await this.takeOverIfExpired(request, tx);
      if (taken) return { status: 'claimed', ...taken };
      const existing = await this.find(request.token, tx);
      if (existing) return { status: 'exists', record: existing };
      // The row went away between our insert and our read (a release): claim again.
    }
    throw new InconsistentStateError(request.token, this.maxClaimAttempts);
  }

  abstract renew(token: TokenRef, owner: string, leaseMs: number, tx?: Tx): Promise<boolean>;
  abstract complete(request: CompleteRequest, tx?: Tx): Promise<boolean>;
  abstract release(token: TokenRef, owner: string, tx?: Tx): Promise<boolean>;
  abstract get(token: TokenRef, tx?: Tx): Promise<IdempotencyRecord | undefined>;
  abstract getMany(tokens: readonly TokenRef[]): Promise<(IdempotencyRecord | undefined)[]>;
  abstract purgeExpired(options?: { readonly batchSize?: number }): Promise<number>;
}
