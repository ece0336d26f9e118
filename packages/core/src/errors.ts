/**
 * Every error the engine raises: one base with a stable `code`, subclasses named for what happened,
 * carrying the token and scope so that a log line tells which message it was.
 */
import type { IdempotencyRecord, TokenRef } from './model/record.js';
import { cutText } from './text.js';

/** Stable codes, safe to match on in metrics and alerts. */
export type IdempotencyErrorCode =
  | 'MISSING_KEY'
  | 'KEY_FUNCTION_FAILED'
  | 'PAYLOAD_NOT_SERIALIZABLE'
  | 'RESULT_NOT_SERIALIZABLE'
  | 'IN_FLIGHT'
  | 'PAYLOAD_CONFLICT'
  | 'LEASE_LOST'
  | 'STORE_FAILED'
  | 'STORE_UNAVAILABLE'
  | 'UNSTORABLE_TOKEN'
  | 'HANDLER_TIMEOUT'
  | 'INCONSISTENT_STATE'
  | 'INVALID_OPTION'
  | 'NOT_CONFIGURED'
  | 'NOT_READY'
  | 'LISTENER_WIRING';

/**
 * The base of every error this library throws: `code` is stable (match on it, not on the message),
 * the message says what happened and the fix. Subclasses carry their context (the token, the record).
 *
 * @example
 * ```ts
 * try { await consumer.onMessage(m); }
 * catch (e) { if (e instanceof IdempotencyError && e.code === 'IN_FLIGHT') retryLater(m); else throw e; }
 * ```
 */
