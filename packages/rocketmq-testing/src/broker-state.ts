/**
 * What the test broker knows, with no gRPC in it: each topic's log (the dead-letter topics
 * `%DLQ%<group>` among them) and perm, each consumer group's deliveries and their receipt handles, the
 * dead letters, the clients seen, and the record of every delivery, ack and invisible-time change (the
 * semantics are listed in `rocketmq-test-broker.ts`). It applies the faults that change what is stored
 * or acked (`duplicateSends`, `dropAcks`, `failSends`); the gRPC service applies those that lose a
 * response.
 */
import { randomBytes } from 'node:crypto';
import { BrokerFaults } from './broker-faults.js';
import type {
  AckRecord,
  ClientRecord,
  DeadLetterRecord,
  DeliveryRecord,
  DeliveryStatus,
  InvisibleChangeRecord,
  StoredMessage,
  TopicPerm,
} from './records.js';

/** RocketMQ's prefix of a consumer group's dead-letter topic (`MixAll.DLQ_GROUP_TOPIC_PREFIX`). */
export const DLQ_TOPIC_PREFIX = '%DLQ%';

/** The system properties RocketMQ's send-back gives a dead letter (`MessageConst`). */
export const DLQ_SYSTEM_PROPERTIES = {
  retryTopic: 'RETRY_TOPIC',
  originMessageId: 'ORIGIN_MESSAGE_ID',
} as const;

/** How the broker state is set up, beyond the default attempt limit (see `RocketMQTestBrokerOptions`). */
export interface BrokerStateConfig {
  readonly groupMaxDeliveryAttempts?: Readonly<Record<string, number>>;
  readonly deadLetterTopicPerm?: TopicPerm;
}

/** RocketMQ's status codes (apache.rocketmq.v2.Code) that the ack and change records carry. */
export const RocketMQCode = { OK: 20000, INVALID_RECEIPT_HANDLE: 40013 } as const;

/** A message as a client sends it: the broker gives it an offset, a store time, and an id if it has none. */
export type IncomingMessage = Omit<
  StoredMessage,
  'offset' | 'storedAt' | 'messageId' | 'duplicateOf' | 'systemProperties' | 'reconsumeTimes'
> & {
  readonly messageId?: string;
};

/** One delivery of a message to a consumer group, as `take` hands it out. */
export interface Delivery {
  readonly message: StoredMessage;
  readonly attempt: number;
  readonly receiptHandle: string;
  readonly invisibleMs: number;
}

/** What a client says about itself in a call; a field left out keeps what was known. */
export interface ClientSighting {
  readonly clientId: string;
  readonly clientType?: string;
  readonly namespace?: string;
  readonly authorization?: string;
  readonly group?: string;
  readonly topics?: readonly string[];
  readonly filters?: ClientRecord['filters'];
}

interface DeliveryState {
  status: DeliveryStatus;
  attempts: number;
  visibleAt: number;
  handle?: string;
}

interface HandleRef {
  readonly group: string;
  readonly topic: string;
  readonly offset: number;
}

/** The test broker's state without gRPC (see the file comment); the gRPC service reads and changes it. */
export class BrokerState {
  readonly faults = new BrokerFaults();
  readonly #maxDeliveryAttempts: number;
  readonly #groupMaxDeliveryAttempts: Readonly<Record<string, number>>;
  readonly #deadLetterTopicPerm: TopicPerm;
  readonly #topics = new Map<string, StoredMessage[]>();
  /** The perm of each topic set apart from the default (read-write). */
  readonly #perms = new Map<string, TopicPerm>();
  /** `group\u0000topic` → offset → state. */
  readonly #groups = new Map<string, Map<number, DeliveryState>>();
  readonly #handles = new Map<string, HandleRef>();
  readonly #deliveries: DeliveryRecord[] = [];
  readonly #acks: AckRecord[] = [];
  readonly #changes: InvisibleChangeRecord[] = [];
  readonly #deadLetters: DeadLetterRecord[] = [];
  readonly #clients = new Map<string, ClientRecord>();
  #nextId = 0;

  constructor(maxDeliveryAttempts: number, config: BrokerStateConfig = {}) {
    this.#maxDeliveryAttempts = maxDeliveryAttempts;
    this.#groupMaxDeliveryAttempts = { ...(config.groupMaxDeliveryAttempts ?? {}) };
    this.#deadLetterTopicPerm = config.deadLetterTopicPerm ?? 6;
  }

