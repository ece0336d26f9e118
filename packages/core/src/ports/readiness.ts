/**
 * Start-up readiness: what a store or a cache checks before the first message, so that a table never
 * migrated, a server whose locks are stubs or a string bound where a client belongs fails at start-up,
 * naming the fix, instead of on every message.
 */

/** One check's answer. */
export interface ReadinessCheck {
  /** What was checked, in a few words: `'reachable'`, `'table "idempotency_tokens"'`, `'advisory locks'`. */
  readonly name: string;
  /** `ok`: ready; `degraded`: works without it (a cache), `failed`: nothing may be consumed. */
  readonly status: 'ok' | 'degraded' | 'failed';
  /** What was found (the server and version, the missing column, the driver's error). */
  readonly detail: string;
  /** What to do, when it is not ok. */
  readonly fix?: string;
}

/** What the engine asks a store to be ready for. */
export interface ReadinessRequest {
  /** Some handler runs in transactional mode: the store's transaction primitives must hold. */
  readonly transactional: boolean;
}

/** A port that can check itself: stores and caches implement it optionally. */
export interface CheckedPort {
  /**
   * Checks, before any message is consumed, that the port can do its job: the server is reachable, its
   * schema is present and of the expected shape, and the primitives it relies on behave (probed, not
   * assumed). Never throws for a failed check: it reports it, with the fix.
   */
  check?(request: ReadinessRequest): Promise<readonly ReadinessCheck[]>;
}
