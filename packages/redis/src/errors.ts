/** The errors this package raises; connection failures of the store surface as core's `StoreUnavailableError`. */
import { IdempotencyError, type TokenRef } from '@idempotent-mq/core';
import { cutText } from '@idempotent-mq/core/adapter';

/**
 * The client was not connected when a call that must not wait was made. ioredis reconnects by itself;
 * until then the cache is bypassed and the store fails claims fast, so no consumer slot waits on Redis.
 */
export class RedisNotReadyError extends Error {
  override readonly name = 'RedisNotReadyError';
  constructor(readonly status: string) {
    super(`the Redis client is "${status}", not "ready"; it reconnects by itself`);
  }
}

/** A Redis call did not answer within the adapter's own bound. */
export class RedisTimeoutError extends Error {
  override readonly name = 'RedisTimeoutError';
  constructor(readonly timeoutMs: number) {
    super(`Redis did not answer within ${timeoutMs} ms`);
  }
}

/**
 * Something under one of the store's keys is not a record it wrote (another program, a manual edit, a
 * format from a future version). It never counts as completed: the message fails and is redelivered.
 */
export class CorruptRecordError extends IdempotencyError {
  override readonly name = 'CorruptRecordError';
  constructor(
    readonly token: TokenRef,
    readonly redisKey: string,
    readonly reason: string,
  ) {
    super(
      'STORE_FAILED',
      `The Redis key "${cutText(redisKey, 120)}" of token ` +
        `"${cutText(token.key, 80)}" in scope "${token.scope}" ${reason}. Inspect it; delete it to let ` +
        `the message be processed (again).`,
    );
  }
}
