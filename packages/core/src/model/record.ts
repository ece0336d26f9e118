/** The token and its record: what the store keeps for each message that must happen once. */

/** Scope + key: what must happen once. `scope` keeps handlers' key spaces apart. */
export interface TokenRef {
  readonly scope: string;
  readonly key: string;
}

/** `inProgress`: claimed by an owner under a lease. `completed`: the effect has committed. */
export type RecordStatus = 'inProgress' | 'completed';

/** One token's row, as the store keeps it. Times are epoch milliseconds on the store's own clock. */
export interface IdempotencyRecord {
  readonly scope: string;
  readonly key: string;
  readonly status: RecordStatus;
  /** Unique per claim: the fencing token. Only the owner that holds the claim may complete or renew it. */
  readonly owner: string;
  /** Counts the claims of this row: 1 for the first, +1 on each takeover. */
  readonly fence: number;
  /** When an in-progress claim may be taken over, unless renewed. */
  readonly leaseExpiresAt?: number;
  /** Hash of the canonical payload, to tell a true duplicate from a key reused for other data. */
  readonly fingerprint?: string;
  /** The handler's result as JSON text, when results are stored. */
  readonly result?: string;
  readonly createdAt: number;
  readonly completedAt?: number;
  /** When a completed record may be forgotten (retention). */
  readonly expiresAt?: number;
}
