/**
 * The claim lifecycle written once, as Powertools' `BasePersistenceLayer` writes its own: an adapter
 * implements three small primitives with its own atomic operations (an insert-if-absent, a conditional
 * update, a read) and may hook into the path where its server offers more.
 */
import { InconsistentStateError, type StoreStep, UnstorableTokenError } from './errors.js';
import { integerOption } from './option-checks.js';
import type {
  ClaimRequest,
  ClaimResult,
  CompleteRequest,
  IdempotencyRecord,
  IdempotencyStore,
  PurgeOptions,
  TokenRef,
} from './ports/idempotency-store.js';

/** The options {@link BaseIdempotencyStore} reads; an adapter's own options extend them. */
export interface BaseIdempotencyStoreOptions {
  /**
   * How many times a claim that loses the insert, then finds the row gone (released meanwhile), tries
   * again before giving up with {@link InconsistentStateError}.
   * @defaultValue 3
   */
  maxClaimAttempts?: number;
}

/**
 * A store's claim, written once. {@link BaseIdempotencyStore.claim} runs, in this order:
 *
 * 1. {@link BaseIdempotencyStore.unstorable}: a token, owner or fingerprint the store cannot hold is
 *    refused with `UnstorableTokenError` (poison: the message is dead-lettered, never retried);
 * 2. {@link BaseIdempotencyStore.claimFirst}: the adapter's fast path, when it has one (the SQL store
 *    takes the token's lock and inserts in one statement), which may answer the claim outright;
 * 3. the loop: {@link BaseIdempotencyStore.insertIfAbsent} → claimed; else
 *    {@link BaseIdempotencyStore.takeOverIfExpired} → claimed (a takeover, fenced); else
 *    {@link BaseIdempotencyStore.find} → exists; a row gone meanwhile (released) → again, at most
 *    `maxClaimAttempts` times.
 *
 * All of it inside {@link BaseIdempotencyStore.guard}, where an adapter turns its driver's errors into
 * the engine's (`StoreUnavailableError` for an outage, and so on). The other steps of the port (renew,
 * complete, release, reads, purge) are the adapter's own: each is one conditional statement.
 *
 * The memory and SQL stores extend it. The Redis store does not: its claim is one server-side script,
 * where these three primitives would be three round trips and the atomicity the script already has.
 */
export abstract class BaseIdempotencyStore<Tx = unknown> implements IdempotencyStore<Tx> {
  protected readonly maxClaimAttempts: number;

  constructor(options: BaseIdempotencyStoreOptions = {}) {
    this.maxClaimAttempts = integerOption('', 'maxClaimAttempts', options.maxClaimAttempts, {
      min: 1,
      max: 100,
      fallback: 3,
    });
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

  /**
   * Why this store cannot hold the claim's token, owner or fingerprint (too long for its columns, text
   * its driver would alter), or undefined. The reason is shown to people: say the limit and the fix.
   * @defaultValue none is refused
   */
  protected unstorable(_request: ClaimRequest): string | undefined {
    return undefined;
  }

  /**
   * The adapter's own way in, before the loop: an answer to the claim, or undefined to go on to the
   * loop (which then runs inside the same `guard`). Return undefined synchronously to cost nothing.
   * @defaultValue none: straight to the loop
   */
  protected claimFirst(_request: ClaimRequest, _tx?: Tx): Promise<ClaimResult | undefined> | undefined {
    return undefined;
  }

  /**
   * Runs one step of the store: where an adapter turns its driver's errors into the engine's. `token` is
   * undefined for steps that touch many (reads of a batch, purge).
   * @defaultValue runs `work` as it is
   */
  protected guard<T>(_step: StoreStep, _token: TokenRef | undefined, work: () => Promise<T>): Promise<T> {
    return work();
  }

  /** Claims the token, in the order the class comment gives. */
  claim(request: ClaimRequest, tx?: Tx): Promise<ClaimResult> {
    const problem = this.unstorable(request);
    if (problem !== undefined) return Promise.reject(new UnstorableTokenError(request.token, problem));
    return this.guard('claim', request.token, async () => {
      const first = this.claimFirst(request, tx);
      if (first) {
        const answer = await first;
        if (answer) return answer;
      }
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
    });
  }

  abstract renew(token: TokenRef, owner: string, leaseMs: number, tx?: Tx): Promise<boolean>;
  abstract complete(request: CompleteRequest, tx?: Tx): Promise<boolean>;
  abstract release(token: TokenRef, owner: string, tx?: Tx): Promise<boolean>;
  abstract get(token: TokenRef, tx?: Tx): Promise<IdempotencyRecord | undefined>;
  abstract getMany(tokens: readonly TokenRef[]): Promise<(IdempotencyRecord | undefined)[]>;
  abstract purgeExpired(options?: PurgeOptions): Promise<number>;
}
