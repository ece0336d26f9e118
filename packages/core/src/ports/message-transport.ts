/**
 * The transport port: how a broker hands messages to the listener registry, what it tells the
 * registry about itself, and what it must do with each message once the registry has decided.
 *
 * One rule runs through it: **the registry decides, the transport carries out.** The registry's
 * settlement policy turns each outcome into a {@link Settlement} (ack, retry after how long and whether
 * the retry spends an attempt, dead letter); a transport never turns one into another (no retry becomes
 * a dead letter because an attempt count ran out: the registry has already counted). The broker's own
 * limits reach the policy through {@link TransportProfile}.
 */

/** A received message, broker-neutral. Transports map their own message type onto this. */
export interface TransportMessage<B = unknown> {
  /** The broker's id; it may repeat or change between copies, so it is never the idempotency key. */
  readonly messageId: string;
  readonly topic: string;
  /** Business keys the producer set (the broker's message key, a header of the publisher helper). */
  readonly keys: readonly string[];
  readonly tag?: string;
  /** The decoded body (the transport's codec: JSON, UTF-8 text or raw bytes). */
  readonly body: B;
  readonly properties: Readonly<Record<string, string>>;
  /**
   * 1 for the first delivery; +1 for each retry that spent an attempt (crashes and lost acks included).
   * A wait (`countsAsAttempt: false`) comes back with the same number.
   */
  readonly deliveryAttempt: number;
  /** When the producer created it (epoch ms), if the broker says. */
  readonly bornAt?: number;
}

/** What the transport must do with one message once the registry is through with it. */
export type Settlement =
  /** Done (processed, or a duplicate): never deliver it again. */
  | { readonly action: 'ack' }
  /**
   * Deliver it again after `delayMs`, to this consumer or another of the group.
   *
   * `countsAsAttempt: true` (a failure): the redelivery has `deliveryAttempt + 1`.
   * `countsAsAttempt: false` (a wait: another copy holds the token): the redelivery keeps its
   * `deliveryAttempt`, and the wait must not bring the message nearer to any dead letter, the broker's
   * own included. A broker that counts every redelivery itself carries a wait out by keeping the message
   * invisible and handing it to `handle` again after `delayMs`, without returning it to the broker.
   */
  | {
      readonly action: 'retry';
      readonly delayMs: number;
      readonly countsAsAttempt: boolean;
      readonly reason: string;
    }
  /** Give up: move it to the dead-letter queue (a poison message, or failed on its last attempt). */
  | { readonly action: 'deadLetter'; readonly reason: string };

/** What a broker brings to the settlement policy: its limits and its rules for subscriptions. */
export interface TransportProfile {
  /** The broker's name, for messages (`'the in-memory broker'`). */
  readonly broker: string;
  /** Delivery attempts before a failing message is dead-lettered, when the listener does not say. */
  readonly defaultMaxAttempts: number;
  /** The most attempts the broker can carry out (its own dead-letter limit, if it has one). */
  readonly maxAttempts: number;
  /** The longest retry delay the broker can carry out; longer ones are cut to it. */
  readonly maxRetryDelayMs: number;
  /**
   * How long after its first delivery a failing message may still come back with the listener's
   * default attempts: a completed token must be kept longer than this, or a late redelivery runs again.
   */
  readonly redeliveryHorizonMs: number;
  /**
   * Checks a listener's options against the broker's rules (topic and group names, options of its
   * own, such as a filter syntax). Throws `InvalidOptionError` naming the option, prefixed by `where`.
   */
  checkListener(listener: Readonly<Record<string, unknown>>, where: string): void;
}

/** One subscription: a listener class, as the transport sees it. */
export interface SubscriptionSpec {
  readonly topic: string;
  readonly consumerGroup: string;
  /** A filter expression in the broker's syntax (a tag expression, a subject pattern). @defaultValue `'*'` */
  readonly filter?: string;
  /** How many messages of this subscription are handled at once. */
  readonly concurrency: number;
  /**
   * After this many attempts the registry dead-letters a failing message. Given so that the transport
   * can size what it asks of the broker; it decides nothing with it.
   */
  readonly maxAttempts: number;
  /** Everything the listener decorator recorded, for transport-specific settings (a SQL filter, a codec). */
  readonly listener: Readonly<Record<string, unknown>>;
  /**
   * Handles a received batch and answers one settlement per message, aligned with `messages`; never
   * rejects. The transport keeps each message invisible to other consumers until its settlement comes
   * back, however long the handler runs.
   */
  handle(messages: readonly TransportMessage[]): Promise<Settlement[]>;
}

/** A broker connection. */
export interface MessageTransport {
  /** The broker's limits and rules, read by the registry before it subscribes anything. */
  readonly profile: TransportProfile;
  /** Starts receiving for one subscription. Rejects with a clear error if the broker cannot be reached. */
  subscribe(spec: SubscriptionSpec): Promise<void>;
  /**
   * Stops receiving, waits for the handlers in flight and carries out their settlements, then closes.
   * Loses nothing: what was not handled stays with the broker for the next consumer.
   */
  stop(): Promise<void>;
}

/**
 * What a transport reports after it carried out (or failed to carry out) one settlement, through its
 * `onSettled` option: for metrics, alerts and tests. Transports extend it with what their broker adds.
 */
export interface SettledEvent {
  readonly topic: string;
  readonly consumerGroup: string;
  /** The broker's id of the message. */
  readonly messageId: string;
  readonly keys: readonly string[];
  readonly deliveryAttempt: number;
  /**
   * What was done: the registry's settlement, or the transport's own for a body it cannot decode (dead
   * letter) or a handler that threw (retry).
   */
  readonly action: Settlement['action'];
  readonly reason?: string;
  /** A retry's delay as carried out (cut to the broker's limit; the rest of a wait at `stop()`). */
  readonly delayMs?: number;
  /** A retry: whether it spends an attempt (a failure) or not (a wait for another copy's claim). */
  readonly countsAsAttempt?: boolean;
  /** False when the broker call failed after every try (the message comes back by the broker's rules). */
  readonly ok: boolean;
  readonly error?: unknown;
}
