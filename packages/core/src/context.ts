/** What a handler and a transport hand to each other around one call. */
import type { TokenRef } from './model/record.js';

/** The second argument of an `@Idempotent` handler. */
export interface IdempotencyContext<Tx = unknown> {
  /** The token this call holds. */
  readonly token: TokenRef;
  /** The delivery attempt, 1 for the first. */
  readonly attempt: number;
  /**
   * A previous copy may have run part of this work: a later delivery attempt, or a takeover of an
   * expired claim. Effects outside `trx` should be idempotent on their own then.
   */
  readonly replay: boolean;
  /** This claim took over one whose lease had expired. */
  readonly takeover: boolean;
  /** Counts the claims of this token; higher is newer. Pass it on to downstream fenced writes. */
  readonly fence: number;
  /**
   * The store's transaction in transactional mode (a knex `Transaction` for the SQL store); write the
   * business effect through it so that it commits with the token. `undefined` in lease mode.
   */
  readonly trx: Tx;
  /** The handler runs without a claim (missing key with `onMissingKey: 'process'`, or fail-open). */
  readonly unprotected: boolean;
}

const DELIVERY = Symbol.for('idempotent-mq:delivery');

/** The subscription a message was received on, as the listener registry knows it. */
export interface DeliverySubscription {
  readonly topic: string;
  readonly consumerGroup: string;
  /** The transport profile's broker name (its `broker`). */
  readonly broker: string;
}

/** What a transport knows about a delivery that the message itself may not carry. */
export interface DeliveryInfo {
  readonly attempt: number;
  /** After this attempt the broker dead-letters the message. */
  readonly maxAttempts?: number;
  /** Where it was received, when the listener registry delivered it (for traces and metrics). */
  readonly subscription?: DeliverySubscription;
  readonly [DELIVERY]: true;
}

/** Makes the delivery info a transport passes as the second argument of a decorated method. */
export function deliveryInfo(info: {
  attempt: number;
  maxAttempts?: number;
  subscription?: DeliverySubscription;
}): DeliveryInfo {
  return { ...info, [DELIVERY]: true };
}

export function isDeliveryInfo(value: unknown): value is DeliveryInfo {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[DELIVERY] === true;
}

/**
 * An instance's methods as a caller sees them: a handler declared `(message, ctx)` is called
 * `(message, delivery?)`, since the engine supplies `ctx`. Other members keep their types.
 */
export type IdempotentView<T> = {
  // biome-ignore lint/suspicious/noExplicitAny: matches a context of any transaction type.
  [K in keyof T]: T[K] extends (message: infer M, ctx: IdempotencyContext<any>) => infer R
    ? (message: M, delivery?: DeliveryInfo) => R
    : T[K];
};

/**
 * Types a container-made consumer for direct calls: `idempotentView(consumer).onMessage(message)`.
 * The same object, the same path as a transport's deliveries.
 */
export function idempotentView<T>(instance: T): IdempotentView<T> {
  return instance as IdempotentView<T>;
}