  // ---- topics ---------------------------------------------------------------------------------------

  /**
   * Whether the topic exists: every topic is created on first use, but a dead-letter topic only with
   * its first letter (a real broker creates `%DLQ%<group>` in its send-back), or by `updateTopicPerm`.
   */
  topicExists(topic: string): boolean {
    return !topic.startsWith(DLQ_TOPIC_PREFIX) || this.#topics.has(topic) || this.#perms.has(topic);
  }

  /** The topic's perm (`6` unless set otherwise). */
  topicPerm(topic: string): TopicPerm {
    return this.#perms.get(topic) ?? 6;
  }

  /** Whether a consumer may receive from the topic (its perm has the read bit, 4). */
  readable(topic: string): boolean {
    return (this.topicPerm(topic) & 4) !== 0;
  }

  /** Sets a topic's perm, as `mqadmin updateTopicPerm -t <topic> -p <perm>` does (and creates it). */
  updateTopicPerm(topic: string, perm: TopicPerm): void {
    this.#perms.set(topic, perm);
  }

  /** The deliveries after which the broker dead-letters a message of `group` (its settings say it too). */
  maxDeliveryAttemptsOf(group: string): number {
    return this.#groupMaxDeliveryAttempts[group] ?? this.#maxDeliveryAttempts;
  }

  // ---- what clients do, in the order a message meets it -------------------------------------------

  /** Whether the next sent message is refused (`faults.failSends`, counted down): then it is not stored. */
  refusesSend(): boolean {
    if (this.faults.failSends <= 0) return false;
    this.faults.failSends--;
    return true;
  }

  /** Stores a sent message (and, while `faults.duplicateSends` lasts, a copy); returns the one sent. */
  send(message: IncomingMessage): StoredMessage {
    const stored = this.#store({ ...message, messageId: message.messageId || this.#newMessageId() });
    if (this.faults.duplicateSends > 0) {
      this.faults.duplicateSends--;
      this.#store({ ...stored, messageId: this.#newMessageId(), duplicateOf: stored.messageId });
    }
    return stored;
  }

