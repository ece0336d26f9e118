/**
 * A RocketMQ 5 proxy and broker in one, for tests: a gRPC `MessagingService` on 127.0.0.1 that
 * implements what rocketmq-client-nodejs uses, with at-least-once semantics and fault injection.
 *
 * - Topics are created on first use; each consumer group gets every message of a topic (from the
 *   first), and within a group a received message is invisible until acked or its invisible time ends.
 * - Every delivery has a new receipt handle; only the newest, unexpired one can ack, change the invisible
 *   time or dead-letter the message (else INVALID_RECEIPT_HANDLE, 40013, as a real proxy answers).
 * - A message comes back with `deliveryAttempt + 1`; past `maxDeliveryAttempts` (or the group's own,
 *   `groupMaxDeliveryAttempts`, which its consumers' settings carry) the broker moves it to the group's
 *   dead-letter queue itself. ForwardMessageToDeadLetterQueue does it on the client's word.
 * - A dead letter is also a message of topic `%DLQ%<group>`, as RocketMQ's send-back stores it: the
 *   original's body, keys, tag, user properties and message id, with `RETRY_TOPIC` (its topic) and
 *   `ORIGIN_MESSAGE_ID` as system properties, which a proxy does not hand to gRPC clients. Any group can
 *   receive, ack and change the invisible time of it there; its delivery count goes on from the
 *   original's, so past the receiving group's attempts it moves on to that group's own dead-letter
 *   topic, as on a real proxy. The topic exists from its first letter (before, a route query answers
 *   TOPIC_NOT_FOUND), with perm 6 (`deadLetterTopicPerm: 2`, write-only as brokers before 4.9.2 made it:
 *   no readable queue in its route, a receive FORBIDDEN, until `updateTopicPerm`).
 * - Tag expressions (`*`, `A || B`) filter; SQL92 filters are accepted and recorded but not evaluated.
 * - Faults: lost acks (answered OK, not applied), lost ack responses (applied, then the response fails
 *   or never arrives), duplicate sends (a second copy with a new id), lost send responses (the client
 *   resends with the same id), refused sends (nothing stored), a restart on the same port, an outage, a
 *   server that never sends settings.
 *
 * State survives a restart or an outage, as a broker's commit log does. This file is the lifecycle
 * (start, restart, outage, close) and what tests read; the state is `broker-state.ts`, the gRPC service
 * `grpc-service.ts`, the protobuf messages `protobuf-mapping.ts`.
 */
import * as grpc from '@grpc/grpc-js';
import type { BrokerFaults } from './broker-faults.js';
import { BrokerState } from './broker-state.js';
import { addMessagingService, OpenCalls, type ServiceContext } from './grpc-service.js';
import { type RocketMQTestBrokerOptions, resolveOptions } from './options.js';
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

const HOST = '127.0.0.1';

/**
 * The gRPC RocketMQ test broker (see the file comment for what it implements and the faults it injects).
 *
 * @example
 * ```ts
 * const broker = await RocketMQTestBroker.start();
 * const transport = new RocketMQTransport({ endpoints: broker.endpoints });
 * // … run the consumer against it …
 * await broker.close();
 * ```
 */
export class RocketMQTestBroker {
  readonly faults: BrokerFaults;
  readonly #state: BrokerState;
  readonly #calls = new OpenCalls();
  readonly #context: ServiceContext;
  #port: number;
  #server: grpc.Server | undefined;
  #serving = false;
  #closed = false;
  /** The bind in progress, if any: stopping waits for it so that no server is left listening. */
  #listening: Promise<void> = Promise.resolve();

