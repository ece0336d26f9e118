/**
 * The transport port: how a broker hands messages to the listener registry and learns what to do
 * with each. RocketMQ (`@idempotent-mq/rocketmq`) and the in-memory broker (`@idempotent-mq/testing`)
 * implement it; the registry never knows which broker it talks to.
 */

/** A received message, broker-neutral. Transports map their own message type onto this. */
export interface TransportMessage<B = unknown> {
  /** The broker's id; it may repeat or change between copies, so it is never the idempotency key. */
  readonly messageId: string;
  readonly topic: string;
  /** Business keys the producer set (RocketMQ's message keys). */
  readonly keys: readonly string[];
  readonly tag?: string;
  /** The decoded body (the transport's codec: JSON, UTF-8 text or raw bytes). */
  readonly body: B;
  readonly properties: Readonly<Record<string, string>>;
  /** 1 for the first delivery. */
  readonly deliveryAttempt: number;
  /** When the producer created it (epoch ms), if the broker says. */
  readonly bornAt?: number;
}

/** What the transport must do with one message once the handler is through with it. */
export type Settlement =
  /** Done (processed, or a duplicate): never deliver it again. */
  | { readonly action: 'ack' }
  /** Deliver it again after `delayMs` (in flight elsewhere, or failed). */
  | { readonly action: 'retry'; readonly delayMs: number; readonly reason: string }
  /** Give up: move it to the dead-letter queue (past the maximum attempts, or a poison message). */
  | { readonly action: 'deadLetter'; readonly reason: string };

/** One subscription: a listener class, as the transport sees it. */
export interface SubscriptionSpec {
  readonly topic: string;
  readonly consumerGroup: string;
  /** A tag expression (`'PAY || REFUND'`, `'*'`) or a transport-specific filter. @defaultValue `'*'` */
  readonly filter?: string;
  /** How many messages of this subscription are handled at once. */
  readonly concurrency: number;
  /** After this many delivery attempts a failing message is dead-lettered. */
  readonly maxAttempts: number;
  /** Everything the listener decorator recorded, for transport-specific settings (a SQL filter, a codec). */
  readonly listener: Readonly<Record<string, unknown>>;
  /**
   * Handles a received batch and answers one settlement per message, aligned with `messages`. The
   * transport keeps each message invisible to other consumers until its settlement comes back.
   */
  handle(messages: readonly TransportMessage[]): Promise<Settlement[]>;
}

/** A broker connection. */
export interface MessageTransport {
  /** Starts receiving for one subscription. Rejects with a clear error if the broker cannot be reached. */
  subscribe(spec: SubscriptionSpec): Promise<void>;
  /** Stops receiving, waits for the handlers in flight to settle, then closes. Loses nothing. */
  stop(): Promise<void>;
}