  /** Stores a message directly, bypassing any client (e.g. a body no codec can read). */
  inject(
    topic: string,
    message: {
      body: Buffer | string;
      keys?: readonly string[];
      tag?: string;
      properties?: Record<string, string>;
    },
  ): StoredMessage {
    return this.#store({
      topic,
      messageId: this.#newMessageId(),
      body: Buffer.isBuffer(message.body) ? message.body : Buffer.from(message.body),
      keys: [...(message.keys ?? [])],
      tag: message.tag,
      properties: { ...(message.properties ?? {}) },
      bornAt: Date.now(),
    });
  }

  /**
   * Takes up to `batch` visible messages of `topic` for the group, making them invisible for
   * `invisibleMs` (one delivery each, with a new receipt handle). `tagExpression` (`*`, `A || B`) filters;
   * undefined lets every message through (no filter, or an SQL92 one, which is not evaluated). A
   * message past the group's attempts (`maxDeliveryAttemptsOf`) is dead-lettered instead, as RocketMQ's
   * proxy does on receive; a dead letter taken from `%DLQ%<group>` goes on counting from its
   * `reconsumeTimes`, so it can be dead-lettered again, into the receiving group's own dead-letter topic.
   */
  take(
    group: string,
    topic: string,
    tagExpression: string | undefined,
    batch: number,
    invisibleMs: number,
  ): Delivery[] {
    const now = Date.now();
    const maxAttempts = this.maxDeliveryAttemptsOf(group);
    const states = this.#groupState(group, topic);
    const taken: Delivery[] = [];
    for (const stored of this.#topics.get(topic) ?? []) {
      if (taken.length >= batch) break;
      if (!matchesTag(tagExpression, stored)) continue;
      let state = states.get(stored.offset);
      if (!state) {
        state = { status: 'ready', attempts: stored.reconsumeTimes ?? 0, visibleAt: 0 };
        states.set(stored.offset, state);
      }
      if (state.status === 'acked' || state.status === 'dead' || state.visibleAt > now) continue;
      if (state.attempts >= maxAttempts) {
        this.#kill(group, stored, state, state.attempts, 'maxDeliveryAttempts');
        continue;
      }
      state.attempts++;
      state.status = 'invisible';
      state.visibleAt = now + invisibleMs;
      state.handle = this.#newHandle({ group, topic, offset: stored.offset });
      this.#deliveries.push({
        group,
        topic,
        messageId: stored.messageId,
        keys: stored.keys,
        attempt: state.attempts,
        at: now,
        invisibleMs,
      });
      taken.push({ message: stored, attempt: state.attempts, receiptHandle: state.handle, invisibleMs });
    }
    return taken;
  }

  /**
   * Acks each entry whose receipt handle is valid; returns each entry's code (`RocketMQCode`). While
   * `faults.dropAcks` lasts, a call's acks are answered OK but not applied.
   */
  ack(
    group: string,
    entries: readonly { readonly messageId: string; readonly receiptHandle: string }[],
  ): number[] {
    let drop = false;
    if (this.faults.dropAcks > 0) {
      this.faults.dropAcks--;
      drop = true;
    }
    return entries.map((entry) => {
      const found = this.#validHandle(entry.receiptHandle);
      const stored = found?.stored ?? this.#findMessage(entry.messageId);
      const code = found ? RocketMQCode.OK : RocketMQCode.INVALID_RECEIPT_HANDLE;
      if (found && !drop) found.state.status = 'acked';
      this.#acks.push({
        group,
        messageId: entry.messageId,
        keys: stored?.keys ?? [],
        at: Date.now(),
        applied: found !== undefined && !drop,
        code,
      });
      return code;
    });
  }

  /** Makes the message invisible for `durationMs` from now; returns its new receipt handle (none if stale). */
  changeInvisibleDuration(
    group: string,
    messageId: string,
    receiptHandle: string,
    durationMs: number,
  ): string | undefined {
    const found = this.#validHandle(receiptHandle);
    this.#changes.push({
      group,
      messageId,
      durationMs,
      at: Date.now(),
      code: found ? RocketMQCode.OK : RocketMQCode.INVALID_RECEIPT_HANDLE,
    });
    if (!found) return undefined;
    found.state.visibleAt = Date.now() + durationMs;
    found.state.handle = this.#newHandle(found.ref);
    return found.state.handle;
  }

  /** Dead-letters the message on the client's word; false if the receipt handle is stale. */
  forwardToDeadLetter(receiptHandle: string, deliveryAttempt: number): boolean {
    const found = this.#validHandle(receiptHandle);
    if (!found) return false;
    this.#kill(found.ref.group, found.stored, found.state, deliveryAttempt, 'forwarded');
    return true;
  }

  /** Records what a client said about itself, over what was known of it. */
  sawClient(sighting: ClientSighting): void {
    const known = this.#clients.get(sighting.clientId);
    this.#clients.set(sighting.clientId, {
      clientId: sighting.clientId,
      clientType: sighting.clientType ?? known?.clientType ?? 'UNKNOWN',
      namespace: sighting.namespace ?? known?.namespace,
      authorization: sighting.authorization ?? known?.authorization,
      group: sighting.group ?? known?.group,
      topics: sighting.topics ?? known?.topics ?? [],
      filters: sighting.filters ?? known?.filters ?? [],
    });
  }

  // ---- inspection ---------------------------------------------------------------------------------

  messages(topic?: string): StoredMessage[] {
    return topic ? [...(this.#topics.get(topic) ?? [])] : [...this.#topics.values()].flat();
  }

  deliveries(filter: { group?: string; messageId?: string; key?: string } = {}): DeliveryRecord[] {
    return this.#deliveries.filter(
      (r) =>
        (filter.group === undefined || r.group === filter.group) &&
        (filter.messageId === undefined || r.messageId === filter.messageId) &&
        (filter.key === undefined || r.keys.includes(filter.key)),
    );
  }

  acks(group?: string): AckRecord[] {
    return this.#acks.filter((a) => group === undefined || a.group === group);
  }

  acked(group: string): string[] {
    return this.acks(group)
      .filter((a) => a.applied)
      .map((a) => a.messageId);
  }

  invisibleChanges(group?: string): InvisibleChangeRecord[] {
    return this.#changes.filter((c) => group === undefined || c.group === group);
  }

  deadLetters(group?: string): DeadLetterRecord[] {
    return this.#deadLetters.filter((r) => group === undefined || r.group === group);
  }

  clients(): ClientRecord[] {
    return [...this.#clients.values()];
  }

  /** Where a message stands for a group: in `topic`, or in the first topic that has its id. */
  stateOf(group: string, messageId: string, topic?: string): 'unknown' | DeliveryStatus {
    for (const [name, messages] of this.#topics) {
      if (topic !== undefined && name !== topic) continue;
      const message = messages.find((m) => m.messageId === messageId);
      if (message) return this.#groupState(group, name).get(message.offset)?.status ?? 'ready';
    }
    return 'unknown';
  }

  // ---- internals ----------------------------------------------------------------------------------

  #store(message: Omit<StoredMessage, 'offset' | 'storedAt'>): StoredMessage {
    let log = this.#topics.get(message.topic);
    if (!log) {
      log = [];
      this.#topics.set(message.topic, log);
    }
    const stored: StoredMessage = { ...message, offset: log.length, storedAt: Date.now() };
    log.push(stored);
    return stored;
  }

  #kill(
    group: string,
    stored: StoredMessage,
    state: DeliveryState,
    attempt: number,
    cause: DeadLetterRecord['cause'],
  ): void {
    state.status = 'dead';
    state.handle = undefined;
    const dlqTopic = `${DLQ_TOPIC_PREFIX}${group}`;
    if (!this.topicExists(dlqTopic)) this.#perms.set(dlqTopic, this.#deadLetterTopicPerm);
    // As RocketMQ's send-back: a new message in the group's dead-letter topic with the original's body,
    // keys, tag, user properties and message id (its UNIQ_KEY), where it came from in system properties,
    // and its delivery count, which goes on (one more when the broker gave up after its last delivery).
    const dlqMessage = this.#store({
      topic: dlqTopic,
      messageId: stored.messageId,
      body: stored.body,
      keys: stored.keys,
      ...(stored.tag !== undefined ? { tag: stored.tag } : {}),
      properties: stored.properties,
      bornAt: stored.bornAt,
      ...(stored.messageGroup !== undefined ? { messageGroup: stored.messageGroup } : {}),
      systemProperties: {
        [DLQ_SYSTEM_PROPERTIES.retryTopic]:
          stored.systemProperties?.[DLQ_SYSTEM_PROPERTIES.retryTopic] ?? stored.topic,
        [DLQ_SYSTEM_PROPERTIES.originMessageId]:
          stored.systemProperties?.[DLQ_SYSTEM_PROPERTIES.originMessageId] ?? stored.messageId,
      },
      reconsumeTimes: cause === 'forwarded' ? state.attempts : state.attempts + 1,
    });
    this.#deadLetters.push({
      group,
      dlqTopic,
      message: stored,
      deliveryAttempt: attempt,
      cause,
      at: Date.now(),
      dlqMessage,
    });
  }

  #validHandle(handle: string) {
    const ref = this.#handles.get(handle);
    if (!ref) return undefined;
    const state = this.#groupState(ref.group, ref.topic).get(ref.offset);
    const stored = this.#topics.get(ref.topic)?.[ref.offset];
    if (!state || !stored || state.handle !== handle || state.status !== 'invisible') return undefined;
    if (state.visibleAt <= Date.now()) return undefined; // expired: the message is up for redelivery
    return { ref, state, stored };
  }

  #findMessage(messageId: string): StoredMessage | undefined {
    for (const messages of this.#topics.values()) {
      const found = messages.find((m) => m.messageId === messageId);
      if (found) return found;
    }
    return undefined;
  }

  #groupState(group: string, topic: string): Map<number, DeliveryState> {
    const key = `${group}\u0000${topic}`;
    let states = this.#groups.get(key);
    if (!states) {
      states = new Map();
      this.#groups.set(key, states);
    }
    return states;
  }

  #newHandle(ref: HandleRef): string {
    const handle = `rh-${ref.offset}-${randomBytes(8).toString('hex')}`;
    this.#handles.set(handle, ref);
    return handle;
  }

  #newMessageId(): string {
    this.#nextId++;
    return `01TEST${Date.now().toString(16).toUpperCase()}${this.#nextId.toString(16).toUpperCase().padStart(8, '0')}`;
  }
}

/** A tag expression as RocketMQ reads it: `*` or empty is every message, `A || B` one of the tags. */
function matchesTag(expression: string | undefined, message: StoredMessage): boolean {
  if (expression === undefined) return true;
  const trimmed = expression.trim();
  if (trimmed === '' || trimmed === '*') return true;
  const tags = trimmed.split('||').map((t) => t.trim());
  return message.tag !== undefined && tags.includes(message.tag);
}