  private constructor(options: RocketMQTestBrokerOptions) {
    this.#port = options.port ?? 0;
    const resolved = resolveOptions(options);
    this.#state = new BrokerState(resolved.maxDeliveryAttempts, resolved);
    this.faults = this.#state.faults;
    this.#context = {
      state: this.#state,
      options: resolved,
      calls: this.#calls,
      address: () => ({ host: HOST, port: this.#port }),
      serving: () => this.#serving,
    };
  }

  /** Starts a broker on 127.0.0.1 and a free port (or `options.port`). */
  static async start(options: RocketMQTestBrokerOptions = {}): Promise<RocketMQTestBroker> {
    const broker = new RocketMQTestBroker(options);
    await broker.#listen();
    return broker;
  }

  /** What to give the client as `endpoints`. */
  get endpoints(): string {
    return `${HOST}:${this.#port}`;
  }

  get port(): number {
    return this.#port;
  }

  get serving(): boolean {
    return this.#serving;
  }

  // ---- lifecycle and faults ------------------------------------------------------------------

  /** Goes down (connections cut, calls fail with UNAVAILABLE) and comes back on the same port after `downMs`. */
  async restart(downMs = 0): Promise<void> {
    await this.stopServing();
    if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
    await this.resumeServing();
  }

  /**
   * Starts an outage: the port is closed until `resumeServing()`. State is kept. Resolves once the
   * listening socket and every connection are closed.
   */
  async stopServing(): Promise<void> {
    await this.#listening;
    const server = this.#server;
    this.#server = undefined;
    this.#serving = false;
    this.#calls.cut();
    if (server) await shutDown(server);
  }

  /** Ends an outage: listens again on the same port (not after `close()`). */
  async resumeServing(): Promise<void> {
    await this.#listening;
    if (!this.#serving && !this.#closed) await this.#listen();
  }

  /**
   * Stops for good: no server, connection or timer of the broker is left (a `restart` under way does
   * not come back). The recorded state stays readable.
   */
  async close(): Promise<void> {
    this.#closed = true;
    await this.stopServing();
  }

  // ---- inspection -----------------------------------------------------------------------------

  /** Every stored message (fault copies included), of a topic or all. */
  messages(topic?: string): StoredMessage[] {
    return this.#state.messages(topic);
  }

  deliveries(filter: { group?: string; messageId?: string; key?: string } = {}): DeliveryRecord[] {
    return this.#state.deliveries(filter);
  }

  acks(group?: string): AckRecord[] {
    return this.#state.acks(group);
  }

  /** Message ids the group has acknowledged for good (applied acks). */
  acked(group: string): string[] {
    return this.#state.acked(group);
  }

  invisibleChanges(group?: string): InvisibleChangeRecord[] {
    return this.#state.invisibleChanges(group);
  }

  deadLetters(group?: string): DeadLetterRecord[] {
    return this.#state.deadLetters(group);
  }

  clients(): ClientRecord[] {
    return this.#state.clients();
  }

  /**
   * Where a message stands for a group: never seen, waiting, invisible, acked or dead. A dead letter
   * keeps its message id in `%DLQ%<group>`: name that `topic` to ask about it there.
   */
  stateOf(group: string, messageId: string, topic?: string): 'unknown' | DeliveryStatus {
    return this.#state.stateOf(group, messageId, topic);
  }

  /** A topic's perm (RocketMQ's numbers: 2 write-only, 4 read-only, 6 read-write). */
  topicPerm(topic: string): TopicPerm {
    return this.#state.topicPerm(topic);
  }

  /**
   * Sets a topic's perm (and creates it), as an operator's `mqadmin updateTopicPerm -t <topic> -p <perm>`:
   * `updateTopicPerm('%DLQ%billing', 6)` makes a write-only dead-letter topic readable.
   */
  updateTopicPerm(topic: string, perm: TopicPerm): void {
    this.#state.updateTopicPerm(topic, perm);
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
    return this.#state.inject(topic, message);
  }

  // ---- serving --------------------------------------------------------------------------------

  #listen(): Promise<void> {
    const listening = (async () => {
      const server = new grpc.Server();
      addMessagingService(server, this.#context);
      try {
        this.#port = await new Promise<number>((resolve, reject) => {
          server.bindAsync(`${HOST}:${this.#port}`, grpc.ServerCredentials.createInsecure(), (error, port) =>
            error ? reject(error) : resolve(port),
          );
        });
      } catch (error) {
        await shutDown(server);
        throw error;
      }
      this.#server = server;
      this.#serving = true;
    })();
    this.#listening = listening.catch(() => undefined);
    return listening;
  }
}

/**
 * Closes a gRPC server for good and resolves once its listening socket and every connection are closed:
 * `forceShutdown()` alone returns while the HTTP/2 server is still closing (its handle keeps the process
 * alive a little longer); `tryShutdown()` reports when it is done, and the forced cut makes that prompt.
 */
function shutDown(server: grpc.Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
  server.forceShutdown();
  return closed;
}