export class IdempotencyError extends Error {
  override readonly name: string = 'IdempotencyError';
  constructor(
    readonly code: IdempotencyErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The key function gave nothing usable: undefined, empty, whitespace only, or not a string. */
export class MissingIdempotencyKeyError extends IdempotencyError {
  override readonly name = 'MissingIdempotencyKeyError';
  constructor(
    readonly scope: string,
    readonly reason: string,
  ) {
    super(
      'MISSING_KEY',
      `No idempotency key for scope "${scope}": ${reason}. Have the producer set the business key ` +
        `(e.g. the message Key), or set onMissingKey: 'process' to run such messages unprotected.`,
    );
  }
}

/** The key function threw. No claim was made. */
export class KeyFunctionError extends IdempotencyError {
  override readonly name = 'KeyFunctionError';
  constructor(
    readonly scope: string,
    cause: unknown,
  ) {
    super('KEY_FUNCTION_FAILED', `The key function of scope "${scope}" threw; fix it or the message.`, {
      cause,
    });
  }
}

/** The payload to fingerprint cannot be turned into canonical JSON (a cycle, a function, a bigint...). */
export class PayloadNotSerializableError extends IdempotencyError {
  override readonly name = 'PayloadNotSerializableError';
  constructor(
    readonly scope: string,
    reason: string,
  ) {
    super(
      'PAYLOAD_NOT_SERIALIZABLE',
      `Cannot fingerprint the payload in scope "${scope}": ${reason}. Give a fingerprint function that ` +
        `returns JSON data, or fingerprint: false.`,
    );
  }
}

/** `storeResult` is on and the handler returned something JSON cannot hold. */
export class ResultNotSerializableError extends IdempotencyError {
  override readonly name = 'ResultNotSerializableError';
  constructor(
    readonly token: TokenRef,
    reason: string,
  ) {
    super(
      'RESULT_NOT_SERIALIZABLE',
      `The result for ${describe(token)} is not JSON-serialisable (${reason}); return plain data or ` +
        `turn storeResult off.`,
    );
  }
}

/** Another copy holds a live claim. Retry later: the first copy may yet fail. */
export class IdempotencyInFlightError extends IdempotencyError {
  override readonly name = 'IdempotencyInFlightError';
  constructor(
    readonly token: TokenRef,
    readonly record?: IdempotencyRecord,
  ) {
    super('IN_FLIGHT', `${describe(token)} is being processed by another copy; redeliver it later.`);
  }
}

/** The key was seen before with a different payload. */
export class PayloadConflictError extends IdempotencyError {
  override readonly name = 'PayloadConflictError';
  constructor(
    readonly token: TokenRef,
    readonly expectedFingerprint: string | undefined,
    readonly actualFingerprint: string | undefined,
    readonly record?: IdempotencyRecord,
  ) {
    super(
      'PAYLOAD_CONFLICT',
      `${describe(token)} was already used with a different payload; the producer reuses business keys. ` +
        `Set onConflict: 'duplicate' to treat it as a duplicate anyway.`,
    );
  }
}

/** This copy's claim expired and was taken over before it completed; its completion was refused. */
export class LeaseLostError extends IdempotencyError {
  override readonly name = 'LeaseLostError';
  constructor(
    readonly token: TokenRef,
    readonly owner: string,
  ) {
    super(
      'LEASE_LOST',
      `The claim on ${describe(token)} expired and was taken over before it completed; its transactional ` +
        `writes were rolled back. Raise leaseMs if handlers legitimately run this long.`,
    );
  }
}

/**
 * The store call that failed. `begin` and `commit` are the two ends of a transactional handler's
 * transaction (`transaction` when a store cannot tell which).
 */
export type StoreStep =
  | 'claim'
  | 'renew'
  | 'complete'
  | 'release'
  | 'begin'
  | 'commit'
  | 'transaction'
  | 'read'
  | 'purge'
  | 'inspect'
  | 'forget'
  | 'stats';

/** A store call failed for a reason other than unavailability. Never read as a duplicate. */
export class IdempotencyStoreError extends IdempotencyError {
  override readonly name: string = 'IdempotencyStoreError';
  constructor(
    readonly step: StoreStep,
    readonly token: TokenRef | undefined,
    cause: unknown,
    code: IdempotencyErrorCode = 'STORE_FAILED',
  ) {
    super(
      code,
      `The idempotency store failed at "${step}"${token ? ` for ${describe(token)}` : ''}: ${messageOf(cause)}`,
      { cause },
    );
  }
}

/**
 * The store cannot be reached. Adapters throw this (with the driver's error as `cause`) for connection
 * failures only, so that fail-open never runs a duplicate twice on, say, a unique-key error.
 */
export class StoreUnavailableError extends IdempotencyStoreError {
  override readonly name = 'StoreUnavailableError';
  constructor(step: StoreStep, token: TokenRef | undefined, cause: unknown) {
    super(step, token, cause, 'STORE_UNAVAILABLE');
  }
}

/**
 * A token the store cannot hold exactly (longer than its column, text the database cannot store).
 * Refused rather than truncated or re-encoded, which could make two different keys one. No redelivery
 * can fix it: a transport dead-letters such a message at once.
 */
export class UnstorableTokenError extends IdempotencyStoreError {
  override readonly name = 'UnstorableTokenError';
  constructor(
    token: TokenRef,
    readonly reason: string,
  ) {
    super('claim', token, new Error(reason), 'UNSTORABLE_TOKEN');
  }
}

/**
 * The handler ran past `maxHandlerMs`: its lease is no longer renewed, so another copy may take the
 * token over once the lease runs out, and this owner's late completion is refused (fenced). In
 * transactional mode its transaction was rolled back.
 */
export class HandlerTimeoutError extends IdempotencyError {
  override readonly name = 'HandlerTimeoutError';
  constructor(
    readonly token: TokenRef,
    readonly maxHandlerMs: number,
  ) {
    super(
      'HANDLER_TIMEOUT',
      `The handler of ${describe(token)} ran longer than maxHandlerMs (${maxHandlerMs} ms) and was given ` +
        'up on; the message will be redelivered. Raise maxHandlerMs if it legitimately runs this long, or ' +
        'bound what it waits for.',
    );
  }
}

/** A claim kept losing to a record that was gone when read back; gave up after `attempts` tries. */
export class InconsistentStateError extends IdempotencyError {
  override readonly name = 'InconsistentStateError';
  constructor(
    readonly token: TokenRef,
    readonly attempts: number,
  ) {
    super(
      'INCONSISTENT_STATE',
      `Could not claim ${describe(token)} after ${attempts} tries: the record kept changing. Redeliver later.`,
    );
  }
}

/** An option is out of range. Raised at start-up, naming the option and what it accepts. */
export class InvalidOptionError extends IdempotencyError {
  override readonly name = 'InvalidOptionError';
  constructor(
    readonly option: string,
    readonly accepted: string,
    readonly value: unknown,
  ) {
    super('INVALID_OPTION', `Invalid option "${option}": expected ${accepted}, got ${show(value)}.`);
  }
}

/** A decorated method was called on an instance the container did not create. */
export class IdempotencyNotConfiguredError extends IdempotencyError {
  override readonly name = 'IdempotencyNotConfiguredError';
  constructor(readonly target: string) {
    super(
      'NOT_CONFIGURED',
      `${target} is @Idempotent but this instance has no idempotency engine, so it would run unprotected: ` +
        'load IdempotencyModule into its container (container.load(new IdempotencyModule())) and resolve ' +
        'the instance from that container, not with new.',
    );
  }
}

function describe(token: TokenRef): string {
  return `token "${cutText(token.key, 80)}" in scope "${token.scope}"`;
}

function messageOf(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause);
}

function show(value: unknown): string {
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'string') return JSON.stringify(value);
  // As given: JSON would print NaN and Infinity as null, and drop undefined.
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'symbol')
    return String(value);
  if (value === undefined) return 'undefined';
  try {
    return String(JSON.stringify(value) ?? value);
  } catch {
    return String(value);
  }
}

/** The listener registry found mis-wirings at start-up; `offenders` lists every one. */
export class ListenerWiringError extends IdempotencyError {
  override readonly name = 'ListenerWiringError';
  constructor(readonly offenders: readonly string[]) {
    super(
      'LISTENER_WIRING',
      `The listener registry cannot start:\n${offenders.map((o) => `  - ${o}`).join('\n')}`,
    );
  }
}
