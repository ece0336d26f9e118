/**
 * The instrumentation port: how traces and metrics follow each message through the engine, from
 * before its key is read to its outcome, with every store and cache call on the way. Bind one to
 * `IDEMPOTENCY_INSTRUMENTATION` (`@idempotent-mq/opentelemetry` has one); with none bound, or when it
 * declines a message, the engine does none of this work.
 */
import type { DeliveryInfo } from '../context.js';
import type { IdempotencyOutcome } from '../outcome.js';

/** The handler a message is for, as the engine planned it. */
export interface InstrumentedHandler {
  /** `Class.method` of the handler. */
  readonly label: string;
  readonly scope: string;
}

/** What the engine called: the cache or the store. */
export type StepTarget = 'cache' | 'store';

/**
 * The call: `get`, `getMany` (a batch's one read) and `set` on the cache; `claim`, `complete` and
 * `release` on the store, and around a transaction `begin` (until the work starts: a connection and
 * BEGIN), `commit` or `rollback` (after the work ends).
 */
export type StepOperation =
  | 'get'
  | 'getMany'
  | 'set'
  | 'begin'
  | 'claim'
  | 'complete'
  | 'release'
  | 'commit'
  | 'rollback';

/** One store or cache call, reported once it has ended. */
export interface StepTiming {
  readonly target: StepTarget;
  readonly operation: StepOperation;
  /** When it started, in `performance.now()` milliseconds. */
  readonly startedAt: number;
  readonly durationMs: number;
  /** What it failed with (a timeout included); absent when it succeeded. */
  readonly error?: unknown;
  /** Messages this one call served: 1, or the batch's size for a batch's cache read. */
  readonly messages: number;
  /**
   * A batch's read is reported to the probe of each message it served: `true` on every report but the
   * first, so that a metric counts the call once.
   */
  readonly repeated: boolean;
}

/** The instrumentation's view of one message, from its start to its outcome. */
export interface MessageProbe {
  /**
   * Runs the message's path (cache, store, handler) inside the probe's context, so that what the handler
   * does is seen as part of the message (a trace span's children). Calls `path` once, returns its result.
   */
  run<T>(path: () => T): T;
  /** A store or cache call made for this message ended. */
  step(timing: StepTiming): void;
  /** The message's outcome, just before the outcome listeners hear it. Called once. */
  end(outcome: IdempotencyOutcome): void;
}

/** Traces and metrics of the engine's messages. Must not throw (a throw is logged and ignored); should be fast. */
export interface IdempotencyInstrumentation {
  /**
   * A message enters the engine, before its key is read. Returns its probe, or `undefined` to leave this
   * message alone (telemetry off): the engine then does no instrumentation work for it.
   *
   * @param message - as the handler receives it (a `TransportMessage` from the listener registry).
   * @param delivery - what the transport knows of the delivery (attempt, subscription), if it said.
   */
  startMessage(
    message: unknown,
    handler: InstrumentedHandler,
    delivery: DeliveryInfo | undefined,
  ): MessageProbe | undefined;
}
