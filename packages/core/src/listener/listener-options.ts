/** The options a listener class declares, as its decorator records them. */

/** The options of `@MessageListener`. */
export interface MessageListenerOptions {
  /** The topic to consume (a queue, a subject: the transport checks its broker's naming rules). */
  readonly topic: string;
  /** The consumer group: every group gets each message; within a group, one consumer handles it. */
  readonly consumerGroup: string;
  /**
   * A filter in the broker's syntax (a tag expression such as `'PAY || REFUND'`), or `'*'` for all.
   * @defaultValue `'*'`
   */
  readonly filter?: string;
  /**
   * How many messages this listener handles at once.
   * @defaultValue 8
   */
  readonly concurrency?: number;
  /**
   * Delivery attempts before a failing message is dead-lettered. Waits for another copy's claim never
   * count. At most the transport's `profile.maxAttempts`.
   * @defaultValue the transport's `profile.defaultMaxAttempts`
   */
  readonly maxAttempts?: number;
  /**
   * The `@Idempotent` method that handles each message; needed only when the class has several.
   * @defaultValue the class's only `@Idempotent` method
   */
  readonly method?: string;
}

/**
 * What a listener class decorator records (`@MessageListener`, or a transport's own listener decorator,
 * which may add fields). The consumer group is part of the default scope.
 */
export type MessageListenerMetadata = MessageListenerOptions & { readonly [option: string]: unknown };
