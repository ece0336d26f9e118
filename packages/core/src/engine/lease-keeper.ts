/**
 * The lease keep-alive of one claim: renews it every `keepAliveMs` while the handler runs, so that a
 * slow but live handler is not taken over; a dead process stops renewing, and its lease runs out.
 */
import type { ResolvedPolicy } from '../options.js';
import type { IdempotencyStore, TokenRef } from '../ports/idempotency-store.js';
import type { IdempotencyLogger } from '../ports/logger.js';
import type { Deadline, Deadlines } from './deadlines.js';

/**
 * Keeps one claim's lease alive while its handler runs, like bullmq's `LockManager`: renews it every
 * `keepAliveMs` (a third of the lease by default), stops at {@link LeaseKeeper.stop} or after a renewal
 * the store refuses (the claim was taken over: this owner is fenced). Made by the engine per claim.
 */
export class LeaseKeeper {
  #next: Deadline | undefined;
  #stopped = false;

  constructor(
    private readonly deps: {
      readonly store: IdempotencyStore;
      readonly logger: IdempotencyLogger;
    },
    /** The engine's shared timers: a renewal is one entry there, not a timer of its own. */
    private readonly deadlines: Deadlines,
    private readonly token: TokenRef,
    private readonly owner: string,
    private readonly policy: ResolvedPolicy,
    /** The claim's transaction, in transactional mode. */
    private readonly tx: unknown,
  ) {}

  /** Starts renewing: the first renewal one `keepAliveMs` from now. */
  start(): this {
    this.#schedule();
    return this;
  }

  /** Stops renewing; a renewal in flight completes but schedules nothing. */
  stop(): void {
    this.#stopped = true;
    this.deadlines.cancel(this.#next);
  }

  #schedule(): void {
    if (!this.#stopped) this.#next = this.deadlines.after(this.policy.keepAliveMs, () => this.#renew());
  }

  #renew(): void {
    const { store, logger } = this.deps;
    // An adapter that throws instead of rejecting fails this renewal, as a rejection would.
    new Promise<boolean>((resolve) =>
      resolve(store.renew(this.token, this.owner, this.policy.leaseMs, this.tx)),
    ).then(
      (held) => {
        if (!held) {
          logger.warn('lease lost while the handler ran; its completion will be refused', {
            key: this.token.key,
          });
          this.#stopped = true;
        }
        this.#schedule();
      },
      (error: unknown) => {
        logger.warn('lease renewal failed; retrying', { key: this.token.key, error: String(error) });
        this.#schedule();
      },
    );
  }
}
